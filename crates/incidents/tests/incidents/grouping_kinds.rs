//! The grouping engine's other paths: credential stuffing, availability,
//! escalation, dropped events, restoring after a restart, and the
//! thresholds' configuration.

use crate::store_fixture::opened;
use rampart_incidents::grouping::{Change, Grouper, Thresholds};
use rampart_incidents::{
    DataLeft, EntityCount, Event, EventKind, Incident, IncidentKind, IncidentStatus, Millis,
    Severity,
};

const T0: Millis = 1_700_000_000_000;

fn event(at: Millis, client: Option<String>, kind: EventKind) -> Event {
    Event {
        at,
        site: "demo".into(),
        client: client.map(|c| c.parse().unwrap()),
        route: "/login".into(),
        kind,
    }
}

fn traffic(at: Millis, requests: u32, refused: u32, upstream_errors: u32) -> Event {
    event(
        at,
        None,
        EventKind::Traffic {
            window_ms: 1000,
            requests,
            blocked: 0,
            challenged: 0,
            limited: refused,
            upstream_errors,
        },
    )
}

fn leak(at: Millis, action: &str) -> Event {
    let entities = vec![EntityCount {
        kind: "donor_list".into(),
        count: 10,
        distinct: 10,
        sample: "J*** S***".into(),
    }];
    event(
        at,
        None,
        EventKind::Leak {
            action: action.into(),
            reference: "r".into(),
            entities,
        },
    )
}

fn feed(grouper: &mut Grouper, events: &[Event]) -> Vec<Change> {
    events.iter().flat_map(|e| grouper.observe(e)).collect()
}

