//! An open incident: what one event adds to it, and how it is titled and
//! described.

use super::*;

/// An open incident and what it takes to keep its lists exact.
#[derive(Debug)]
pub(super) struct Open {
    pub(super) incident: Incident,
    pub(super) sources: Sources,
    pub(super) prefixes: TopCounter<PrefixKey>,
    pub(super) rules: TopCounter<u32>,
    pub(super) attacks: TopCounter<String>,
    pub(super) banned: HashSet<PrefixKey>,
    /// Actions past the cap, by kind (`bans`, `responses blocked`, ...).
    pub(super) overflow: BTreeMap<&'static str, u64>,
    /// The peak rate when the incident opened or last escalated for it.
    pub(super) peak_reported: f64,
    pub(super) degraded: bool,
    pub(super) left_yes: bool,
    pub(super) dropped_while_open: bool,
    pub(super) dirty: bool,
}

impl Open {
    pub(super) fn new(site: &str, kind: IncidentKind, at: Millis) -> Open {
        let data = matches!(kind, IncidentKind::DataLeak | IncidentKind::CanaryTrip).then(|| {
            DataExposure {
                left: DataLeft::No,
                entities: Vec::new(),
                records: 0,
                people: 0,
                categories: Vec::new(),
                special_category: false,
            }
        });
        let incident = Incident {
            id: 0,
            title: String::new(),
            site: site.to_string(),
            kinds: vec![kind],
            status: IncidentStatus::Open,
            severity: Severity::Low,
            first_event: at,
            last_event: at,
            aware_at: at,
            deadline: at.saturating_add(ICO_WINDOW_MS),
            closed_at: None,
            peak_rps: 0.0,
            peak_at: 0,
            requests: 0,
            blocked: 0,
            challenged: 0,
            limited: 0,
            events: 0,
            distinct_sources: 0,
            top_prefixes: Vec::new(),
            rules: Vec::new(),
            attacks: Vec::new(),
            actions: Vec::new(),
            data,
            decisions: Vec::new(),
            dropped_events: 0,
        };
        Open {
            incident,
            sources: Sources::new(0),
            prefixes: TopCounter::new(PREFIX_CAP),
            rules: TopCounter::new(TALLY_CAP),
            attacks: TopCounter::new(TALLY_CAP),
            banned: HashSet::new(),
            overflow: BTreeMap::new(),
            peak_reported: 0.0,
            degraded: false,
            left_yes: false,
            dropped_while_open: false,
            dirty: true,
        }
    }

    /// Rebuilds the working state of an incident read back from the store.
    pub(super) fn restored(incident: Incident) -> Open {
        let mut prefixes = TopCounter::new(PREFIX_CAP);
        for tally in &incident.top_prefixes {
            if let Some(key) = PrefixKey::parse(&tally.key) {
                prefixes.add(&key, tally.count);
            }
        }
        let mut rules = TopCounter::new(TALLY_CAP);
        for tally in &incident.rules {
            if let Ok(rule) = tally.key.parse::<u32>() {
                rules.add(&rule, tally.count);
            }
        }
        let mut attacks = TopCounter::new(TALLY_CAP);
        for tally in &incident.attacks {
            attacks.add(tally.key.as_str(), tally.count);
        }
        let left = incident.data.as_ref().map(|d| d.left);
        Open {
            sources: Sources::new(incident.distinct_sources),
            prefixes,
            rules,
            attacks,
            banned: HashSet::new(),
            overflow: BTreeMap::new(),
            peak_reported: incident.peak_rps,
            degraded: false,
            left_yes: left == Some(DataLeft::Yes),
            dropped_while_open: incident.dropped_events > 0,
            dirty: false,
            incident,
        }
    }

    pub(super) fn kind(&self) -> IncidentKind {
        self.incident.kinds[0]
    }

    /// Counts an event into the incident: times, sources, prefixes.
    pub(super) fn member(&mut self, at: Millis, client: Option<IpAddr>) {
        let incident = &mut self.incident;
        incident.events += 1;
        incident.first_event = incident.first_event.min(at);
        incident.last_event = incident.last_event.max(at);
        if let Some(client) = client {
            self.sources.insert(client);
            self.prefixes.add(&PrefixKey::of(client), 1);
        }
        self.dirty = true;
    }

    pub(super) fn action(&mut self, at: Millis, category: &'static str, what: String) {
        let actions = &mut self.incident.actions;
        if actions.len() < ACTIONS_CAP - 1 && self.overflow.is_empty() {
            actions.push(ActionTaken { at, what });
            return;
        }
        *self.overflow.entry(category).or_insert(0) += 1;
        let total: u64 = self.overflow.values().sum();
        let breakdown: Vec<String> = self
            .overflow
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let summary = ActionTaken {
            at,
            what: format!(
                "and {total} more actions not listed one by one ({})",
                breakdown.join(", ")
            ),
        };
        if actions.len() >= ACTIONS_CAP {
            actions.truncate(ACTIONS_CAP - 1);
        }
        actions.push(summary);
    }

