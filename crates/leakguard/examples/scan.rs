//! Scans files with the leak guard and prints what it finds, per kind, with masked samples.
//! Useful to check a site export, or real pages for false positives.
//!
//! `cargo run --release -p rampart-leakguard --example scan -- FILE...`
//! (a single argument `-` reads file names from standard input, one per line)

use std::collections::BTreeMap;
use std::io::BufRead;

use rampart_leakguard::{GuardConfig, LeakGuard, RoutePolicy};

/// CPU time of this thread in nanoseconds (see the throughput bench for why).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut files: Vec<String> = std::env::args().skip(1).collect();
    if files == ["-"] {
        files = std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .collect();
    }
    let guard = LeakGuard::new(GuardConfig::default()).expect("guard builds");
    let policy = RoutePolicy::report_only();
    let mut totals: BTreeMap<&'static str, (u64, u64, Vec<String>)> = BTreeMap::new();
    let mut bytes = 0u64;
    let mut out = Vec::new();
    let started = std::time::Instant::now();
    // Read everything first, so the timing is the scan's alone.
    let bodies: Vec<(&String, Vec<u8>)> = files
        .iter()
        .filter_map(|f| Some((f, std::fs::read(f).ok()?)))
        .collect();
    let cpu_start = thread_cpu_ns();
    let mut outcomes = Vec::with_capacity(bodies.len());
    for (file, body) in &bodies {
        bytes += body.len() as u64;
        let mut scanner = guard.scanner(&policy);
        out.clear();
        for chunk in body.chunks(16 * 1024) {
            scanner.push(chunk, &mut out);
        }
        outcomes.push((*file, scanner.finish(&mut out)));
    }
    let scanned = std::time::Duration::from_nanos(thread_cpu_ns().saturating_sub(cpu_start));
    for (file, outcome) in outcomes {
        for f in outcome.findings {
            let entry = totals.entry(f.kind.name()).or_default();
            entry.0 += u64::from(f.count);
            entry.1 += 1;
            if entry.2.len() < 5 {
                entry.2.push(format!("{} ({file})", f.sample));
            }
        }
    }
    println!(
        "{} files, {} bytes, scanned at {:.0} MB/s of CPU time (wall {:.2?}, file reads included)",
        files.len(),
        bytes,
        bytes as f64 / scanned.as_secs_f64() / 1e6,
        started.elapsed()
    );
    for (kind, (count, docs, samples)) in totals {
        println!("{kind}: {count} in {docs} files");
        for s in samples {
            println!("    {s}");
        }
    }
}
