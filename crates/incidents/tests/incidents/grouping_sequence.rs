//! Grouping a recorded sequence: twenty minutes of two sites with a flood, an
//! injection burst from one /24, a blocked leak and a canary trip, replayed
//! the way the writer feeds the grouper (events in order, a tick a second).
//! Every expectation is computed from the sequence built here.

use crate::store_fixture::opened;
use rampart_incidents::grouping::{Change, Grouper, Thresholds};
use rampart_incidents::{
    source_prefix, DataLeft, EntityCount, Event, EventKind, Incident, IncidentKind, IncidentStatus,
    Millis, Severity,
};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

const T0: Millis = 1_700_000_000_000;
const END_S: i64 = 1200;

fn at(second: i64) -> Millis {
    T0 + second * 1000
}

fn ev(second: i64, site: &str, client: Option<&str>, route: &str, kind: EventKind) -> Event {
    Event {
        at: at(second),
        site: site.into(),
        client: client.map(|c| c.parse().unwrap()),
        route: route.into(),
        kind,
    }
}

struct Sample {
    second: i64,
    site: &'static str,
    requests: u32,
    blocked: u32,
    challenged: u32,
    limited: u32,
}

/// The sequence, second by second: `Traffic` first in each second (the
/// gateway's one-second summary), then that second's events.
struct Sequence {
    traffic: Vec<Sample>,
    events: Vec<Event>,
}

const FLOOD_FROM: i64 = 200;
const FLOOD_TO: i64 = 320; // exclusive
const LIMITS_FROM: i64 = 195;
const MODE_ON: i64 = 203;
const MODE_OFF: i64 = 330;
const BANS: [(i64, u32); 3] = [(205, 1), (210, 1), (215, 2)];
const INJECTION_FROM: i64 = 400;
const INJECTION_TO: i64 = 430;
const LEAKS: [i64; 2] = [700, 760];
const CANARY: i64 = 800;
const SECRET_SAMPLES: [&str; 3] = [
    "SAMPLE-SECRET-ALICE",
    "SAMPLE-SECRET-BOB",
    "SAMPLE-SECRET-EMAIL",
];

