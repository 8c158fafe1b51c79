//! The event store on real SQLite files: events, incidents, decisions that
//! survive the writer's rewrites, the timeline, read-only access while
//! writing, and clear errors for files that are not a store.

use crate::store_fixture::{block, injection_incident, scratch};
use rampart_incidents::store::{EventQuery, Store, StoreErrorKind};
use rampart_incidents::{Decision, Event, EventKind, IncidentStatus, Millis, ICO_WINDOW_MS};

const T0: Millis = 1_700_000_000_000;

fn event(at: Millis, site: &str, client: Option<&str>, kind: EventKind) -> Event {
    Event {
        at,
        site: site.into(),
        client: client.map(|c| c.parse().unwrap()),
        route: "/search".into(),
        kind,
    }
}

fn traffic(at: Millis, site: &str, requests: u32, blocked: u32) -> Event {
    let kind = EventKind::Traffic {
        window_ms: 1000,
        requests,
        blocked,
        challenged: 1,
        limited: 2,
        upstream_errors: 0,
    };
    event(at, site, None, kind)
}

#[test]
fn events_round_trip_and_filter() {
    let dir = scratch("events");
    let mut store = Store::open(&dir.join("events.db")).unwrap();
    let events = vec![
        block(T0, "203.0.113.5"),
        traffic(T0 + 500, "demo", 30, 1),
        block(T0 + 1000, "2001:db8::7"),
        event(
            T0 + 2000,
            "shop",
            Some("203.0.113.5"),
            EventKind::LoginFailure {
                account: "k1".into(),
            },
        ),
        traffic(T0 + 3000, "shop", 4, 0),
    ];
    let ids = store.insert_batch(&events).unwrap();
    assert_eq!(ids.len(), events.len());
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    let all = store.events(&EventQuery::default()).unwrap();
    assert_eq!(
        all.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        events,
        "every field comes back"
    );
    assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);

    let query = |q: EventQuery| {
        store
            .events(&q)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        query(EventQuery {
            site: Some("shop".into()),
            ..Default::default()
        }),
        events[3..]
    );
    assert_eq!(
        query(EventQuery {
            kind: Some("waf_block".into()),
            ..Default::default()
        }),
        [events[0].clone(), events[2].clone()]
    );
    assert_eq!(
        query(EventQuery {
            client: Some("203.0.113.5".parse().unwrap()),
            ..Default::default()
        }),
        [events[0].clone(), events[3].clone()]
    );
    assert_eq!(
        query(EventQuery {
            since: Some(T0 + 500),
            until: Some(T0 + 2000),
            ..Default::default()
        }),
        events[1..4]
    );
    assert_eq!(
        query(EventQuery {
            limit: 2,
            ..Default::default()
        }),
        events[..2]
    );
    assert_eq!(EventQuery::default().limit, 1000);
}

#[test]
fn incidents_save_list_and_keep_operator_decisions() {
    let dir = scratch("incidents");
    let path = dir.join("events.db");
    let mut store = Store::open(&path).unwrap();
    let mut incident = injection_incident(T0);
    assert_eq!(incident.id, 0);
    store.save_incident(&mut incident).unwrap();
    assert!(incident.id > 0, "a new incident gets its id");
    assert_eq!(
        store.incident(incident.id).unwrap().as_ref(),
        Some(&incident)
    );
    assert_eq!(store.incident(incident.id + 100).unwrap(), None);

    // An operator decides while the gateway keeps rewriting the incident from
    // its own copy, which does not have the decision.
    let decision = Decision {
        at: incident.last_event + 10,
        by: "sam".into(),
        text: "reported to the NCSC".into(),
        told: Some("NCSC".into()),
    };
    let mut operator = Store::open(&path).unwrap();
    operator.add_decision(incident.id, &decision).unwrap();
    let stale = incident.clone();
    let mut writer_copy = stale.clone();
    writer_copy.events += 3;
    writer_copy.last_event += 5_000;
    store.save_incident(&mut writer_copy).unwrap();
    let merged = store.incident(incident.id).unwrap().unwrap();
    assert_eq!(
        merged.events,
        stale.events + 3,
        "the writer's update landed"
    );
    assert_eq!(
        merged.decisions.len(),
        stale.decisions.len() + 1,
        "and the operator's decision was kept"
    );
    assert_eq!(merged.decisions.last().unwrap(), &decision);

    // Saving the merged incident back does not duplicate the decision.
    let mut merged_copy = merged.clone();
    store.save_incident(&mut merged_copy).unwrap();
    assert_eq!(
        store.incident(incident.id).unwrap().unwrap().decisions,
        merged.decisions
    );

    let missing = operator.add_decision(9999, &decision).unwrap_err();
    assert_eq!(missing.kind(), StoreErrorKind::NoSuchIncident);
    assert!(missing.to_string().contains("INC-9999"), "{missing}");

    // The operator knew earlier than rampart did: the ICO clock moves.
    let earlier = incident.aware_at - 3_600_000;
    operator.set_aware_at(incident.id, earlier).unwrap();
    store.save_incident(&mut writer_copy).unwrap();
    let moved = store.incident(incident.id).unwrap().unwrap();
    assert_eq!(
        (moved.aware_at, moved.deadline),
        (earlier, earlier + ICO_WINDOW_MS)
    );
    assert_eq!(
        operator.set_aware_at(9999, earlier).unwrap_err().kind(),
        StoreErrorKind::NoSuchIncident
    );

    // A second, newer incident, closed: listings are newest first.
    let mut newer = injection_incident(T0);
    newer.first_event += 3_600_000;
    newer.last_event += 3_600_000;
    newer.status = IncidentStatus::Closed;
    store.save_incident(&mut newer).unwrap();
    let ids: Vec<i64> = store.incidents().unwrap().iter().map(|i| i.id).collect();
    assert_eq!(ids, [newer.id, incident.id]);
    let open: Vec<i64> = store
        .open_incidents()
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(open, [incident.id]);
    assert_eq!(
        store.incidents().unwrap()[1].decisions,
        moved.decisions,
        "listings merge decisions too"
    );
}

