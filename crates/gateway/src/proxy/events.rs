//! The event a finished request leaves in the incident store.

use super::*;

/// The site name and route prefix of a request, for events.
pub(super) fn site_and_route(ctx: &RequestContext) -> (&str, &str) {
    match (&ctx.snapshot, ctx.site) {
        (Some(s), Some(i)) => (
            s.sites[i].name.as_str(),
            ctx.route
                .map_or("", |r| s.sites[i].routes[r].prefix.as_str()),
        ),
        _ => ("", ""),
    }
}

impl Gateway {
    /// The event a finished request leaves in the store, if its verdict is
    /// one an incident is made of. Allowed requests leave none: the traffic
    /// samples count them.
    pub(super) fn record_request_event(
        &self,
        ctx: &RequestContext,
        method: &str,
        site: &str,
        route: &str,
        status: u16,
        error: Option<&Error>,
    ) {
        use rampart_incidents::EventKind;
        // High-volume kinds (a flood refused or challenged request by request,
        // a detection on every request) are kept once per client per second;
        // the check comes first so that a thinned event costs no allocation.
        let tag = match ctx.verdict {
            Verdict::Flood(FloodOutcome::Challenge) => Some(1),
            Verdict::Flood(FloodOutcome::Limited(_)) => Some(2),
            Verdict::Flood(FloodOutcome::WaitingRoom | FloodOutcome::Unavailable) => Some(3),
            Verdict::Waf(WafOutcome::Logged | WafOutcome::Detect) => Some(4),
            Verdict::Flood(FloodOutcome::Cleared | FloodOutcome::ClearedNoScript) => Some(5),
            _ => None,
        };
        if let (Some(tag), Some(client)) = (tag, ctx.client) {
            let second = (crate::incidents::now_ms() / 1000) as u64;
            if !self
                .runtime
                .events
                .throttle
                .first_this_second(client, tag, second)
            {
                return;
            }
        }
        let waf_findings = || {
            let Some(waf) = ctx.waf.as_ref() else {
                return (Vec::new(), 0, Vec::new(), None);
            };
            let mut rules = Vec::new();
            let mut attacks: Vec<String> = Vec::new();
            let mut matches = Vec::new();
            for m in waf.tx.matched_rules().iter().filter(|m| m.logged) {
                if rules.len() < 32 && !rules.contains(&m.id) {
                    rules.push(m.id);
                }
                if matches.len() < 32 {
                    matches.push(crate::waf::rule_match(m));
                }
                for tag in &m.tags {
                    if let Some(attack) = tag.strip_prefix("attack-") {
                        if attacks.len() < 8 && !attacks.iter().any(|a| a == attack) {
                            attacks.push(attack.to_string());
                        }
                    }
                }
            }
            let score = waf
                .tx
                .tx_var("blocking_inbound_anomaly_score")
                .or_else(|| waf.tx.tx_var("anomaly_score"))
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                .unwrap_or(0);
            let detail = rampart_incidents::WafDetail {
                method: method.to_string(),
                path: ctx
                    .path
                    .as_ref()
                    .map_or("/", |p| p.matching.as_str())
                    .to_string(),
                matches,
            };
            (rules, score, attacks, Some(Box::new(detail)))
        };
        let kind = match ctx.verdict {
            Verdict::Waf(WafOutcome::Block { .. }) => {
                let (rules, score, attacks, detail) = waf_findings();
                EventKind::WafBlock {
                    detail,
                    rules,
                    score,
                    attacks,
                    status,
                }
            }
            Verdict::Waf(WafOutcome::Logged | WafOutcome::Detect) => {
                let (rules, score, attacks, detail) = waf_findings();
                EventKind::WafMatch {
                    detail,
                    rules,
                    score,
                    attacks,
                }
            }
            Verdict::Flood(FloodOutcome::Challenge) => EventKind::Challenged,
            Verdict::Flood(FloodOutcome::Cleared | FloodOutcome::ClearedNoScript) => {
                EventKind::Cleared
            }
            Verdict::Flood(FloodOutcome::Limited(limit)) => EventKind::RateLimited {
                scope: crate::verdict::serde_name(limit),
            },
            Verdict::Flood(FloodOutcome::WaitingRoom | FloodOutcome::Unavailable) => {
                EventKind::Queued
            }
            Verdict::UpstreamFailure(_) | Verdict::Cache(CacheServe::StaleOnError) => {
                EventKind::UpstreamFailure {
                    status,
                    reason: error.map_or_else(
                        || format!("answered {status}"),
                        |e| e.etype().as_str().to_string(),
                    ),
                }
            }
            _ => return,
        };
        self.runtime.events.record(site, ctx.client, route, kind);
    }
}
