//! How many events a second the incident writer sustains end to end:
//! `Recorder` -> bounded channel -> writer thread -> SQLite (WAL, batched)
//! with grouping on, for a realistic mix of event kinds during an attack.
//! The peer, in the same run: raw `Store::insert_batch` of the same rows
//! (no channel, no grouping), and the ratio. Target: 50,000 events/s.
//!
//! Run with `bench/incidents-writer.sh [events]` (default 1,000,000).

use rampart_incidents::grouping::{Change, Grouper, Thresholds};
use rampart_incidents::store::Store;
use rampart_incidents::writer::{now_ms, spawn, WriterConfig};
use rampart_incidents::{EntityCount, Event, EventKind, Millis};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The mix per 1,000 events, as a gateway under a flood with an injection
/// campaign and some credential stuffing would send them.
const MIX: [(&str, u32); 12] = [
    ("rate_limited", 400),
    ("challenged", 200),
    ("cleared", 80),
    ("waf_block", 120),
    ("waf_match", 40),
    ("login_failure", 60),
    ("queued", 40),
    ("upstream_failure", 20),
    ("banned", 20),
    ("traffic", 14),
    ("leak", 4),
    ("canary_trip", 2),
];

/// A deterministic generator (xorshift), so both runs store the same rows.
struct Generator {
    state: u64,
    start: Millis,
}

impl Generator {
    fn new(start: Millis) -> Generator {
        Generator {
            state: 0x9e37_79b9_7f4a_7c15,
            start,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// A client from a botnet: 60,000 addresses over 400 prefixes, a few
    /// heavy ones, and some IPv6.
    fn client(&mut self) -> IpAddr {
        let r = self.next_u64();
        if r % 10 == 0 {
            let s = (r >> 8) as u16;
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                s % 40,
                0,
                0,
                0,
                0,
                (r >> 24) as u16 % 2000,
            ))
        } else {
            let prefix = if r % 3 == 0 {
                (r >> 8) % 4
            } else {
                (r >> 8) % 400
            } as u32;
            IpAddr::V4(Ipv4Addr::from(
                0xc633_0000 + (prefix << 8) + ((r >> 20) % 150) as u32 + 1,
            ))
        }
    }

