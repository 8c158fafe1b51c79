//! A full channel drops and counts instead of blocking the request path, and
//! the drop is recorded in the store once the writer catches up.

use crate::store_fixture::{block, client, scratch};
use rampart_incidents::grouping::Change;
use rampart_incidents::store::{EventQuery, Store};
use rampart_incidents::writer::{now_ms, spawn, Recorder, WriterConfig};
use rampart_incidents::{DataLeft, Event, EventKind, IncidentKind};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn recorders_can_be_shared_across_threads() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<Recorder>();
    let off = Recorder::disabled();
    off.record(block(0, &client(0)));
    assert!(!off.is_enabled());
    assert_eq!(
        (off.recorded(), off.dropped()),
        (0, 0),
        "a disabled recorder drops without counting"
    );
}

#[test]
fn a_full_channel_drops_and_counts_instead_of_blocking() {
    let dir = scratch("full");
    let path = dir.join("events.db");
    let mut config = WriterConfig::new(&path);
    config.capacity = 8;
    config.flush_every_ms = 20;

    // The writer stalls in the change callback of the first incident (as it
    // would behind a slow alert), until the test lets it go.
    let (stalled_tx, stalled_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let mut stalled = false;
    let on_change = Box::new(move |change: &Change| {
        if !stalled && matches!(change, Change::Opened(_)) {
            stalled = true;
            stalled_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        }
    });
    let (recorder, writer) = spawn(config, on_change).unwrap();
    let now = now_ms();
    let canary = EventKind::CanaryTrip {
        action: "block".into(),
        reference: "r".into(),
        count: 1,
    };
    recorder.record(Event {
        at: now,
        site: "demo".into(),
        client: None,
        route: "/export".into(),
        kind: canary,
    });
    stalled_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the writer reaches the callback");

    let attempts = 10_000u64;
    let other = recorder.clone();
    let from_another_thread = std::thread::spawn(move || {
        for i in 0..attempts / 2 {
            other.record(block(now + 1, &client(i as u32)));
        }
    });
    for i in attempts / 2..attempts {
        recorder.record(block(now + 1, &client(i as u32)));
    }
    from_another_thread.join().unwrap();
    let accepted = recorder.recorded() - 1;
    assert!(accepted <= 8, "the channel holds 8, it took {accepted}");
    assert_eq!(
        recorder.dropped(),
        attempts - accepted,
        "every event that did not fit is counted"
    );

    release_tx.send(()).unwrap();
    let stats = writer.shutdown();
    assert_eq!(
        stats.written,
        1 + accepted + 1,
        "the canary, the accepted blocks and one drop record"
    );
    assert_eq!((stats.write_errors, stats.panics), (0, 0));

    let store = Store::open_read_only(&path).unwrap();
    let drops = store
        .events(&EventQuery {
            kind: Some("events_dropped".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(drops.len(), 1);
    assert_eq!(
        drops[0].1.kind,
        EventKind::EventsDropped {
            count: attempts - accepted
        }
    );
    let blocks = store
        .events(&EventQuery {
            kind: Some("waf_block".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(blocks.len() as u64, accepted);

    // The open canary incident knows events were dropped while it was open,
    // so whether data left is no longer known for sure.
    let canary = store
        .incidents()
        .unwrap()
        .into_iter()
        .find(|i| i.kinds[0] == IncidentKind::CanaryTrip)
        .unwrap();
    assert_eq!(canary.dropped_events, attempts - accepted);
    assert_eq!(canary.data.unwrap().left, DataLeft::Unknown);

    // With the writer gone, recording still returns at once, and counts.
    recorder.record(block(now + 2, &client(0)));
    assert_eq!(recorder.dropped(), attempts - accepted + 1);
    std::fs::remove_dir_all(&dir).ok();
}
