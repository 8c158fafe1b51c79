//! The admin API's routes under `/api/v1/` (see `docs/console.md`): what
//! each reads from the running gateway or its event store, and what each
//! changes. Reads of the store run on the blocking pool, on a read-only
//! connection of their own, so a slow query never holds a worker thread.

use std::net::IpAddr;
use std::time::Duration;

use http::Response;
use rampart_console::triage::{self, Exclusion};
use rampart_incidents::store::{EventQuery, Store};
use rampart_incidents::{Event, EventKind, Millis};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, json as answer, AdminApp, Call, Caller, Reply};
use crate::config::exclusions::{self, AddedExclusion};
use crate::config::{WafExclusion, WafMode};
use crate::incidents::now_ms;

/// The longest window a listing may ask for: the store keeps more, but a
/// console reads the recent past, and a bound keeps every query short.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// At most this many events are read for one listing or tally.
const MAX_EVENTS_READ: usize = 20_000;

type Answer = Response<Vec<u8>>;

/// A request body of type `T`, or what was wrong with it (for a 400).
fn body<'a, T: Deserialize<'a>>(call: &'a Call) -> Result<T, String> {
    serde_json::from_slice(&call.body)
        .map_err(|e| format!("the request body is not the JSON this call takes: {e}"))
}

/// A query parameter, percent-decoded.
fn param(call: &Call, name: &str) -> Option<String> {
    rampart_flood::pages::form_field(&call.query, name).map(rampart_flood::pages::percent_decode)
}

/// The `window` parameter (a humantime duration), or `default`.
fn window(call: &Call, default: Duration) -> Result<Duration, String> {
    let Some(text) = param(call, "window") else {
        return Ok(default);
    };
    match humantime::parse_duration(&text) {
        Ok(d) if !d.is_zero() && d <= MAX_WINDOW => Ok(d),
        Ok(_) => Err("window must be more than 0 and at most 7d".into()),
        Err(e) => Err(format!(
            "window `{text}` is not a duration such as 5m, 1h or 24h ({e})"
        )),
    }
}

fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// Who made a change, for the record: the name a caller gave, else how it
/// signed in.
fn actor(call: &Call, given: Option<&str>) -> String {
    let how = match call.by {
        Caller::Session { .. } => "console",
        _ => "api",
    };
    match given.map(str::trim).filter(|g| !g.is_empty()) {
        Some(name) => format!("{} ({how})", name.chars().take(80).collect::<String>()),
        None => how.to_string(),
    }
}

impl AdminApp {
    pub(super) async fn api(&self, call: &Call, segments: &[&str]) -> Reply {
        let decoded: Vec<String> = segments
            .iter()
            .map(|s| rampart_flood::pages::percent_decode(s))
            .collect();
        let seg: Vec<&str> = decoded.iter().map(String::as_str).collect();
        let answer = match (call.method.as_str(), seg.as_slice()) {
            ("GET", ["session"]) => self.session_csrf(call),
            ("DELETE", ["session"]) => self.sign_out(call),
            ("GET", ["overview"]) => self.overview(),
            ("GET", ["sites"]) => answer(200, Value::Array(self.sites())),
            ("PUT", ["sites", name, "mode"]) => self.set_mode(call, name),
            ("GET", ["traffic"]) => self.traffic(call),
            ("GET", ["live"]) => return Reply::Live,
            ("GET", ["bans"]) => self.bans(),
            ("POST", ["bans"]) => self.ban(call),
            ("DELETE", ["bans", address]) => self.unban(address),
            ("POST", ["reload"]) => self.reload(),
            ("GET", ["exclusions"]) => self.exclusions(),
            ("POST", ["exclusions"]) => self.add_exclusion(call).await,
            ("POST", ["exclusions", "proposal"]) => self.propose(call).await,
            ("GET", ["top"]) => self.top(call).await,
            ("GET", ["waf", "events"]) => self.waf_events(call).await,
            ("GET", ["leaks"]) => self.leaks(call).await,
            ("GET", ["incidents"]) => self.incidents().await,
            ("GET", ["incidents", id]) => self.incident(id).await,
            ("GET", ["incidents", id, "report"]) => self.report(call, id).await,
            ("POST", ["incidents", id, "decisions"]) => self.decide(call, id).await,
            (
                _,
                ["session" | "overview" | "sites" | "traffic" | "live" | "bans" | "reload"
                | "exclusions" | "top" | "waf" | "leaks" | "incidents", ..],
            ) => error(
                405,
                &format!(
                    "{} is not a method this route takes; see /api/v1/openapi.json",
                    call.method
                ),
            ),
            _ => error(404, "no such route; see /api/v1/openapi.json"),
        };
        Reply::Full(answer)
    }

