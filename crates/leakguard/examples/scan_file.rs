//! Scans one file repeatedly with the zero-config `alert` policy and prints
//! the time per pass, for profiling the scanner on a real page:
//! `scan_file PAGE [PASSES] [CHUNK]`, the body fed in pieces of CHUNK bytes
//! (default: whole), as a proxy hands it over. Two ways are timed: a new scanner per pass
//! copying the body out (`push`), and one scanner reset per pass that only
//! inspects (`inspect`); and, as the gateway feeds a body, the first CHUNK bytes through
//! `inspect` and the rest through `inspect_last`. With `GATEWAY_ONLY` set in the environment
//! only that last way runs, so that a profiler sees nothing else.
use rampart_leakguard::{GuardConfig, LeakGuard, RoutePolicy};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: scan_file PAGE [PASSES]");
    let passes: u32 = args.next().and_then(|p| p.parse().ok()).unwrap_or(10_000);
    let chunk: usize = args
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or(usize::MAX)
        .max(1);
    let page = std::fs::read(&path).expect("readable page");
    let guard = LeakGuard::new(GuardConfig::default()).expect("default guard");
    let policy = RoutePolicy::report_only();
    let report = |how: &str, took: std::time::Duration| {
        let per = took / passes;
        println!(
            "{how:<28} {} bytes: {:.1} µs per pass, {:.0} MB/s",
            page.len(),
            per.as_secs_f64() * 1e6,
            page.len() as f64 / per.as_secs_f64() / 1e6
        );
    };

    let mut out = Vec::with_capacity(page.len());
    let gateway_only = std::env::var_os("GATEWAY_ONLY").is_some();
    let started = std::time::Instant::now();
    for _ in 0..if gateway_only { 0 } else { passes } {
        let mut scanner = guard.scanner(&policy);
        out.clear();
        for piece in page.chunks(chunk.min(page.len().max(1))) {
            scanner.push(piece, &mut out);
        }
        std::hint::black_box(scanner.finish(&mut out));
    }
    report("new scanner, push", started.elapsed());

    let mut scanner = guard.scanner(&policy);
    let started = std::time::Instant::now();
    for _ in 0..if gateway_only { 0 } else { passes } {
        scanner.reset(&policy);
        for piece in page.chunks(chunk.min(page.len().max(1))) {
            scanner.inspect(piece);
        }
        out.clear();
        std::hint::black_box(scanner.finish(&mut out));
    }
    report("reused scanner, inspect", started.elapsed());

    // As the gateway feeds an unencoded body: the first piece (CHUNK bytes, the part that came
    // with the response head) through `inspect`, the rest as the last chunk.
    let first = chunk.min(page.len());
    let started = std::time::Instant::now();
    for _ in 0..passes {
        scanner.reset(&policy);
        scanner.inspect(&page[..first]);
        std::hint::black_box(scanner.inspect_last(&page[first..]));
    }
    report("reused scanner, gateway", started.elapsed());
}
