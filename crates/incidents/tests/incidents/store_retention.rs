//! Retention: pruning by age and by size, keeping incidents.

use crate::store_fixture::{block, client, injection_incident, scratch};
use rampart_incidents::store::{EventQuery, Retention, Store};
use rampart_incidents::{Event, Millis};

const T0: Millis = 1_700_000_000_000;
const DAY: Millis = 24 * 3600 * 1000;

/// Moves the WAL's pages into the main file, so its size says what the store holds.
fn file_size(store: &Store) -> u64 {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    std::fs::metadata(store.path()).unwrap().len()
}

fn count(store: &Store) -> usize {
    store
        .events(&EventQuery {
            limit: usize::MAX,
            ..Default::default()
        })
        .unwrap()
        .len()
}

#[test]
fn prune_by_age_keeps_recent_events_and_incidents() {
    let dir = scratch("age");
    let mut store = Store::open(&dir.join("events.db")).unwrap();
    let now = T0 + 40 * DAY;
    // One event every six hours for forty days.
    let events: Vec<Event> = (0..160)
        .map(|i| block(T0 + i * DAY / 4, &client(i as u32)))
        .collect();
    store.insert_batch(&events).unwrap();
    let mut incident = injection_incident(T0);
    store.save_incident(&mut incident).unwrap();

    let retention = Retention {
        max_age_ms: 30 * DAY,
        max_bytes: 0,
    };
    let cutoff = now - retention.max_age_ms;
    let expected_gone = events.iter().filter(|e| e.at < cutoff).count();
    assert_eq!(store.prune(&retention, now).unwrap(), expected_gone as u64);
    let left = store
        .events(&EventQuery {
            limit: usize::MAX,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.len(), events.len() - expected_gone);
    assert!(left.iter().all(|(_, e)| e.at >= cutoff));
    assert_eq!(
        store.incident(incident.id).unwrap().unwrap(),
        incident,
        "incidents are kept whatever their age"
    );
    assert_eq!(
        store.prune(&retention, now).unwrap(),
        0,
        "nothing more to prune"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn prune_by_size_deletes_the_oldest_until_the_store_fits() {
    let dir = scratch("size");
    let mut store = Store::open(&dir.join("events.db")).unwrap();
    let n = 60_000u32;
    let events: Vec<Event> = (0..n)
        .map(|i| block(T0 + i64::from(i) * 10, &client(i)))
        .collect();
    for chunk in events.chunks(4096) {
        store.insert_batch(chunk).unwrap();
    }
    let full = store.used_bytes().unwrap();
    assert!(
        full > 4 << 20,
        "the test needs a store of some size, got {full} bytes"
    );
    let file_before = file_size(&store);

    let limit = full / 3;
    let retention = Retention {
        max_age_ms: 0,
        max_bytes: limit,
    };
    let deleted = store.prune(&retention, T0 + 100 * DAY).unwrap();
    let used = store.used_bytes().unwrap();
    assert!(used <= limit, "{used} bytes used, limit {limit}");
    assert!(deleted > 0 && deleted < u64::from(n));
    assert_eq!(count(&store), (u64::from(n) - deleted) as usize);

    // The oldest went; what is left is exactly the newest events, in order.
    let left = store
        .events(&EventQuery {
            limit: usize::MAX,
            ..Default::default()
        })
        .unwrap();
    let newest: Vec<Event> = events[deleted as usize..].to_vec();
    assert_eq!(left.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), newest);

    // The freed pages are reused: storing as much again as was deleted
    // grows the file by much less than that.
    let refill: Vec<Event> = (0..deleted as u32)
        .map(|i| block(T0 + 1_000_000 + i64::from(i), &client(i)))
        .collect();
    for chunk in refill.chunks(4096) {
        store.insert_batch(chunk).unwrap();
    }
    store
        .prune(
            &Retention {
                max_age_ms: 0,
                max_bytes: 0,
            },
            T0,
        )
        .unwrap();
    let file_after = file_size(&store);
    assert!(
        file_after < file_before + file_before / 4,
        "file grew from {file_before} to {file_after} bytes"
    );
    assert!(store.integrity_check().is_ok());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn retention_defaults_are_a_month_and_a_gibibyte() {
    let retention = Retention::default();
    assert_eq!(retention.max_age_ms, 30 * DAY);
    assert_eq!(retention.max_bytes, 1 << 30);
}