fn escalations(changes: &[Change]) -> Vec<(&Incident, &str)> {
    changes
        .iter()
        .filter_map(|c| {
            if let Change::Escalated { incident, why } = c {
                Some((incident, why.as_str()))
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn failed_logins_open_credential_stuffing_at_the_threshold() {
    let thresholds = Thresholds::default();
    let n = thresholds.login_failures as i64;
    let mut grouper = Grouper::new(thresholds);
    let failures: Vec<Event> = (0..n + 5)
        .map(|i| {
            let client = format!("198.51.100.{}", i % 100 + 1);
            event(
                T0 + i * 1000,
                Some(client),
                EventKind::LoginFailure {
                    account: format!("h{i}"),
                },
            )
        })
        .collect();
    let before = feed(&mut grouper, &failures[..n as usize - 1]);
    assert!(
        opened(&before).is_empty(),
        "one below the threshold opens nothing"
    );
    let changes = feed(&mut grouper, &failures[n as usize - 1..]);
    let incident = opened(&changes)[0];
    assert_eq!(incident.kinds, [IncidentKind::CredentialStuffing]);
    assert_eq!(incident.title, "Credential stuffing against demo");
    assert_eq!(incident.events, n as u64);
    assert_eq!(incident.first_event, T0);
    assert_eq!(incident.aware_at, T0 + (n - 1) * 1000);
    let now = grouper.open_incidents().remove(0);
    assert_eq!(now.events, n as u64 + 5);
    assert_eq!(now.top_prefixes[0].key, "198.51.100.0/24");
}

#[test]
fn failures_spread_wider_than_the_window_open_nothing() {
    let thresholds = Thresholds::default();
    let spacing = thresholds.login_window.as_millis() as Millis
        / i64::from(thresholds.login_failures - 1)
        + 1;
    let mut grouper = Grouper::new(thresholds.clone());
    let failures: Vec<Event> = (0..200)
        .map(|i| {
            event(
                T0 + i * spacing,
                None,
                EventKind::LoginFailure {
                    account: "h".into(),
                },
            )
        })
        .collect();
    assert!(opened(&feed(&mut grouper, &failures)).is_empty());
}

#[test]
fn upstream_failures_open_availability_from_events_or_traffic() {
    let thresholds = Thresholds::default();
    let n = thresholds.upstream_failures as i64;
    let mut by_events = Grouper::new(thresholds.clone());
    let failures: Vec<Event> = (0..n)
        .map(|i| {
            event(
                T0 + i * 100,
                None,
                EventKind::UpstreamFailure {
                    status: 502,
                    reason: "connect refused".into(),
                },
            )
        })
        .collect();
    let changes = feed(&mut by_events, &failures);
    let incident = opened(&changes)[0];
    assert_eq!(incident.kinds, [IncidentKind::Availability]);
    assert_eq!(incident.severity, Severity::High);
    assert_eq!(incident.events, n as u64);

    // The same failures seen only as traffic summaries.
    let mut by_traffic = Grouper::new(thresholds.clone());
    let per_window = 8;
    let windows = (n as u32).div_ceil(per_window);
    let samples: Vec<Event> = (1..=windows)
        .map(|i| traffic(T0 + i64::from(i) * 1000, 40, 0, per_window))
        .collect();
    let changes = feed(&mut by_traffic, &samples);
    let incident = opened(&changes)[0];
    assert_eq!(incident.kinds, [IncidentKind::Availability]);
    assert_eq!(incident.aware_at, samples.last().unwrap().at);
    assert_eq!(
        incident.requests, 40,
        "the window that crossed the threshold counts into the totals"
    );
}

#[test]
fn under_attack_mode_opens_a_flood_and_a_doubled_peak_escalates_it() {
    let mut grouper = Grouper::new(Thresholds::default());
    let mode = event(
        T0,
        None,
        EventKind::ModeChanged {
            under_attack: true,
            reason: "surge".into(),
        },
    );
    let changes = feed(&mut grouper, &[traffic(T0 - 1000, 100, 0, 0), mode]);
    let flood = opened(&changes)[0];
    assert_eq!(flood.kinds, [IncidentKind::Flood]);
    assert_eq!(
        flood.decisions[0].text,
        "opened: site demo switched to under-attack mode (surge)"
    );
    assert_eq!(
        flood.peak_rps, 0.0,
        "traffic before the incident is not its traffic"
    );

    let changes = feed(
        &mut grouper,
        &[
            traffic(T0 + 1000, 300, 10, 0),
            traffic(T0 + 2000, 590, 10, 0),
        ],
    );
    assert!(escalations(&changes).is_empty(), "{changes:?}");
    let changes = feed(&mut grouper, &[traffic(T0 + 3000, 600, 10, 0)]);
    let (incident, why) = escalations(&changes)[0];
    assert_eq!(
        why,
        "peak rose to 600 requests/s, twice the 300 reported before"
    );
    assert_eq!((incident.peak_rps, incident.peak_at), (600.0, T0 + 3000));
    assert_eq!(
        incident.decisions.last().unwrap().text,
        format!("escalated: {why}")
    );

    // Upstream errors at 10% of requests: the site degraded.
    let changes = feed(&mut grouper, &[traffic(T0 + 4000, 400, 10, 40)]);
    let (incident, why) = escalations(&changes)[0];
    assert_eq!(incident.severity, Severity::High);
    assert_eq!(
        why,
        "severity rose to high: the site degraded (upstream errors)"
    );
}

#[test]
fn a_leak_that_goes_out_escalates_and_dropped_events_make_it_unknown() {
    let mut grouper = Grouper::new(Thresholds::default());
    let changes = feed(&mut grouper, &[leak(T0, "block")]);
    let incident = opened(&changes)[0];
    assert_eq!(incident.data.as_ref().unwrap().left, DataLeft::Prevented);
    assert_eq!(incident.severity, Severity::Medium);

    let dropped = Event {
        at: T0 + 1,
        site: String::new(),
        client: None,
        route: String::new(),
        kind: EventKind::EventsDropped { count: 7 },
    };
    assert!(grouper.observe(&dropped).is_empty());
    let updates = grouper.updates();
    let Change::Updated(incident) = &updates[0] else {
        panic!("{updates:?}")
    };
    assert_eq!(incident.dropped_events, 7);
    assert_eq!(
        incident.data.as_ref().unwrap().left,
        DataLeft::Unknown,
        "dropped events might have been leaks"
    );

    let changes = feed(&mut grouper, &[leak(T0 + 1000, "alert")]);
    let (incident, why) = escalations(&changes)[0];
    assert_eq!(incident.data.as_ref().unwrap().left, DataLeft::Yes);
    assert_eq!(
        incident.severity,
        Severity::Critical,
        "donor lists are special-category data"
    );
    assert!(
        why.starts_with("personal data left: a response on /login went out with it"),
        "{why}"
    );
    assert!(why.contains("severity rose to critical"), "{why}");
    assert!(
        grouper.updates().is_empty(),
        "the escalation already carried the incident"
    );
}

#[test]
fn restored_incidents_continue_instead_of_reopening() {
    let thresholds = Thresholds::default();
    let mut before = Grouper::new(thresholds.clone());
    let blocks: Vec<Event> = (0..8)
        .map(|i| {
            let kind = EventKind::WafBlock {
                detail: None,
                rules: vec![942100],
                score: 5,
                attacks: vec!["sqli".into()],
                status: 403,
            };
            event(T0 + i * 1000, Some(format!("203.0.113.{}", i + 1)), kind)
        })
        .collect();
    feed(&mut before, &blocks[..6]);
    let mut open = before.open_incidents();
    open[0].id = 42;

    let mut after = Grouper::new(thresholds.clone());
    assert!(after.restore(open.clone()).is_empty());
    let changes = feed(&mut after, &blocks[6..]);
    assert!(
        opened(&changes).is_empty(),
        "the restored incident takes the new blocks"
    );
    let continued = after.open_incidents().remove(0);
    assert_eq!(continued.id, 42);
    assert_eq!(continued.events, 8);
    assert_eq!(continued.first_event, T0);
    assert_eq!(continued.distinct_sources, 8);
    assert_eq!(continued.top_prefixes[0].count, 8);
    assert_eq!(continued.rules[0].count, 8);

    // Quiet long enough by the clock alone: it closes on a tick.
    let quiet = thresholds.quiet.as_millis() as Millis;
    assert!(after.tick(continued.last_event + quiet - 1).is_empty());
    let changes = after.tick(continued.last_event + quiet);
    let Change::Closed(closed) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(closed.status, IncidentStatus::Closed);
    assert_eq!(closed.closed_at, Some(continued.last_event + quiet));

    // Two open for one site and kind: the later continues, the other closes.
    let mut twice = Grouper::new(thresholds);
    let mut older = open[0].clone();
    older.id = 41;
    older.last_event -= 1;
    let changes = twice.restore(vec![open[0].clone(), older]);
    let Change::Closed(closed) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(closed.id, 41);
    assert_eq!(twice.open_incidents()[0].id, 42);
}

#[test]
fn thresholds_read_from_configuration() {
    let defaults: Thresholds = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults, Thresholds::default());
    assert!(defaults.problems().is_empty());
    let custom: Thresholds =
        serde_json::from_str(r#"{"injection_blocks": 10, "quiet": "1m"}"#).unwrap();
    assert_eq!(
        (custom.injection_blocks, custom.quiet, custom.login_failures),
        (10, std::time::Duration::from_secs(60), 20)
    );
    let unknown = serde_json::from_str::<Thresholds>(r#"{"injection_block": 10}"#).unwrap_err();
    assert!(unknown.to_string().contains("unknown field"), "{unknown}");
    let bad = Thresholds {
        injection_blocks: 0,
        quiet: std::time::Duration::ZERO,
        ..Thresholds::default()
    };
    assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
}

#[test]
fn a_gateway_wide_ban_joins_the_injection_incident_of_the_site_it_concerns() {
    let mut grouper = Grouper::new(Thresholds::default());
    let block = |at: Millis, client: &str| {
        event(
            at,
            Some(client.to_string()),
            EventKind::WafBlock {
                detail: None,
                rules: vec![942100],
                score: 5,
                attacks: vec!["sqli".into()],
                status: 403,
            },
        )
    };
    let burst: Vec<Event> = (0..6).map(|i| block(T0 + i * 100, "203.0.113.9")).collect();
    let changes = feed(&mut grouper, &burst);
    assert!(changes
        .iter()
        .any(|c| matches!(c, Change::Opened(i) if i.kinds[0] == IncidentKind::Injection)));
    // The flood shield bans per client, not per site: its event has no site.
    let ban = Event {
        at: T0 + 1_000,
        site: String::new(),
        client: Some("203.0.113.9".parse().unwrap()),
        route: String::new(),
        kind: EventKind::Banned {
            until: T0 + 601_000,
            level: 1,
            reason: "waf".into(),
        },
    };
    grouper.observe(&ban);
    let open = grouper.open_incidents();
    let injection = open
        .iter()
        .find(|i| i.kinds[0] == IncidentKind::Injection)
        .expect("still open");
    assert_eq!(injection.site, "demo");
    assert!(
        injection
            .actions
            .iter()
            .any(|a| a.what.contains("203.0.113.0/24") && a.what.contains("banned")),
        "{:?}",
        injection.actions
    );
    assert!(
        !injection
            .actions
            .iter()
            .any(|a| a.what.contains("203.0.113.9")),
        "never the full address"
    );
    assert!(
        open.iter().all(|i| !i.site.is_empty()),
        "no incident for a site without a name"
    );
}