    /// Runs `read` on a read-only connection to the event store, on the
    /// blocking pool; 409 when this gateway records no events.
    async fn with_store(
        &self,
        write: bool,
        read: impl FnOnce(&mut Store) -> Result<Answer, String> + Send + 'static,
    ) -> Answer {
        let Some(path) = self.runtime.events.store.clone() else {
            return error(
                409,
                "this gateway records no events ([incidents] record = false)",
            );
        };
        let done = tokio::task::spawn_blocking(move || {
            let store = if write {
                Store::open(&path)
            } else {
                Store::open_read_only(&path)
            };
            let mut store = store.map_err(|e| e.to_string())?;
            read(&mut store)
        })
        .await;
        match done {
            Ok(Ok(answer)) => answer,
            Ok(Err(why)) => error(500, &format!("the event store could not be read: {why}")),
            Err(e) => error(500, &format!("the event store read failed: {e}")),
        }
    }

    /// Each site with its WAF mode and, when the flood shield is on, its
    /// mode (`auto`, `under-attack` or `normal`) and whether it is under
    /// attack now.
    pub(super) fn sites(&self) -> Vec<Value> {
        let snapshot = self.runtime.snapshot();
        let shield = snapshot.flood.as_ref().map(|f| &f.shield);
        snapshot
            .config
            .sites
            .iter()
            .map(|site| {
                let id = shield.and_then(|s| s.site_id(&site.name));
                let (mode, under_attack) = match (shield, id) {
                    (Some(shield), Some(id)) => (
                        json!(match shield.manual_mode(id) {
                            None => "auto",
                            Some(true) => "under-attack",
                            Some(false) => "normal",
                        }),
                        json!(shield.under_attack(id)),
                    ),
                    _ => (Value::Null, Value::Null),
                };
                json!({
                    "name": site.name,
                    "hosts": site.hosts,
                    "waf": match site.waf.mode {
                        WafMode::On => "on",
                        WafMode::DetectionOnly => "detect",
                        WafMode::Off => "off",
                    },
                    "mode": mode,
                    "under_attack": under_attack,
                })
            })
            .collect()
    }

    fn overview(&self) -> Answer {
        let snapshot = self.runtime.snapshot();
        let mut pools: Vec<_> = snapshot.pools.iter().collect();
        pools.sort_by(|a, b| a.0.cmp(b.0));
        let upstreams: Vec<Value> = pools
            .into_iter()
            .flat_map(|(name, pool)| {
                pool.servers.iter().enumerate().map(move |(i, server)| {
                    json!({ "pool": name, "peer": server.address.to_string(), "healthy": pool.is_up(i) })
                })
            })
            .collect();
        answer(
            200,
            json!({
                "generation": snapshot.generation,
                "recording": self.runtime.events.enabled(),
                "flood": snapshot.flood.is_some(),
                "leak_guard": snapshot.leak.is_some(),
                "sites": self.sites(),
                "upstreams": upstreams,
            }),
        )
    }