fn build() -> Sequence {
    let mut traffic = Vec::new();
    let mut events = Vec::new();
    for s in 0..=END_S {
        let mut demo = Sample {
            second: s,
            site: "demo",
            requests: 20 + (s % 7) as u32,
            blocked: 0,
            challenged: 0,
            limited: 0,
        };
        if (FLOOD_FROM..FLOOD_TO).contains(&s) {
            demo.requests = 1500 + ((s - FLOOD_FROM) * 37 % 1200) as u32;
            demo.limited = 600;
            demo.challenged = 300;
            demo.blocked = 100;
        }
        if (INJECTION_FROM..INJECTION_TO).contains(&s) {
            demo.blocked = 1;
        }
        traffic.push(demo);
        traffic.push(Sample {
            second: s,
            site: "shop",
            requests: 5,
            blocked: 0,
            challenged: 0,
            limited: 0,
        });

        // The flood: rate-limit answers from a botnet concentrated in one /24,
        // starting a few seconds before the refused rate crosses the threshold.
        if (LIMITS_FROM..FLOOD_TO).contains(&s) {
            for i in 0..5 {
                let client = format!("198.51.100.{}", (s * 7 + i) % 200 + 1);
                let scope = if i % 2 == 0 { "client" } else { "prefix" };
                events.push(ev(
                    s,
                    "demo",
                    Some(&client),
                    "/",
                    EventKind::RateLimited {
                        scope: scope.into(),
                    },
                ));
            }
            for i in 0..2 {
                let client = format!("192.0.2.{}", (s + i) % 50 + 1);
                events.push(ev(
                    s,
                    "demo",
                    Some(&client),
                    "/donate",
                    EventKind::RateLimited {
                        scope: "route".into(),
                    },
                ));
            }
            let client = format!("2001:db8:aa::{:x}", s % 30 + 1);
            events.push(ev(
                s,
                "demo",
                Some(&client),
                "/",
                EventKind::RateLimited {
                    scope: "client".into(),
                },
            ));
        }
        if s == MODE_ON || s == MODE_OFF {
            let reason = if s == MODE_ON {
                "surge: requests/s 1574 > 400"
            } else {
                "calm for 5 minutes"
            };
            events.push(ev(
                s,
                "demo",
                None,
                "",
                EventKind::ModeChanged {
                    under_attack: s == MODE_ON,
                    reason: reason.into(),
                },
            ));
        }
        for (second, level) in BANS {
            if s == second {
                let client = format!("198.51.100.{}", second % 200 + 1);
                let kind = EventKind::Banned {
                    until: at(s) + 600_000,
                    level,
                    reason: "rate_limits".into(),
                };
                events.push(ev(s, "demo", Some(&client), "/", kind));
            }
        }

        // The injection burst: one block a second from a /24, alternating
        // SQL injection and XSS, one ban, and one block from elsewhere.
        if (INJECTION_FROM..INJECTION_TO).contains(&s) {
            let client = format!("203.0.113.{}", s % 40 + 1);
            let kind = if s % 2 == 0 {
                EventKind::WafBlock {
                    detail: None,
                    rules: vec![942100, 942190],
                    score: 10,
                    attacks: vec!["sqli".into()],
                    status: 403,
                }
            } else {
                EventKind::WafBlock {
                    detail: None,
                    rules: vec![941100],
                    score: 5,
                    attacks: vec!["xss".into()],
                    status: 403,
                }
            };
            events.push(ev(s, "demo", Some(&client), "/search", kind));
        }
        if s == 405 {
            let kind = EventKind::Banned {
                until: at(s) + 3_600_000,
                level: 1,
                reason: "waf".into(),
            };
            events.push(ev(s, "demo", Some("203.0.113.7"), "/search", kind));
        }
        if s == 410 {
            let kind = EventKind::WafBlock {
                detail: None,
                rules: vec![930120],
                score: 5,
                attacks: vec!["lfi".into()],
                status: 403,
            };
            events.push(ev(s, "demo", Some("192.0.2.200"), "/files", kind));
        }

        // The shop sees two groups of four blocks, each below the threshold.
        if (500..504).contains(&s) || (600..604).contains(&s) {
            let kind = EventKind::WafBlock {
                detail: None,
                rules: vec![942100],
                score: 5,
                attacks: vec!["sqli".into()],
                status: 403,
            };
            events.push(ev(s, "shop", Some("203.0.113.99"), "/basket", kind));
        }

        // A donor list blocked on its way out, twice.
        if s == LEAKS[0] {
            let entities = vec![EntityCount {
                kind: "donor_list".into(),
                count: 120,
                distinct: 118,
                sample: SECRET_SAMPLES[0].into(),
            }];
            let kind = EventKind::Leak {
                action: "block".into(),
                reference: "ref-1".into(),
                entities,
            };
            events.push(ev(s, "demo", Some("203.0.113.50"), "/donations/feed", kind));
        }
        if s == LEAKS[1] {
            let entities = vec![
                EntityCount {
                    kind: "donor_list".into(),
                    count: 80,
                    distinct: 80,
                    sample: SECRET_SAMPLES[1].into(),
                },
                EntityCount {
                    kind: "email".into(),
                    count: 3,
                    distinct: 3,
                    sample: SECRET_SAMPLES[2].into(),
                },
            ];
            let kind = EventKind::Leak {
                action: "block".into(),
                reference: "ref-2".into(),
                entities,
            };
            events.push(ev(s, "demo", Some("203.0.113.51"), "/donations/feed", kind));
        }
        // A canary record went out on a route in alert mode.
        if s == CANARY {
            let kind = EventKind::CanaryTrip {
                action: "alert".into(),
                reference: "ref-3".into(),
                count: 2,
            };
            events.push(ev(s, "demo", Some("2001:db8:bb::5"), "/api/export", kind));
        }
    }
    Sequence { traffic, events }
}

fn traffic_event(sample: &Sample) -> Event {
    ev(
        sample.second,
        sample.site,
        None,
        "",
        EventKind::Traffic {
            window_ms: 1000,
            requests: sample.requests,
            blocked: sample.blocked,
            challenged: sample.challenged,
            limited: sample.limited,
            upstream_errors: 0,
        },
    )
}

/// Replays the sequence as the writer would, returning every change.
fn replay(sequence: &Sequence, grouper: &mut Grouper) -> Vec<Change> {
    let mut changes = Vec::new();
    let (mut traffic, mut events) = (
        sequence.traffic.iter().peekable(),
        sequence.events.iter().peekable(),
    );
    for s in 0..=END_S + 400 {
        while let Some(sample) = traffic.next_if(|t| t.second == s) {
            changes.extend(grouper.observe(&traffic_event(sample)));
        }
        while let Some(event) = events.next_if(|e| e.at == at(s)) {
            changes.extend(grouper.observe(event));
        }
        changes.extend(grouper.tick(at(s) + 500));
        changes.extend(grouper.updates());
    }
    changes
}