    fn event(&mut self, i: u64) -> Event {
        // 50 events per millisecond of simulated time: 50,000 a second.
        let at = self.start + (i / 50) as Millis;
        let site = if i % 5 == 0 { "shop" } else { "demo" };
        let mut pick = (self.next_u64() % 1000) as u32;
        let mut name = MIX[0].0;
        for (kind, share) in MIX {
            if pick < share {
                name = kind;
                break;
            }
            pick -= share;
        }
        let client = Some(self.client());
        let r = self.next_u64();
        let (route, kind) = match name {
            "rate_limited" => (
                "/",
                EventKind::RateLimited {
                    scope: ["client", "prefix", "route"][(r % 3) as usize].into(),
                },
            ),
            "challenged" => ("/", EventKind::Challenged),
            "cleared" => ("/", EventKind::Cleared),
            "queued" => ("/donate", EventKind::Queued),
            "waf_block" => (
                "/search",
                if r % 2 == 0 {
                    EventKind::WafBlock {
                        detail: None,
                        rules: vec![942100, 942190, 949110],
                        score: 15,
                        attacks: vec!["sqli".into()],
                        status: 403,
                    }
                } else {
                    EventKind::WafBlock {
                        detail: None,
                        rules: vec![941100, 949110],
                        score: 10,
                        attacks: vec!["xss".into()],
                        status: 403,
                    }
                },
            ),
            "waf_match" => (
                "/search",
                EventKind::WafMatch {
                    detail: None,
                    rules: vec![920350],
                    score: 3,
                    attacks: vec!["protocol".into()],
                },
            ),
            "login_failure" => (
                "/login",
                EventKind::LoginFailure {
                    account: format!("{:016x}", r % 5000),
                },
            ),
            "upstream_failure" => (
                "/",
                EventKind::UpstreamFailure {
                    status: 502,
                    reason: "timeout".into(),
                },
            ),
            "banned" => (
                "/",
                EventKind::Banned {
                    until: at + 600_000,
                    level: 1 + (r % 3) as u32,
                    reason: "rate_limits".into(),
                },
            ),
            "leak" => {
                let entities = vec![EntityCount {
                    kind: "donor_list".into(),
                    count: 40,
                    distinct: 40,
                    sample: "J*** S***".into(),
                }];
                (
                    "/donations/feed",
                    EventKind::Leak {
                        action: "block".into(),
                        reference: format!("r{i}"),
                        entities,
                    },
                )
            }
            "canary_trip" => (
                "/api/export",
                EventKind::CanaryTrip {
                    action: "block".into(),
                    reference: format!("r{i}"),
                    count: 1,
                },
            ),
            _ => {
                let kind = EventKind::Traffic {
                    window_ms: 1000,
                    requests: 2000 + (r % 500) as u32,
                    blocked: 150,
                    challenged: 600,
                    limited: 900,
                    upstream_errors: (r % 5) as u32,
                };
                return Event {
                    at,
                    site: site.into(),
                    client: None,
                    route: String::new(),
                    kind,
                };
            }
        };
        Event {
            at,
            site: site.into(),
            client,
            route: route.into(),
            kind,
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rampart-writer-bench-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("events.db")
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The writer, end to end. The producer keeps fewer events in flight than
/// the channel holds, so nothing is dropped and the figure is what the
/// writer sustains, not what it sheds.
fn writer_run(path: &Path, n: u64, start: Millis) -> (Duration, u64) {
    let config = WriterConfig::new(path);
    let capacity = config.capacity as u64;
    let changes = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&changes);
    let (recorder, writer) = spawn(
        config,
        Box::new(move |_: &Change| {
            seen.fetch_add(1, Ordering::Relaxed);
        }),
    )
    .unwrap();
    let mut generator = Generator::new(start);
    let began = Instant::now();
    for i in 0..n {
        if i % 1024 == 0 {
            while recorder.recorded() - writer.stats().written >= capacity - 2048 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        recorder.record(generator.event(i));
    }
    let stats = writer.shutdown();
    let elapsed = began.elapsed();
    assert_eq!(
        recorder.dropped(),
        0,
        "the bench paced itself; nothing may be dropped"
    );
    assert_eq!(stats.written, n, "every event stored");
    assert_eq!((stats.write_errors, stats.panics), (0, 0));
    (elapsed, changes.load(Ordering::Relaxed))
}

/// The peer: the same rows straight into SQLite, in batches of the writer's
/// `batch_max`, timing only the inserts.
fn raw_run(path: &Path, n: u64, start: Millis) -> Duration {
    let mut store = Store::open(path).unwrap();
    let mut generator = Generator::new(start);
    let size = WriterConfig::new(path).batch_max;
    let mut batch = Vec::with_capacity(size);
    let mut spent = Duration::ZERO;
    let mut i = 0;
    while i < n {
        batch.clear();
        while batch.len() < size && i < n {
            batch.push(generator.event(i));
            i += 1;
        }
        let began = Instant::now();
        store.insert_batch(&batch).unwrap();
        spent += began.elapsed();
    }
    spent
}

/// Grouping alone, for the breakdown.
fn grouping_run(n: u64, start: Millis) -> Duration {
    let mut grouper = Grouper::new(Thresholds::default());
    let mut generator = Generator::new(start);
    let mut spent = Duration::ZERO;
    let mut batch = Vec::with_capacity(4096);
    let mut i = 0;
    while i < n {
        batch.clear();
        while batch.len() < 4096 && i < n {
            batch.push(generator.event(i));
            i += 1;
        }
        let began = Instant::now();
        for event in &batch {
            std::hint::black_box(grouper.observe(event));
        }
        std::hint::black_box(grouper.updates());
        spent += began.elapsed();
    }
    spent
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("events: a number"))
        .unwrap_or(1_000_000);
    let start = now_ms();
    println!("incident writer: {n} events, attack mix over 2 sites (limits, challenges, WAF, logins, upstream, bans, leaks)");

    // `only` runs one part, for profiling: `raw`, `writer` or `grouping`.
    let only = std::env::args().nth(2).unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    let raw_path = scratch("raw");
    let raw = if part("raw") {
        raw_run(&raw_path, n, start)
    } else {
        Duration::from_secs(1)
    };
    let writer_path = scratch("writer");
    let (writer, changes) = if part("writer") {
        writer_run(&writer_path, n, start)
    } else {
        (Duration::from_secs(1), 0)
    };
    let grouping = if part("grouping") {
        grouping_run(n, start)
    } else {
        Duration::from_secs(1)
    };

    let ours = rate(n, writer);
    let peer = rate(n, raw);
    println!(
        "  writer, end to end (Recorder -> channel -> thread -> SQLite + grouping): {:>10} events/s ({:.2} s, {changes} incident changes)",
        thousands(ours),
        writer.as_secs_f64()
    );
    println!(
        "  peer: raw SQLite inserts of the same rows, no channel, no grouping:     {:>10} events/s ({:.2} s)",
        thousands(peer),
        raw.as_secs_f64()
    );
    println!("  ratio writer / raw inserts: {:.2}", ours / peer);
    println!(
        "  grouping alone: {} events/s",
        thousands(rate(n, grouping))
    );
    if !part("writer") {
        return;
    }
    let store = Store::open_read_only(&writer_path).unwrap();
    let used = store.used_bytes().unwrap();
    let incidents = store.incidents().unwrap();
    println!(
        "  store: {:.1} MiB for {n} events ({} bytes an event); {} incidents",
        used as f64 / (1 << 20) as f64,
        used / n.max(1),
        incidents.len()
    );
    for incident in incidents {
        println!(
            "    {} {} ({} events)",
            incident.reference(),
            incident.title,
            incident.events
        );
    }
    println!(
        "  target >= 50,000 events/s: {}",
        if ours >= 50_000.0 { "met" } else { "MISSED" }
    );
    for path in [raw_path, writer_path] {
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