#[test]
fn timeline_sums_traffic_in_equal_buckets() {
    let dir = scratch("timeline");
    let mut store = Store::open(&dir.join("events.db")).unwrap();
    let samples: Vec<Event> = (0..60)
        .map(|s| traffic(T0 + s * 1000, "demo", 10 + s as u32, (s % 3) as u32))
        .collect();
    store.insert_batch(&samples).unwrap();
    store
        .insert_batch(&[
            traffic(T0 + 5000, "shop", 1000, 1000),
            block(T0 + 5000, "203.0.113.1"),
        ])
        .unwrap();
    let points = store.timeline("demo", T0, T0 + 60_000, 6).unwrap();
    assert_eq!(points.len(), 6);
    for (i, point) in points.iter().enumerate() {
        let bucket = &samples[i * 10..i * 10 + 10];
        let sum =
            |f: fn(&EventKind) -> u32| bucket.iter().map(|e| u64::from(f(&e.kind))).sum::<u64>();
        assert_eq!(point.at, T0 + i as i64 * 10_000);
        assert_eq!(
            point.requests,
            sum(|k| if let EventKind::Traffic { requests, .. } = k {
                *requests
            } else {
                0
            })
        );
        assert_eq!(
            point.blocked,
            sum(|k| if let EventKind::Traffic { blocked, .. } = k {
                *blocked
            } else {
                0
            })
        );
        assert_eq!(point.challenged, 10);
        assert_eq!(point.limited, 20);
        assert_eq!(point.upstream_errors, 0);
    }
    let wide = store
        .timeline("demo", T0 - 60_000, T0 + 120_000, 3)
        .unwrap();
    assert_eq!(
        wide.iter().map(|p| p.requests).collect::<Vec<_>>(),
        [0, points.iter().map(|p| p.requests).sum(), 0]
    );
    assert!(store.timeline("demo", T0, T0, 10).unwrap().is_empty());
    assert!(store.timeline("demo", T0, T0 + 1000, 0).unwrap().is_empty());
}

#[test]
fn readers_see_committed_events_while_the_writer_has_the_file() {
    let dir = scratch("readers");
    let path = dir.join("events.db");
    let missing = Store::open_read_only(&path).unwrap_err();
    assert_eq!(missing.kind(), StoreErrorKind::Open);
    let mut writer = Store::open(&path).unwrap();
    let reader = Store::open_read_only(&path).unwrap();
    writer.insert_batch(&[block(T0, "203.0.113.1")]).unwrap();
    assert_eq!(reader.events(&EventQuery::default()).unwrap().len(), 1);
    writer
        .insert_batch(&[block(T0 + 1, "203.0.113.2")])
        .unwrap();
    assert_eq!(reader.events(&EventQuery::default()).unwrap().len(), 2);
    assert!(reader.integrity_check().is_ok());
}

#[test]
fn files_that_are_not_a_store_give_clear_errors() {
    let dir = scratch("corrupt");
    let garbage = dir.join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not a database, it is a shopping list: eggs, milk, bread\n".repeat(100),
    )
    .unwrap();
    let error = Store::open(&garbage).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Corrupt);
    let message = error.to_string();
    assert!(
        message.contains(&garbage.display().to_string()),
        "{message}"
    );
    assert!(message.contains("move it aside"), "{message}");
    assert_eq!(
        Store::open_read_only(&garbage).unwrap_err().kind(),
        StoreErrorKind::Corrupt
    );

    // Another program's SQLite database.
    let foreign = dir.join("foreign.db");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE customers(name TEXT)")
            .unwrap();
    }
    let error = Store::open(&foreign).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::NotAStore);
    assert!(error.to_string().contains("customers"), "{error}");

    // A store from a newer rampart.
    let newer = dir.join("newer.db");
    drop(Store::open(&newer).unwrap());
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    assert_eq!(
        Store::open(&newer).unwrap_err().kind(),
        StoreErrorKind::NewerSchema
    );

    // A good store whose pages were overwritten in the middle.
    let damaged = dir.join("damaged.db");
    {
        let mut store = Store::open(&damaged).unwrap();
        let events: Vec<Event> = (0..5000).map(|i| block(T0 + i, "203.0.113.1")).collect();
        store.insert_batch(&events).unwrap();
    }
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 8192].fill(0x5a);
    std::fs::write(&damaged, &bytes).unwrap();
    let outcome = Store::open(&damaged).and_then(|s| {
        s.integrity_check()
            .and_then(|_| s.events(&EventQuery::default()))
    });
    assert_eq!(outcome.unwrap_err().kind(), StoreErrorKind::Corrupt);

    // A directory that does not exist.
    let error = Store::open(&dir.join("no/such/dir/events.db")).unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Open);
    assert!(error.to_string().contains("directory exists"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The store holds client addresses: it is created readable by its owner
/// only, and a symbolic link planted at its path is refused, not followed.
#[test]
fn the_store_is_private_and_never_follows_a_link() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("private");
    let path = dir.join("events.db");
    Store::open(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let target = dir.join("elsewhere.db");
    let link = dir.join("planted.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = Store::open(&link).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Open, "{err}");
    assert!(!target.exists(), "nothing was created through the link");
}