    fn set_mode(&self, call: &Call, name: &str) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Mode {
            mode: String,
        }
        let wanted = match body::<Mode>(call) {
            Ok(m) => m.mode,
            Err(why) => return error(400, &why),
        };
        let manual = match wanted.as_str() {
            "under-attack" => Some(true),
            "normal" => Some(false),
            "auto" => None,
            _ => return error(400, "mode must be under-attack, normal or auto"),
        };
        let snapshot = self.runtime.snapshot();
        let Some(flood) = &snapshot.flood else {
            return error(409, "the flood shield is off in this configuration");
        };
        let Some(id) = flood.shield.site_id(name) else {
            return error(
                404,
                &format!("no site `{name}` in the flood shield's configuration"),
            );
        };
        flood.shield.set_mode(id, manual, crate::flood::now());
        let site = self
            .sites()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap_or(Value::Null);
        answer(200, site)
    }

    fn traffic(&self, call: &Call) -> Answer {
        let span = match window(call, Duration::from_secs(300)) {
            Ok(w) => w.min(Duration::from_secs(3600)),
            Err(why) => return error(400, &why),
        };
        let site = param(call, "site");
        let points = self
            .runtime
            .live
            .window(now_ms() - millis(span), site.as_deref());
        answer(200, json!({ "window_ms": millis(span), "points": points }))
    }

    fn bans(&self) -> Answer {
        let snapshot = self.runtime.snapshot();
        let Some(flood) = &snapshot.flood else {
            return answer(200, json!({ "bans": [] }));
        };
        let bans: Vec<Value> = flood
            .shield
            .bans(crate::flood::now(), 10_000)
            .into_iter()
            .map(|(ip, r)| {
                json!({
                    "address": ip.to_string(),
                    "until": r.until.as_secs() * 1000,
                    "level": r.level,
                    "reason": crate::verdict::serde_name(r.reason),
                })
            })
            .collect();
        answer(200, json!({ "bans": bans }))
    }

    fn ban(&self, call: &Call) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Ban {
            address: String,
            #[serde(default, rename = "for")]
            duration: Option<String>,
        }
        let ban = match body::<Ban>(call) {
            Ok(b) => b,
            Err(why) => return error(400, &why),
        };
        let Ok(address) = ban.address.trim().parse::<IpAddr>() else {
            return error(
                400,
                &format!("`{}` is not an IPv4 or IPv6 address", ban.address),
            );
        };
        let duration = match ban.duration.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            None => None,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if !d.is_zero() && d <= Duration::from_secs(365 * 24 * 3600) => Some(d),
                _ => return error(400, &format!("`for` must be a duration such as 10m, 1h or 7d, at most a year; `{text}` is not")),
            },
        };
        let snapshot = self.runtime.snapshot();
        let Some(flood) = &snapshot.flood else {
            return error(
                409,
                "the flood shield is off in this configuration, so nothing enforces bans",
            );
        };
        let record = flood.shield.ban(address, duration, crate::flood::now());
        // Other nodes at once, not at the clock's next second.
        if let Some(link) = self.runtime.cluster.get() {
            link.share(address, Some((record.until, record.level, record.reason)));
        }
        answer(
            201,
            json!({ "address": address.to_string(), "until": record.until.as_secs() * 1000, "level": record.level }),
        )
    }

    fn unban(&self, address: &str) -> Answer {
        let Ok(client) = address.parse::<IpAddr>() else {
            return error(400, &format!("`{address}` is not an IPv4 or IPv6 address"));
        };
        let snapshot = self.runtime.snapshot();
        let Some(flood) = &snapshot.flood else {
            return error(409, "the flood shield is off in this configuration");
        };
        let lifted = flood.shield.unban(client, crate::flood::now());
        if let Some(link) = self.runtime.cluster.get() {
            link.share(client, None);
        }
        answer(
            200,
            json!({ "address": client.to_string(), "unbanned": lifted }),
        )
    }

    fn reload(&self) -> Answer {
        match self.runtime.reload() {
            Ok(warnings) => answer(
                200,
                json!({ "reloaded": true, "generation": self.runtime.snapshot().generation, "warnings": warnings }),
            ),
            Err(errors) => {
                let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                answer(422, json!({ "reloaded": false, "errors": list }))
            }
        }
    }

    fn exclusions(&self) -> Answer {
        let snapshot = self.runtime.snapshot();
        let configured: Vec<Value> = snapshot
            .config
            .sites
            .iter()
            .flat_map(|s| {
                s.waf.exclusions.iter().map(move |e| {
                    json!({ "site": s.name, "prefix": e.prefix, "rule_ids": e.rule_ids, "target": e.target })
                })
            })
            .collect();
        answer(
            200,
            json!({
                "file": exclusions::path(&snapshot.config).display().to_string(),
                "exclusions": snapshot.config.added_exclusions,
                "configured": configured,
            }),
        )
    }

    /// `POST /api/v1/exclusions/proposal`: the narrowest exclusion that
    /// would have let a WAF event pass, and how many of the last day's WAF
    /// blocks it would have let pass.
    async fn propose(&self, call: &Call) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Proposal {
            event: i64,
        }
        let id = match body::<Proposal>(call) {
            Ok(p) => p.event,
            Err(why) => return error(400, &why),
        };
        let thresholds = self.thresholds();
        self.with_store(false, move |store| {
            let found = store
                .events(&EventQuery { id: Some(id), limit: 1, ..Default::default() })
                .map_err(|e| e.to_string())?;
            let Some((_, event)) = found.into_iter().next() else {
                return Ok(error(404, &format!("no event {id}")));
            };
            let Some(blocked) = triage_view(&event) else {
                return Ok(error(400, &format!("event {id} is not a WAF event with its matches on record")));
            };
            let threshold = threshold_of(&thresholds, &event.site);
            let Some(exclusion) = triage::propose(&blocked, threshold) else {
                return Ok(error(400, &format!("event {id} needs no exclusion: its score was under the site's threshold of {threshold}, or only CRS's scoring rules matched")));
            };
            let (would_allow, blocked) = count_allowed(store, &exclusion, &thresholds)?;
            Ok(answer(200, json!({ "exclusion": exclusion, "would_allow": would_allow, "blocked": blocked })))
        })
        .await
    }

    /// Each site's inbound anomaly threshold, for triage.
    fn thresholds(&self) -> Vec<(String, u32)> {
        self.runtime
            .snapshot()
            .config
            .sites
            .iter()
            .map(|s| (s.name.clone(), s.waf.inbound_threshold))
            .collect()
    }

    /// `POST /api/v1/exclusions`: appends the exclusion to the exclusions
    /// file, reloads, and records who did it and why.
    async fn add_exclusion(&self, call: &Call) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Add {
            #[serde(flatten)]
            exclusion: Exclusion,
            reason: String,
            #[serde(default)]
            by: Option<String>,
        }
        let add = match body::<Add>(call) {
            Ok(a) => a,
            Err(why) => return error(400, &why),
        };
        let reason = add.reason.trim();
        if reason.is_empty() || reason.len() > 500 {
            return error(400, "give a reason of 1 to 500 characters: it is kept with the exclusion and in the event log");
        }
        let snapshot = self.runtime.snapshot();
        let e = add.exclusion;
        if !snapshot.config.sites.iter().any(|s| s.name == e.site) {
            return error(400, &format!("no site named `{}`", e.site));
        }
        let entry = AddedExclusion {
            site: e.site.clone(),
            exclusion: WafExclusion {
                prefix: e.prefix.clone(),
                rule_ids: e.rule_ids.clone(),
                target: e.target.clone().filter(|t| !t.trim().is_empty()),
            },
            reason: reason.to_string(),
            by: actor(call, add.by.as_deref()),
            added: rampart_incidents::report::rfc3339(now_ms()),
        };
        if let Err(why) = entry.exclusion.check() {
            return error(400, &why);
        }
        let file = exclusions::path(&snapshot.config);
        let _one_at_a_time = self.changes.lock().await;
        if let Err(why) = exclusions::append(&file, &entry) {
            return error(500, &why);
        }
        let reloaded = self.runtime.reload();
        let what = format!(
            "rules {:?} off for {} on paths under {} of site {}",
            entry.exclusion.rule_ids,
            entry
                .exclusion
                .target
                .as_deref()
                .unwrap_or("the whole request"),
            entry.exclusion.prefix,
            entry.site
        );
        tracing::info!("exclusion added by {}: {what} ({})", entry.by, entry.reason);
        self.runtime.events.record(
            &entry.site,
            call.client,
            "",
            EventKind::OperatorAction {
                action: "exclusion_added".into(),
                by: entry.by.clone(),
                detail: what,
                reason: entry.reason.clone(),
            },
        );
        match reloaded {
            Ok(_) => answer(
                201,
                json!({ "exclusion": e, "reloaded": true, "generation": self.runtime.snapshot().generation, "file": file.display().to_string() }),
            ),
            Err(errors) => {
                let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                answer(
                    422,
                    json!({ "exclusion": e, "reloaded": false, "errors": list, "file": file.display().to_string() }),
                )
            }
        }
    }

    async fn top(&self, call: &Call) -> Answer {
        let span = match window(call, Duration::from_secs(3600)) {
            Ok(w) => w,
            Err(why) => return error(400, &why),
        };
        let key = call.query.clone();
        if let Some(cached) = self.top_cache.get(&key) {
            return cached;
        }
        let answer = self.with_store(false, move |store| {
            // The refused and flagged kinds only: the traffic samples (one
            // per site per second) are most of the store and hold no client.
            let kinds = [
                "waf_block", "waf_match", "rate_limited", "challenged", "queued", "banned",
                "leak", "canary_trip", "upstream_failure",
            ];
            let events = recent(store, span, kinds.map(String::from).to_vec())?;
            let mut clients = Tally::default();
            let mut paths = Tally::default();
            let mut rules = Tally::default();
            for (_, e) in &events {
                if let Some(c) = e.client {
                    clients.add(rampart_incidents::source_prefix(c));
                }
                match waf_detail(&e.kind) {
                    Some(d) => paths.add(d.path.clone()),
                    None if !e.route.is_empty() => paths.add(e.route.clone()),
                    None => {}
                }
                if let EventKind::WafBlock { rules: ids, .. } | EventKind::WafMatch { rules: ids, .. } = &e.kind {
                    for id in ids.iter().filter(|id| !triage::is_scoring_rule(**id)) {
                        rules.add(id.to_string());
                    }
                }
            }
            Ok(answer(
                200,
                json!({ "window_ms": millis(span), "clients": clients.top(10), "paths": paths.top(10), "rules": rules.top(10) }),
            ))
        })
        .await;
        if answer.status() == 200 {
            self.top_cache.put(key, answer.body());
        }
        answer
    }

    async fn waf_events(&self, call: &Call) -> Answer {
        let span = match window(call, Duration::from_secs(24 * 3600)) {
            Ok(w) => w,
            Err(why) => return error(400, &why),
        };
        let limit = param(call, "limit")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(100)
            .clamp(1, 1000);
        self.with_store(false, move |store| {
            let since = now_ms() - millis(span);
            let events = store
                .events(&EventQuery {
                    kinds: vec!["waf_block".into(), "waf_match".into()],
                    since: Some(since),
                    limit,
                    newest_first: true,
                    ..Default::default()
                })
                .map_err(|e| e.to_string())?;
            let list: Vec<Value> = events
                .iter()
                .filter_map(|(id, e)| waf_event_json(*id, e))
                .collect();
            Ok(answer(200, json!({ "events": list })))
        })
        .await
    }

    async fn leaks(&self, call: &Call) -> Answer {
        let span = match window(call, Duration::from_secs(24 * 3600)) {
            Ok(w) => w,
            Err(why) => return error(400, &why),
        };
        self.with_store(false, move |store| {
            let events = recent(store, span, vec!["leak".into(), "canary_trip".into()])?;
            let mut kinds = Tally::default();
            let mut list = Vec::new();
            for (id, e) in &events {
                let (action, reference, found): (&str, &str, Vec<(String, u64)>) = match &e.kind {
                    EventKind::Leak { action, reference, entities } => (
                        action,
                        reference,
                        entities.iter().map(|c| (c.kind.clone(), u64::from(c.count))).collect(),
                    ),
                    EventKind::CanaryTrip { action, reference, count } => {
                        (action, reference, vec![("canary".to_string(), u64::from(*count))])
                    }
                    _ => continue,
                };
                for (kind, count) in &found {
                    kinds.add_n(kind.clone(), *count);
                }
                if list.len() < 200 {
                    let found: Vec<Value> = found.iter().map(|(k, n)| json!({ "kind": k, "count": n })).collect();
                    list.push(json!({ "id": id, "at": e.at, "site": e.site, "route": e.route, "action": action, "reference": reference, "kinds": found }));
                }
            }
            Ok(answer(200, json!({ "kinds": kinds.top(usize::MAX).iter().map(|t| json!({ "kind": t["key"], "count": t["count"] })).collect::<Vec<_>>(), "events": list })))
        })
        .await
    }

    async fn incidents(&self) -> Answer {
        self.with_store(false, |store| {
            let mut list = store.incidents().map_err(|e| e.to_string())?;
            list.sort_by_key(|i| std::cmp::Reverse((i.last_event, i.id)));
            let list: Vec<Value> = list
                .iter()
                .map(|i| {
                    json!({
                        "id": i.id, "reference": i.reference(), "title": i.title, "site": i.site,
                        "kinds": i.kinds, "status": i.status, "severity": i.severity,
                        "first_event": i.first_event, "last_event": i.last_event,
                        "requests": i.requests, "blocked": i.blocked,
                    })
                })
                .collect();
            Ok(answer(200, Value::Array(list)))
        })
        .await
    }

    async fn incident(&self, id: &str) -> Answer {
        let Some(id) = incident_id(id) else {
            return error(
                400,
                "an incident is named by its number or reference, e.g. 3 or INC-3",
            );
        };
        self.with_store(false, move |store| {
            let Some(incident) = store.incident(id).map_err(|e| e.to_string())? else {
                return Ok(error(404, &format!("no incident INC-{id}")));
            };
            let timeline =
                crate::incidents::timeline(store, &incident).map_err(|e| e.to_string())?;
            let mut value = serde_json::to_value(&incident).map_err(|e| e.to_string())?;
            value["reference"] = json!(incident.reference());
            value["timeline"] = serde_json::to_value(&timeline).map_err(|e| e.to_string())?;
            Ok(answer(200, value))
        })
        .await
    }

    async fn report(&self, call: &Call, id: &str) -> Answer {
        let Some(id) = incident_id(id) else {
            return error(
                400,
                "an incident is named by its number or reference, e.g. 3 or INC-3",
            );
        };
        let format: rampart_incidents::Format = match param(call, "format")
            .unwrap_or_else(|| "markdown".into())
            .parse()
        {
            Ok(f) => f,
            Err(e) => return error(400, &e.to_string()),
        };
        let organisation =
            crate::incidents::organisation(Some(&self.runtime.snapshot().config.incidents));
        self.with_store(false, move |store| {
            let Some(incident) = store.incident(id).map_err(|e| e.to_string())? else {
                return Ok(error(404, &format!("no incident INC-{id}")));
            };
            let timeline =
                crate::incidents::timeline(store, &incident).map_err(|e| e.to_string())?;
            let input = rampart_incidents::report::ReportInput {
                incident: &incident,
                timeline: &timeline,
                organisation: &organisation,
                generated_at: now_ms(),
            };
            let text = rampart_incidents::export::render(&input, format);
            let content_type = match format {
                rampart_incidents::Format::Markdown => "text/markdown; charset=utf-8",
                rampart_incidents::Format::Html => "text/html; charset=utf-8",
                _ => "application/json",
            };
            let mut download = super::respond(200, content_type, text);
            let name = format!(
                "attachment; filename=\"{}.{}\"",
                incident.reference(),
                format.extension()
            );
            if let Ok(v) = http::HeaderValue::from_str(&name) {
                download
                    .headers_mut()
                    .insert(http::header::CONTENT_DISPOSITION, v);
            }
            // A report is a download, never a page of the console's origin.
            download.headers_mut().insert(
                "content-security-policy",
                http::HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                ),
            );
            Ok(download)
        })
        .await
    }

    async fn decide(&self, call: &Call, id: &str) -> Answer {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Decide {
            text: String,
            #[serde(default)]
            by: Option<String>,
            #[serde(default)]
            told: Option<String>,
        }
        let Some(id) = incident_id(id) else {
            return error(
                400,
                "an incident is named by its number or reference, e.g. 3 or INC-3",
            );
        };
        let decide = match body::<Decide>(call) {
            Ok(d) => d,
            Err(why) => return error(400, &why),
        };
        let text = decide.text.trim().to_string();
        if text.is_empty() || text.len() > 4000 {
            return error(400, "a decision is 1 to 4,000 characters of text");
        }
        let decision = rampart_incidents::Decision {
            at: now_ms(),
            by: actor(call, decide.by.as_deref()),
            text,
            told: decide.told.filter(|t| !t.trim().is_empty()),
        };
        self.with_store(true, move |store| {
            if store.incident(id).map_err(|e| e.to_string())?.is_none() {
                return Ok(error(404, &format!("no incident INC-{id}")));
            }
            store
                .add_decision(id, &decision)
                .map_err(|e| e.to_string())?;
            Ok(answer(
                201,
                json!({ "recorded": true, "incident": id, "by": decision.by }),
            ))
        })
        .await
    }
}

