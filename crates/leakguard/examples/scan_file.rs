//! Scans one file repeatedly with the zero-config `alert` policy and prints
//! the time per pass, for profiling the scanner on a real page:
//! `scan_file PAGE [PASSES]`.
use rampart_leakguard::{Action, GuardConfig, LeakGuard, RoutePolicy};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: scan_file PAGE [PASSES]");
    let passes: u32 = args.next().and_then(|p| p.parse().ok()).unwrap_or(10_000);
    let page = std::fs::read(&path).expect("readable page");
    let guard = LeakGuard::new(GuardConfig::default()).expect("default guard");
    let policy = RoutePolicy { action: Action::Alert, ..RoutePolicy::default() };
    let mut out = Vec::with_capacity(page.len());
    let started = std::time::Instant::now();
    for _ in 0..passes {
        let mut scanner = guard.scanner(&policy);
        out.clear();
        scanner.push(&page, &mut out);
        std::hint::black_box(scanner.finish(&mut out));
    }
    let per = started.elapsed() / passes;
    println!("{} bytes: {:.1} µs per pass, {:.0} MB/s", page.len(), per.as_secs_f64() * 1e6, page.len() as f64 / per.as_secs_f64() / 1e6);
}
