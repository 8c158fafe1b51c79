//! Helpers shared by the store, writer and grouping tests.
#![allow(dead_code)]

use rampart_incidents::grouping::{Change, Grouper, Thresholds};
use rampart_incidents::{Event, EventKind, Incident, Millis};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh directory for one test's store under the system's temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "rampart-incidents-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A WAF block of an SQL injection on demo's search.
pub fn block(at: Millis, client: &str) -> Event {
    let kind = EventKind::WafBlock {
        detail: None,
        rules: vec![942100],
        score: 5,
        attacks: vec!["sqli".into()],
        status: 403,
    };
    Event {
        at,
        site: "demo".into(),
        client: Some(client.parse().unwrap()),
        route: "/search".into(),
        kind,
    }
}

/// The `i`-th address of a botnet spread over many /24s.
pub fn client(i: u32) -> String {
    format!("198.51.{}.{}", i / 250 % 250, i % 250 + 1)
}

/// The incidents opened among `changes`, in order.
pub fn opened(changes: &[Change]) -> Vec<&Incident> {
    changes
        .iter()
        .filter_map(|c| {
            if let Change::Opened(i) = c {
                Some(i)
            } else {
                None
            }
        })
        .collect()
}

/// An incident as the grouper opens it, from five WAF blocks a second apart
/// starting at `at`.
pub fn injection_incident(at: Millis) -> Incident {
    let mut grouper = Grouper::new(Thresholds::default());
    let changes: Vec<Change> = (0..5u32)
        .flat_map(|i| grouper.observe(&block(at + i64::from(i) * 1000, &client(i))))
        .collect();
    opened(&changes)[0].clone()
}