/// An incident's number from `3` or `INC-3`.
fn incident_id(text: &str) -> Option<i64> {
    let digits = text
        .strip_prefix("INC-")
        .or_else(|| text.strip_prefix("inc-"))
        .unwrap_or(text);
    digits.parse().ok().filter(|n| *n > 0)
}

/// The newest events of the window, of the given kinds (all when empty).
fn recent(store: &Store, span: Duration, kinds: Vec<String>) -> Result<Vec<(i64, Event)>, String> {
    store
        .events(&EventQuery {
            kinds,
            since: Some(now_ms() - millis(span)),
            limit: MAX_EVENTS_READ,
            newest_first: true,
            ..Default::default()
        })
        .map_err(|e| e.to_string())
}

fn waf_detail(kind: &EventKind) -> Option<&rampart_incidents::WafDetail> {
    match kind {
        EventKind::WafBlock { detail, .. } | EventKind::WafMatch { detail, .. } => {
            detail.as_deref()
        }
        _ => None,
    }
}

/// A WAF event as triage reads it (a logged one too: in detection-only
/// mode it is what would have been blocked); `None` for other events and
/// for those stored without their matches.
fn triage_view(event: &Event) -> Option<triage::Blocked<'_>> {
    match &event.kind {
        EventKind::WafBlock {
            detail: Some(detail),
            score,
            ..
        }
        | EventKind::WafMatch {
            detail: Some(detail),
            score,
            ..
        } => Some(triage::Blocked {
            site: &event.site,
            detail,
            score: *score,
        }),
        _ => None,
    }
}

