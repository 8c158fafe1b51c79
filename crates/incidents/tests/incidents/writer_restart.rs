//! A gateway restart: the writer takes back the incidents still open, and
//! they continue (same id, counts carried on) or close if quiet too long.

use crate::store_fixture::{block, client, opened, scratch};
use rampart_incidents::grouping::Change;
use rampart_incidents::store::Store;
use rampart_incidents::writer::{now_ms, spawn, WriterConfig};
use rampart_incidents::{Decision, Event, IncidentKind, IncidentStatus};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Runs a writer over `events` and returns every change it reported.
fn run(config: WriterConfig, events: Vec<Event>) -> Vec<Change> {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&changes);
    let (recorder, writer) = spawn(
        config,
        Box::new(move |c: &Change| seen.lock().unwrap().push(c.clone())),
    )
    .unwrap();
    for event in events {
        recorder.record(event);
    }
    let stats = writer.shutdown();
    assert_eq!(
        (stats.write_errors, stats.panics, recorder.dropped()),
        (0, 0, 0)
    );
    Arc::try_unwrap(changes).unwrap().into_inner().unwrap()
}

fn only_incident(path: &Path) -> rampart_incidents::Incident {
    let mut all = Store::open_read_only(path).unwrap().incidents().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[test]
fn open_incidents_continue_across_a_restart() {
    let dir = scratch("restart");
    let path = dir.join("events.db");
    let start = now_ms();
    let changes = run(
        WriterConfig::new(&path),
        (0..6)
            .map(|i| block(start + i64::from(i), &client(i)))
            .collect(),
    );
    assert_eq!(opened(&changes).len(), 1);
    let before = only_incident(&path);
    assert_eq!(
        (before.kinds[0], before.status, before.events),
        (IncidentKind::Injection, IncidentStatus::Open, 6)
    );
    let Change::Opened(announced) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(announced.id, before.id, "the alert carried the stored id");

    // While the gateway is down, an operator records a decision.
    let decision = Decision {
        at: start + 100,
        by: "sam".into(),
        text: "watching it".into(),
        told: None,
    };
    Store::open(&path)
        .unwrap()
        .add_decision(before.id, &decision)
        .unwrap();

    let changes = run(
        WriterConfig::new(&path),
        (6..9)
            .map(|i| block(start + 1000 + i64::from(i), &client(i)))
            .collect(),
    );
    assert_eq!(
        opened(&changes).len(),
        0,
        "no second incident for the same campaign"
    );
    assert!(
        changes.iter().all(|c| c.incident().id == before.id),
        "{changes:?}"
    );
    let after = only_incident(&path);
    assert_eq!(
        (after.id, after.status, after.events),
        (before.id, IncidentStatus::Open, 9)
    );
    assert_eq!(after.first_event, before.first_event);
    assert_eq!(after.distinct_sources, 9);
    assert_eq!(
        after.decisions.iter().filter(|d| **d == decision).count(),
        1,
        "{:?}",
        after.decisions
    );

    // Restarted with a short quiet period, it is overdue and closes.
    let mut quick = WriterConfig::new(&path);
    quick.thresholds.quiet = std::time::Duration::from_millis(200);
    std::thread::sleep(std::time::Duration::from_millis(250));
    let changes = {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&changes);
        let (_recorder, writer) = spawn(
            quick,
            Box::new(move |c: &Change| seen.lock().unwrap().push(c.clone())),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while changes.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        writer.shutdown();
        Arc::try_unwrap(changes).unwrap().into_inner().unwrap()
    };
    let Change::Closed(closed) = &changes[0] else {
        panic!("{changes:?}")
    };
    assert_eq!(closed.id, before.id);
    let stored = only_incident(&path);
    assert_eq!(stored.status, IncidentStatus::Closed);
    assert_eq!(
        stored.decisions.last().unwrap().text,
        "closed after 0.2 s quiet"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_bad_path_fails_at_startup() {
    let dir = scratch("badpath");
    let error = spawn(
        WriterConfig::new(dir.join("missing/dir/events.db")),
        Box::new(|_: &Change| {}),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("missing/dir/events.db"),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
