//! The store survives `kill -9` mid-write: this test runs its own binary as
//! a child that records events as fast as a busy gateway, kills it with
//! SIGKILL, and checks that the file opens cleanly and holds every event
//! handed over more than a second before the kill.

use rampart_incidents::grouping::Change;
use rampart_incidents::store::{EventQuery, Store};
use rampart_incidents::writer::{now_ms, spawn, WriterConfig};
use rampart_incidents::{Event, EventKind};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD: &str = "RAMPART_INCIDENTS_WRITER_CHILD";

/// The child: records numbered events through a `Recorder` in a loop and
/// prints how many it has handed over. Does nothing in a normal test run.
#[test]
fn writer_child() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let config = WriterConfig::new(path);
    let room = config.capacity as u64 / 2;
    let (recorder, writer) = spawn(config, Box::new(|_: &Change| {})).unwrap();
    let started = Instant::now();
    let mut handed = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        // A busy machine may slow the writer; wait rather than drop, so that
        // every handed-over event is one the store should have.
        while recorder.recorded() - writer.stats().written > room {
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..200 {
            let kind = EventKind::LoginFailure {
                account: format!("seq-{handed}"),
            };
            let client = Some(format!("198.51.100.{}", handed % 250 + 1).parse().unwrap());
            recorder.record(Event {
                at: now_ms(),
                site: "demo".into(),
                client,
                route: "/login".into(),
                kind,
            });
            handed += 1;
        }
        println!("handed {handed} dropped {}", recorder.dropped());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_store_survives_kill_9_mid_write() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("rampart-kill-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("events.db");
    // The child test's name in this binary: its module path without the
    // crate's name (`writer_kill::writer_child`).
    let child_test = format!(
        "{}::writer_child",
        module_path!().split_once("::").unwrap().1
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
        .env(CHILD, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<(u64, u64, Instant)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            if let (Some("handed"), Some(n), Some("dropped"), Some(d)) =
                (words.next(), words.next(), words.next(), words.next())
            {
                let _ = lines_tx.send((n.parse().unwrap(), d.parse().unwrap(), Instant::now()));
            }
        }
    });
    lines
        .recv_timeout(Duration::from_secs(60))
        .expect("the child starts recording");
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();

    let reports: Vec<(u64, u64, Instant)> = lines.try_iter().collect();
    let safe = reports
        .iter()
        .filter(|(_, _, seen)| *seen + Duration::from_secs(1) <= killed_at)
        .map(|r| r.0)
        .max()
        .unwrap();
    assert!(
        safe >= 1000,
        "the child handed over only {safe} events a second before the kill"
    );
    assert!(
        reports.iter().all(|r| r.1 == 0),
        "the child dropped events; the channel should keep up"
    );

    let store = Store::open(&path).expect("the store opens after kill -9");
    store
        .integrity_check()
        .expect("and passes SQLite's integrity check");
    let stored: HashSet<u64> = store
        .events(&EventQuery {
            kind: Some("login_failure".into()),
            limit: usize::MAX,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::LoginFailure { account } => {
                account.strip_prefix("seq-").and_then(|n| n.parse().ok())
            }
            _ => None,
        })
        .collect();
    let missing: Vec<u64> = (0..safe).filter(|n| !stored.contains(n)).take(10).collect();
    assert!(
        missing.is_empty(),
        "events handed over more than a second before the kill are missing: {missing:?}..."
    );
    std::fs::remove_dir_all(&dir).ok();
}