/// A site's inbound anomaly threshold, CRS's default (5) for a site no
/// longer configured.
fn threshold_of(thresholds: &[(String, u32)], site: &str) -> u32 {
    thresholds
        .iter()
        .find(|(name, _)| name == site)
        .map_or(5, |(_, t)| *t)
}

/// How many of the last day's WAF blocks (with their matches on record) an
/// exclusion would have let pass, and how many such blocks there were.
fn count_allowed(
    store: &Store,
    exclusion: &Exclusion,
    thresholds: &[(String, u32)],
) -> Result<(u64, u64), String> {
    let blocks = recent(
        store,
        Duration::from_secs(24 * 3600),
        vec!["waf_block".into()],
    )?;
    let mut allowed = 0;
    let mut blocked = 0;
    for (_, e) in &blocks {
        if let Some(view) = triage_view(e) {
            blocked += 1;
            let threshold = threshold_of(thresholds, &e.site);
            allowed += u64::from(triage::would_allow(exclusion, &view, threshold));
        }
    }
    Ok((allowed, blocked))
}

/// A WAF event as the console lists it; the client as its prefix.
fn waf_event_json(id: i64, e: &Event) -> Option<Value> {
    let (blocked, rules, score, attacks, status, detail) = match &e.kind {
        EventKind::WafBlock {
            rules,
            score,
            attacks,
            status,
            detail,
        } => (true, rules, score, attacks, Some(*status), detail),
        EventKind::WafMatch {
            rules,
            score,
            attacks,
            detail,
        } => (false, rules, score, attacks, None, detail),
        _ => return None,
    };
    let (method, path, matches) = match detail.as_deref() {
        Some(d) => (
            d.method.as_str(),
            d.path.as_str(),
            serde_json::to_value(&d.matches).ok()?,
        ),
        None => ("", e.route.as_str(), json!([])),
    };
    Some(json!({
        "id": id, "at": e.at, "site": e.site,
        "client": e.client.map(rampart_incidents::source_prefix),
        "route": e.route, "method": method, "path": path, "blocked": blocked,
        "status": status, "score": score, "attacks": attacks, "rules": rules, "matches": matches,
    }))
}

/// Counts by key, for the top-N listings.
#[derive(Default)]
struct Tally(std::collections::HashMap<String, u64>);

impl Tally {
    fn add(&mut self, key: String) {
        self.add_n(key, 1);
    }

    fn add_n(&mut self, key: String, n: u64) {
        *self.0.entry(key).or_default() += n;
    }

    fn top(&self, n: usize) -> Vec<Value> {
        let mut list: Vec<(&String, &u64)> = self.0.iter().collect();
        list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        list.into_iter()
            .take(n)
            .map(|(k, c)| json!({ "key": k, "count": c }))
            .collect()
    }
}