    pub(super) fn decide(&mut self, at: Millis, text: String) {
        self.incident.decisions.push(Decision {
            at,
            by: "rampart".into(),
            text,
            told: None,
        });
        self.dirty = true;
    }

    pub(super) fn add_traffic(
        &mut self,
        at: Millis,
        rps: f64,
        requests: u32,
        blocked: u32,
        challenged: u32,
        limited: u32,
    ) {
        let incident = &mut self.incident;
        incident.requests += u64::from(requests);
        incident.blocked += u64::from(blocked);
        incident.challenged += u64::from(challenged);
        incident.limited += u64::from(limited);
        if rps > incident.peak_rps {
            incident.peak_rps = rps;
            incident.peak_at = at;
        }
        self.dirty = true;
    }

    pub(super) fn left(&self) -> DataLeft {
        if self.left_yes {
            DataLeft::Yes
        } else if self.dropped_while_open {
            DataLeft::Unknown
        } else {
            DataLeft::Prevented
        }
    }

    /// Adds personal data found in a response.
    pub(super) fn expose(&mut self, action: &str, entities: &[EntityCount]) {
        // Only a block or a redaction kept the data in; any other action
        // (alert, or one this build does not know) counts as data that left.
        if !matches!(action, "block" | "redact") {
            self.left_yes = true;
        }
        let left = self.left();
        let data = self.incident.data.get_or_insert_with(|| DataExposure {
            left,
            entities: Vec::new(),
            records: 0,
            people: 0,
            categories: Vec::new(),
            special_category: false,
        });
        for entity in entities {
            match data.entities.iter_mut().find(|t| t.key == entity.kind) {
                Some(tally) => tally.count += u64::from(entity.count),
                None => data.entities.push(Tally {
                    key: entity.kind.clone(),
                    count: u64::from(entity.count),
                }),
            }
            data.records += u64::from(entity.distinct);
            let (categories, special) = ico_categories(&entity.kind);
            for category in categories {
                if !data.categories.iter().any(|c| c == category) {
                    data.categories.push((*category).to_string());
                }
            }
            data.special_category |= special;
        }
        data.people = data.records;
        data.left = left;
        self.dirty = true;
    }

    /// The severity the incident's facts call for, and why.
    pub(super) fn assess(&self) -> (Severity, &'static str) {
        let incident = &self.incident;
        match self.kind() {
            IncidentKind::Flood | IncidentKind::Injection | IncidentKind::CredentialStuffing => {
                if self.degraded {
                    (Severity::High, "the site degraded (upstream errors)")
                } else if incident.last_event - incident.first_event >= SUSTAINED_MS {
                    (Severity::Medium, "sustained for over 10 minutes")
                } else {
                    (Severity::Low, "absorbed by the gateway")
                }
            }
            IncidentKind::Availability => (Severity::High, "the site degraded"),
            IncidentKind::CanaryTrip => (
                Severity::Critical,
                "someone reached a planted canary record",
            ),
            IncidentKind::DataLeak => match &incident.data {
                Some(data) if data.left == DataLeft::Yes && data.special_category => {
                    (Severity::Critical, "special-category data left")
                }
                Some(data) if data.left == DataLeft::Yes => (Severity::High, "personal data left"),
                _ => (Severity::Medium, "personal data stopped at the gateway"),
            },
        }
    }

    /// The incident as it stands, with its lists brought up to date.
    pub(super) fn snapshot(&mut self) -> Incident {
        self.incident.distinct_sources = self.sources.count();
        self.incident.top_prefixes = self.prefixes.top(TOP_PREFIXES, PrefixKey::label);
        self.incident.rules = self.rules.top(TOP_TALLIES, u32::to_string);
        self.incident.attacks = self.attacks.top(TOP_TALLIES, String::clone);
        if let Some(data) = &mut self.incident.data {
            data.entities
                .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        }
        self.incident.title = title(&self.incident);
        self.dirty = false;
        self.incident.clone()
    }

    /// Re-assesses severity and emits `Escalated` when it rose or when
    /// `reasons` already holds a reason (data left, peak doubled).
    pub(super) fn escalate(
        &mut self,
        at: Millis,
        mut reasons: Vec<String>,
        changes: &mut Vec<Change>,
    ) {
        let (severity, cause) = self.assess();
        if severity > self.incident.severity {
            self.incident.severity = severity;
            reasons.push(format!("severity rose to {}: {cause}", severity));
        }
        if reasons.is_empty() {
            return;
        }
        let why = reasons.join("; ");
        self.decide(at, format!("escalated: {why}"));
        changes.push(Change::Escalated {
            incident: self.snapshot(),
            why,
        });
    }
}