/// Where an incident closes: at the first event of its site, or the first
/// tick, at or after `last + quiet`.
fn close_time(sequence: &Sequence, site: &str, last: Millis, quiet: Millis) -> Millis {
    let due = last + quiet;
    let next_traffic = sequence
        .traffic
        .iter()
        .filter(|t| t.site == site)
        .map(|t| at(t.second))
        .find(|&a| a >= due);
    let next_event = sequence
        .events
        .iter()
        .filter(|e| e.site == site)
        .map(|e| e.at)
        .find(|&a| a >= due);
    let next_tick = (0..).map(|s| at(s) + 500).find(|&a| a >= due).unwrap();
    [next_traffic, next_event, Some(next_tick)]
        .into_iter()
        .flatten()
        .min()
        .unwrap()
}

/// Traffic totals of a site over `[from, to)` seconds: (requests, blocked, challenged, limited, peak, peak at).
fn totals(
    sequence: &Sequence,
    site: &str,
    from: i64,
    to: i64,
) -> (u64, u64, u64, u64, f64, Millis) {
    let mut sum = (0u64, 0u64, 0u64, 0u64, 0.0f64, 0);
    for t in sequence
        .traffic
        .iter()
        .filter(|t| t.site == site && t.second >= from && t.second < to)
    {
        sum.0 += u64::from(t.requests);
        sum.1 += u64::from(t.blocked);
        sum.2 += u64::from(t.challenged);
        sum.3 += u64::from(t.limited);
        if f64::from(t.requests) > sum.4 {
            sum.4 = f64::from(t.requests);
            sum.5 = at(t.second);
        }
    }
    sum
}

fn prefix_counts<'a>(events: impl Iterator<Item = &'a Event>) -> (BTreeMap<String, u64>, usize) {
    let mut prefixes = BTreeMap::new();
    let mut clients = HashSet::new();
    for event in events {
        if let Some(client) = event.client {
            *prefixes.entry(source_prefix(client)).or_insert(0) += 1;
            clients.insert(client);
        }
    }
    (prefixes, clients.len())
}

fn busiest(prefixes: &BTreeMap<String, u64>) -> (String, u64) {
    let (key, count) = prefixes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .unwrap();
    (key.clone(), *count)
}

fn second_of(millis: Millis) -> i64 {
    (millis - T0).div_euclid(1000)
}

