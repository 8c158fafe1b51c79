//! Incidents for the report tests, built the way the grouping engine builds
//! them: from events, some of which carry real-looking personal data (client
//! addresses, a donor's name, email, card and NI number in the leak guard's
//! samples). What reaches the `Incident` is prefixes, counts and categories;
//! the tests check that nothing more reaches any report or export.

#![allow(dead_code)] // each test file uses a different part

use rampart_incidents::report::{Organisation, ReportInput, TimelinePoint};
use rampart_incidents::{
    ico_categories, source_prefix, ActionTaken, DataExposure, DataLeft, Decision, EntityCount,
    Event, EventKind, Incident, IncidentKind, IncidentStatus, Millis, Severity, Tally,
    ICO_WINDOW_MS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// 2026-11-29 00:00:00 UTC.
pub const DAY: Millis = 1_795_910_400_000;
pub const MINUTE: Millis = 60_000;

pub fn at(hour: i64, minute: i64) -> Millis {
    DAY + hour * 3_600_000 + minute * MINUTE
}

/// The personal values planted in the events; none may appear in any output.
pub const PERSONAL: &[&str] = &[
    "203.0.113.77",
    "203.0.113.78",
    "198.51.100.23",
    "2001:db8::1234",
    "Margaret Thornbury",
    "Thornbury",
    "m.thornbury@example.org",
    "4111 1111 1111 1111",
    "4111111111111111",
    "QQ 12 34 56 C",
    "QQ123456C",
];

pub const CLIENTS: &[&str] = &[
    "203.0.113.77",
    "203.0.113.78",
    "198.51.100.23",
    "2001:db8::1234",
];

pub fn organisation() -> Organisation {
    Organisation {
        name: "Example Party".into(),
        contact: "Data Protection Officer, dpo@example.org".into(),
        sector: "political party".into(),
    }
}

fn event(at: Millis, client: Option<&str>, route: &str, kind: EventKind) -> Event {
    Event {
        at,
        site: "demo".into(),
        client: client.map(|c| c.parse().unwrap()),
        route: route.into(),
        kind,
    }
}

/// The events of a polling-eve attack: a flood with an injection campaign
/// riding on it, and a donor feed that started publishing donors (blocked by
/// the leak guard), with a canary among them.
pub fn events() -> Vec<Event> {
    let mut events = Vec::new();
    // Traffic, one summary a minute from 09:58 to 10:40; the surge peaks at 10:12.
    for m in 0..=42 {
        let t = at(9, 58) + m * MINUTE;
        let minute = m - 14; // 10:12 is the peak
        let rps = if (-10..=10).contains(&minute) {
            950 - 80 * minute.abs()
        } else {
            40
        };
        let requests = (rps * 60) as u32;
        events.push(event(
            t,
            None,
            "",
            EventKind::Traffic {
                window_ms: 60_000,
                requests,
                blocked: requests / 5,
                challenged: requests / 4,
                limited: requests / 10,
                upstream_errors: if minute == 0 { 12 } else { 0 },
            },
        ));
    }
    for (i, client) in CLIENTS.iter().enumerate() {
        for k in 0..(10 - 2 * i as i64) {
            let t = at(10, 5) + k * MINUTE;
            events.push(event(
                t,
                Some(client),
                "/",
                EventKind::RateLimited {
                    scope: "prefix".into(),
                },
            ));
            events.push(event(t, Some(client), "/", EventKind::Challenged));
        }
    }
    for k in 0..6 {
        events.push(event(
            at(10, 8) + k * MINUTE,
            Some("198.51.100.23"),
            "/search",
            EventKind::WafBlock {
                detail: None,
                rules: vec![942100, 942190],
                score: 10,
                attacks: vec!["sqli".into()],
                status: 403,
            },
        ));
        events.push(event(
            at(10, 9) + k * MINUTE,
            Some("203.0.113.77"),
            "/search",
            EventKind::WafBlock {
                detail: None,
                rules: vec![941100],
                score: 5,
                attacks: vec!["xss".into()],
                status: 403,
            },
        ));
    }
    events.push(event(
        at(10, 11),
        None,
        "",
        EventKind::ModeChanged {
            under_attack: true,
            reason: "surge: requests/s 950 > 400".into(),
        },
    ));
    events.push(event(
        at(10, 13),
        Some("203.0.113.77"),
        "/",
        EventKind::Banned {
            until: at(10, 23),
            level: 2,
            reason: "rate_limits".into(),
        },
    ));
    // The leak guard's samples are masked in the real gateway; these are not,
    // to prove that samples never reach a report even if one slipped through.
    events.push(event(
        at(10, 15),
        Some("2001:db8::1234"),
        "/donors/feed",
        EventKind::Leak {
            action: "block".into(),
            reference: "R-7F3A".into(),
            entities: vec![
                EntityCount {
                    kind: "donor_list".into(),
                    count: 120,
                    distinct: 40,
                    sample: "Margaret Thornbury £250".into(),
                },
                EntityCount {
                    kind: "email".into(),
                    count: 40,
                    distinct: 40,
                    sample: "m.thornbury@example.org".into(),
                },
                EntityCount {
                    kind: "card".into(),
                    count: 3,
                    distinct: 3,
                    sample: "4111 1111 1111 1111".into(),
                },
                EntityCount {
                    kind: "ni_number".into(),
                    count: 2,
                    distinct: 2,
                    sample: "QQ 12 34 56 C".into(),
                },
            ],
        },
    ));
    events.push(event(
        at(10, 16),
        Some("2001:db8::1234"),
        "/donors/feed",
        EventKind::CanaryTrip {
            action: "block".into(),
            reference: "R-7F3B".into(),
            count: 1,
        },
    ));
    events.sort_by_key(|e| e.at);
    events
}

fn tallies(map: BTreeMap<String, u64>) -> Vec<Tally> {
    let mut out: Vec<Tally> = map
        .into_iter()
        .map(|(key, count)| Tally { key, count })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    out
}

/// Folds events into an incident as the grouping engine does: totals,
/// prefixes (never addresses), rule and attack tallies, actions in words
/// and the personal data as counts and categories.
pub fn incident_from(events: &[Event], kinds: Vec<IncidentKind>) -> Incident {
    let first_event = events.iter().map(|e| e.at).min().unwrap();
    let last_event = events.iter().map(|e| e.at).max().unwrap();
    let aware_at = at(10, 15);
    let (mut requests, mut blocked, mut challenged, mut limited) = (0u64, 0u64, 0u64, 0u64);
    let (mut peak_rps, mut peak_at) = (0.0f64, first_event);
    let mut prefixes = BTreeMap::new();
    let mut rules = BTreeMap::new();
    let mut attacks = BTreeMap::new();
    let mut sources: BTreeSet<IpAddr> = BTreeSet::new();
    let mut entities = BTreeMap::new();
    let mut records = 0u64;
    let mut left = DataLeft::No;
    let mut actions = Vec::new();
    for e in events {
        if let Some(client) = e.client {
            sources.insert(client);
            *prefixes.entry(source_prefix(client)).or_insert(0) += 1;
        }
        match &e.kind {
            EventKind::Traffic {
                window_ms,
                requests: r,
                blocked: b,
                challenged: c,
                limited: l,
                ..
            } => {
                requests += u64::from(*r);
                blocked += u64::from(*b);
                challenged += u64::from(*c);
                limited += u64::from(*l);
                let rps = f64::from(*r) * 1000.0 / f64::from(*window_ms);
                if rps > peak_rps {
                    peak_rps = rps;
                    peak_at = e.at;
                }
            }
            EventKind::WafBlock {
                rules: ids,
                attacks: types,
                ..
            } => {
                for id in ids {
                    *rules.entry(id.to_string()).or_insert(0) += 1;
                }
                for t in types {
                    *attacks.entry(t.clone()).or_insert(0) += 1;
                }
            }
            EventKind::ModeChanged {
                under_attack: true,
                reason,
            } => actions.push(ActionTaken {
                at: e.at,
                what: format!("site {} switched to under-attack mode: {reason}", e.site),
            }),
            EventKind::Banned { until, level, .. } => actions.push(ActionTaken {
                at: e.at,
                what: format!(
                    "client prefix {} banned for {} minutes (level {level})",
                    source_prefix(e.client.unwrap()),
                    (until - e.at) / MINUTE
                ),
            }),
            EventKind::Leak {
                action,
                reference,
                entities: found,
            } => {
                for f in found {
                    *entities.entry(f.kind.clone()).or_insert(0) += u64::from(f.count);
                    records += u64::from(f.distinct);
                }
                left = if action == "alert" {
                    DataLeft::Yes
                } else {
                    DataLeft::Prevented
                };
                actions.push(ActionTaken {
                    at: e.at,
                    what: format!(
                        "leak guard {action}ed a response on {} (reference {reference})",
                        e.route
                    ),
                });
            }
            EventKind::CanaryTrip {
                action,
                reference,
                count,
            } => {
                *entities.entry("canary".to_string()).or_insert(0) += u64::from(*count);
                actions.push(ActionTaken {
                    at: e.at,
                    what: format!(
                        "canary record {action}ed on {} (reference {reference})",
                        e.route
                    ),
                });
            }
            _ => {}
        }
    }
    let data = (left != DataLeft::No).then(|| {
        let mut categories = Vec::new();
        let mut special_category = false;
        for kind in entities.keys() {
            let (cats, special) = ico_categories(kind);
            special_category |= special;
            for c in cats {
                if !categories.contains(&c.to_string()) {
                    categories.push(c.to_string());
                }
            }
        }
        DataExposure {
            left,
            entities: tallies(entities),
            records,
            people: 40,
            categories,
            special_category,
        }
    });
    Incident {
        id: 42,
        title: "HTTP flood, injection campaign and donor data against demo".into(),
        site: "demo".into(),
        kinds,
        status: IncidentStatus::Open,
        severity: Severity::Critical,
        first_event,
        last_event,
        aware_at,
        deadline: aware_at + ICO_WINDOW_MS,
        closed_at: None,
        peak_rps,
        peak_at,
        requests,
        blocked,
        challenged,
        limited,
        events: events.len() as u64,
        distinct_sources: sources.len() as u64,
        top_prefixes: tallies(prefixes),
        rules: tallies(rules),
        attacks: tallies(attacks),
        actions,
        data,
        decisions: vec![
            Decision {
                at: at(10, 40),
                by: "Alex (duty officer)".into(),
                text:
                    "Kept under-attack mode on until the count; asked the host to watch the link."
                        .into(),
                told: Some("hosting provider".into()),
            },
            Decision {
                at: at(10, 30),
                by: "Alex (duty officer)".into(),
                text: "Took the donor feed offline pending a fix.".into(),
                told: None,
            },
        ],
        dropped_events: 0,
    }
}

/// A data section that says no personal data was involved.
pub fn no_personal_data() -> DataExposure {
    DataExposure {
        left: DataLeft::No,
        entities: vec![],
        records: 0,
        people: 0,
        categories: vec![],
        special_category: false,
    }
}

/// The realistic incident: flood, injection, a blocked donor-list leak and a canary.
pub fn realistic() -> Incident {
    incident_from(
        &events(),
        vec![
            IncidentKind::Flood,
            IncidentKind::Injection,
            IncidentKind::DataLeak,
            IncidentKind::CanaryTrip,
        ],
    )
}

/// One timeline point a minute, from the traffic events.
pub fn timeline() -> Vec<TimelinePoint> {
    events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Traffic {
                requests,
                blocked,
                challenged,
                limited,
                upstream_errors,
                ..
            } => Some(TimelinePoint {
                at: e.at,
                requests: requests.into(),
                blocked: blocked.into(),
                challenged: challenged.into(),
                limited: limited.into(),
                upstream_errors: upstream_errors.into(),
            }),
            _ => None,
        })
        .collect()
}

/// 10 h 40 min after aware: 61 h 20 min of the 72 left.
pub fn generated_at() -> Millis {
    at(20, 55)
}

pub fn input<'a>(
    incident: &'a Incident,
    timeline: &'a [TimelinePoint],
    organisation: &'a Organisation,
) -> ReportInput<'a> {
    ReportInput {
        incident,
        timeline,
        organisation,
        generated_at: generated_at(),
    }
}