pub(super) fn title(incident: &Incident) -> String {
    let site = if incident.site.is_empty() {
        "unmatched hosts"
    } else {
        incident.site.as_str()
    };
    match incident.kinds[0] {
        IncidentKind::Flood => format!("HTTP flood against {site}"),
        IncidentKind::Injection => {
            let mut attacks: Vec<&str> = incident
                .attacks
                .iter()
                .take(4)
                .map(|t| t.key.as_str())
                .collect();
            attacks.sort_unstable();
            if attacks.is_empty() {
                format!("Injection campaign against {site}")
            } else {
                format!("Injection campaign against {site} ({})", attacks.join(", "))
            }
        }
        IncidentKind::CredentialStuffing => format!("Credential stuffing against {site}"),
        IncidentKind::DataLeak => {
            let kinds: Vec<&str> = incident
                .data
                .iter()
                .flat_map(|d| d.entities.iter().take(4))
                .map(|t| t.key.as_str())
                .collect();
            if kinds.is_empty() {
                format!("Personal data in responses from {site}")
            } else {
                format!(
                    "Personal data in responses from {site} ({})",
                    kinds.join(", ")
                )
            }
        }
        IncidentKind::CanaryTrip => match incident.data.as_ref().map(|d| d.left) {
            Some(DataLeft::Yes) => format!("Canary record left {site}"),
            Some(DataLeft::Unknown) => format!("Canary record may have left {site}"),
            _ => format!("Canary record stopped leaving {site}"),
        },
        IncidentKind::Availability => format!("Upstream failing for {site}"),
    }
}

/// A duration in words: `60 s`, `5 minutes`, `2 hours`.
pub(super) fn duration(ms: Millis) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if ms >= 2 * 3_600_000 && ms % 3_600_000 == 0 {
        plural(ms / 3_600_000, "hour")
    } else if ms >= 120_000 {
        plural((ms + 30_000) / 60_000, "minute")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}
/// Counts one event into an open incident: membership, and what the event
/// says about actions, rules, attacks and data.
pub(super) fn absorb(open: &mut Open, event: &Event) {
    let at = event.at;
    open.member(at, event.client);
    let prefix = || {
        event
            .client
            .map(source_prefix)
            .unwrap_or_else(|| "an unknown client".into())
    };
    match &event.kind {
        EventKind::Traffic {
            window_ms,
            requests,
            blocked,
            challenged,
            limited,
            ..
        } => {
            let rps = f64::from(*requests) * 1000.0 / f64::from((*window_ms).max(1));
            open.add_traffic(at, rps, *requests, *blocked, *challenged, *limited);
        }
        EventKind::WafBlock { rules, attacks, .. } | EventKind::WafMatch { rules, attacks, .. } => {
            for rule in rules {
                open.rules.add(rule, 1);
            }
            for attack in attacks {
                open.attacks.add(attack.as_str(), 1);
            }
        }
        EventKind::Banned {
            until,
            level,
            reason,
        } => {
            if let Some(client) = event.client {
                if open.banned.len() < BANNED_CAP {
                    open.banned.insert(PrefixKey::of(client));
                }
            }
            let what = format!(
                "client prefix {} banned for {} (level {level}, {})",
                prefix(),
                duration(until.saturating_sub(at).max(0)),
                reason.replace('_', " ")
            );
            open.action(at, "bans", what);
        }
        EventKind::Unbanned => open.action(
            at,
            "unbans",
            format!("client prefix {} unbanned by an operator", prefix()),
        ),
        EventKind::ModeChanged {
            under_attack,
            reason,
        } => {
            let site = display_site(&open.incident.site);
            let what = if *under_attack {
                format!("site {site} switched to under-attack mode: {reason}")
            } else {
                format!("site {site} left under-attack mode: {reason}")
            };
            open.action(at, "mode changes", what);
        }
        EventKind::Leak {
            action, entities, ..
        } => {
            let found: Vec<String> = entities
                .iter()
                .map(|e| format!("{} x{}", e.kind, e.count))
                .collect();
            let (done, category) = leak_action(action);
            open.action(
                at,
                category,
                format!(
                    "{done} on {}: {}",
                    display_route(&event.route),
                    found.join(", ")
                ),
            );
            open.expose(action, entities);
        }
        EventKind::CanaryTrip { action, count, .. } => {
            let (done, category) = leak_action(action);
            let values = if *count == 1 {
                "1 canary value".to_string()
            } else {
                format!("{count} canary values")
            };
            open.action(
                at,
                category,
                format!("{done} on {}: {values}", display_route(&event.route)),
            );
            let entity = EntityCount {
                kind: "canary".into(),
                count: *count,
                distinct: *count,
                sample: String::new(),
            };
            open.expose(action, std::slice::from_ref(&entity));
        }
        _ => {}
    }
}

pub(super) fn leak_action(action: &str) -> (&'static str, &'static str) {
    match action {
        "block" => ("response blocked", "responses blocked"),
        "redact" => ("response redacted", "responses redacted"),
        "alert" => ("response sent with it (alert mode)", "responses sent"),
        _ => ("response sent with it (unknown action)", "responses sent"),
    }
}

pub(super) fn display_site(site: &str) -> &str {
    if site.is_empty() {
        "(none)"
    } else {
        site
    }
}

pub(super) fn display_route(route: &str) -> &str {
    if route.is_empty() {
        "/"
    } else {
        route
    }
}