#[test]
fn a_recorded_day_groups_into_the_expected_incidents() {
    let sequence = build();
    let thresholds = Thresholds::default();
    let quiet = thresholds.quiet.as_millis() as Millis;
    let mut grouper = Grouper::new(thresholds.clone());
    let changes = replay(&sequence, &mut grouper);

    let opened = opened(&changes);
    let closed: BTreeMap<IncidentKind, &Incident> = changes
        .iter()
        .filter_map(|c| {
            if let Change::Closed(i) = c {
                Some((i.kinds[0], i))
            } else {
                None
            }
        })
        .collect();
    let opened_kinds: Vec<(String, IncidentKind)> = opened
        .iter()
        .map(|i| (i.site.clone(), i.kinds[0]))
        .collect();
    assert_eq!(
        opened_kinds,
        [
            ("demo".to_string(), IncidentKind::Flood),
            ("demo".to_string(), IncidentKind::Injection),
            ("demo".to_string(), IncidentKind::DataLeak),
            ("demo".to_string(), IncidentKind::CanaryTrip),
        ],
        "exactly these incidents open, in this order (the shop's scattered blocks stay below the threshold)"
    );
    assert_eq!(
        closed.len(),
        4,
        "every incident closes after the quiet period"
    );
    assert!(grouper.open_incidents().is_empty());
    for incident in closed.values() {
        assert_eq!(incident.status, IncidentStatus::Closed);
        assert_eq!(incident.decisions.first().unwrap().by, "rampart");
        assert!(
            incident.decisions[0].text.starts_with("opened: "),
            "{:?}",
            incident.decisions
        );
        assert_eq!(
            incident.decisions.last().unwrap().text,
            "closed after 5 minutes quiet"
        );
        assert_eq!(
            incident.closed_at,
            Some(close_time(
                &sequence,
                &incident.site,
                incident.last_event,
                quiet
            ))
        );
        assert_eq!(
            incident.deadline,
            incident.aware_at + rampart_incidents::ICO_WINDOW_MS
        );
        assert_eq!(incident.dropped_events, 0);
    }

    // The flood: everything it refused, from the first rate-limit answer of
    // the lead-in to the site leaving under-attack mode.
    let flood = closed[&IncidentKind::Flood];
    let flood_events: Vec<&Event> = sequence
        .events
        .iter()
        .filter(|e| {
            e.site == "demo"
                && matches!(
                    &e.kind,
                    EventKind::RateLimited { .. } | EventKind::ModeChanged { .. }
                )
                || matches!(&e.kind, EventKind::Banned { reason, .. } if reason == "rate_limits")
        })
        .collect();
    let flood_windows = sequence
        .traffic
        .iter()
        .filter(|t| t.site == "demo" && t.limited + t.challenged >= 50)
        .count();
    assert_eq!(flood.title, "HTTP flood against demo");
    assert_eq!(
        flood.first_event,
        at(LIMITS_FROM),
        "the lead-in's rate-limit answers count into the flood"
    );
    assert_eq!(flood.last_event, at(MODE_OFF));
    // Opened when the third flooding window ended: three seconds of pressure.
    let sustain_windows = thresholds.flood_sustain.as_secs() as i64;
    assert_eq!(flood.aware_at, at(FLOOD_FROM + sustain_windows - 1));
    assert_eq!(flood.events, (flood_events.len() + flood_windows) as u64);
    let closed_s = second_of(flood.closed_at.unwrap());
    let (requests, blocked, challenged, limited, peak, peak_at) =
        totals(&sequence, "demo", FLOOD_FROM, closed_s);
    assert_eq!(
        (
            flood.requests,
            flood.blocked,
            flood.challenged,
            flood.limited
        ),
        (requests, blocked, challenged, limited)
    );
    assert_eq!((flood.peak_rps, flood.peak_at), (peak, peak_at));
    let (prefixes, distinct) = prefix_counts(flood_events.iter().copied());
    assert_eq!(flood.distinct_sources, distinct as u64);
    let (top, count) = busiest(&prefixes);
    assert_eq!(top, "198.51.100.0/24");
    assert_eq!(
        (
            flood.top_prefixes[0].key.as_str(),
            flood.top_prefixes[0].count
        ),
        (top.as_str(), count)
    );
    assert_eq!(flood.top_prefixes.len(), prefixes.len());
    assert!(flood
        .top_prefixes
        .iter()
        .any(|t| t.key == source_prefix("2001:db8:aa::1".parse().unwrap())));
    let actions: Vec<&str> = flood.actions.iter().map(|a| a.what.as_str()).collect();
    assert_eq!(actions.len(), 2 + BANS.len(), "{actions:?}");
    assert_eq!(
        actions[0],
        "site demo switched to under-attack mode: surge: requests/s 1574 > 400"
    );
    assert_eq!(
        actions[1],
        "client prefix 198.51.100.0/24 banned for 10 minutes (level 1, rate limits)"
    );
    assert_eq!(
        actions[3],
        "client prefix 198.51.100.0/24 banned for 10 minutes (level 2, rate limits)"
    );
    assert_eq!(
        actions[4],
        "site demo left under-attack mode: calm for 5 minutes"
    );
    assert!(flood.data.is_none());
    assert_eq!(
        flood.severity,
        Severity::Low,
        "absorbed, and over in less than ten minutes"
    );

    // The injection campaign: opened by its fifth block, with the first four.
    let injection = closed[&IncidentKind::Injection];
    let injection_events: Vec<&Event> = sequence
        .events
        .iter()
        .filter(|e| {
            e.site == "demo"
                && (matches!(e.kind, EventKind::WafBlock { .. })
                    || matches!(&e.kind, EventKind::Banned { reason, .. } if reason == "waf"))
        })
        .collect();
    let blocks: Vec<&&Event> = injection_events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WafBlock { .. }))
        .collect();
    assert_eq!(
        injection.title,
        "Injection campaign against demo (lfi, sqli, xss)"
    );
    assert_eq!(injection.first_event, blocks[0].at);
    assert_eq!(
        injection.aware_at,
        blocks[thresholds.injection_blocks as usize - 1].at
    );
    assert_eq!(
        injection.decisions[0].text,
        "opened: 5 WAF blocks within 60 s reached the threshold of 5"
    );
    assert_eq!(injection.events, injection_events.len() as u64);
    let (prefixes, distinct) = prefix_counts(injection_events.iter().copied());
    assert_eq!(injection.distinct_sources, distinct as u64);
    assert_eq!(
        busiest(&prefixes),
        (
            "203.0.113.0/24".to_string(),
            injection.top_prefixes[0].count
        )
    );
    let mut rules: BTreeMap<String, u64> = BTreeMap::new();
    let mut attacks: BTreeMap<String, u64> = BTreeMap::new();
    for event in &blocks {
        if let EventKind::WafBlock {
            rules: r,
            attacks: a,
            ..
        } = &event.kind
        {
            r.iter()
                .for_each(|r| *rules.entry(r.to_string()).or_insert(0) += 1);
            a.iter()
                .for_each(|a| *attacks.entry(a.clone()).or_insert(0) += 1);
        }
    }
    let tallied = |t: &[rampart_incidents::Tally]| {
        t.iter()
            .map(|t| (t.key.clone(), t.count))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(tallied(&injection.rules), rules);
    assert_eq!(tallied(&injection.attacks), attacks);
    let open_s = second_of(injection.aware_at);
    let (requests, ..) = totals(
        &sequence,
        "demo",
        open_s + 1,
        second_of(injection.closed_at.unwrap()),
    );
    assert_eq!(
        injection.requests, requests,
        "traffic after the opening event, until it closed"
    );
    assert_eq!(injection.actions.len(), 1);
    assert_eq!(
        injection.actions[0].what,
        "client prefix 203.0.113.0/24 banned for 60 minutes (level 1, waf)"
    );

    // The leak: blocked both times, so prevented; a donor list is special category.
    let leak = closed[&IncidentKind::DataLeak];
    assert_eq!(
        leak.title,
        "Personal data in responses from demo (donor_list, email)"
    );
    assert_eq!(
        (leak.first_event, leak.last_event, leak.events),
        (at(LEAKS[0]), at(LEAKS[1]), 2)
    );
    assert_eq!(leak.severity, Severity::Medium);
    let data = leak.data.as_ref().unwrap();
    assert_eq!(data.left, DataLeft::Prevented);
    let mut matches: BTreeMap<String, u64> = BTreeMap::new();
    let mut records = 0;
    for event in &sequence.events {
        if let EventKind::Leak { entities, .. } = &event.kind {
            for e in entities {
                *matches.entry(e.kind.clone()).or_insert(0) += u64::from(e.count);
                records += u64::from(e.distinct);
            }
        }
    }
    assert_eq!(tallied(&data.entities), matches);
    assert_eq!(data.entities[0].key, "donor_list", "most first");
    assert_eq!((data.records, data.people), (records, records));
    assert!(data.special_category);
    assert!(data
        .categories
        .iter()
        .any(|c| c.contains("political opinions")));
    assert!(data.categories.iter().any(|c| c == "contact details"));
    assert_eq!(
        leak.actions[0].what,
        "response blocked on /donations/feed: donor_list x120"
    );

    // The canary: it went out (alert mode), so it left, and it is critical.
    let canary = closed[&IncidentKind::CanaryTrip];
    assert_eq!(canary.title, "Canary record left demo");
    assert_eq!(canary.severity, Severity::Critical);
    let data = canary.data.as_ref().unwrap();
    assert_eq!(data.left, DataLeft::Yes);
    assert_eq!(data.entities[0].key, "canary");
    assert_eq!(data.entities[0].count, 2);
    assert_eq!(
        canary.top_prefixes[0].key,
        source_prefix("2001:db8:bb::5".parse().unwrap())
    );

    // Nothing carries a whole client address or a leak sample.
    let addresses: HashSet<IpAddr> = sequence.events.iter().filter_map(|e| e.client).collect();
    for change in &changes {
        let json = serde_json::to_string(change.incident()).unwrap();
        for secret in SECRET_SAMPLES {
            assert!(!json.contains(secret), "a leak sample in {json}");
        }
        for address in &addresses {
            let text = address.to_string();
            for (i, _) in json.match_indices(&text) {
                let next = json[i + text.len()..].chars().next().unwrap_or(' ');
                assert!(
                    next.is_ascii_hexdigit() || next == '/',
                    "whole address {text} in {json}"
                );
            }
        }
    }
}
