//! Plain benchmark (no harness): CRS v4 at paranoia level 1 in blocking
//! mode, the gateway's production shape.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-waf cargo bench -p rampart-waf --bench waf`
//!
//! There is no peer engine on this machine to measure against, so each
//! figure is printed next to the budget it must meet (the targets:
//! benign GET ≤ 20 µs, 1 KB form POST ≤ 60 µs, load ≤ 150 ms and 50 MB)
//! and the ratio. Also printed, without a budget: a 10 KB JSON POST, the
//! cost of form POSTs of growing size per KB (to show it is linear), and
//! the mean over the attack requests of the CRS regression suite.

use std::time::{Duration, Instant};

use rampart_crstest::{self as crs_test, Suite};
#[path = "shared/process.rs"]
mod process;
#[path = "shared/requests.rs"]
mod requests;
use requests::{form_body, form_body_sized, get, json_body, post, post_json};

/// The gateway's allocator (see `crates/rampart/src/main.rs`), counting the
/// bytes live on the heap so the load's memory is measured as what the
/// engine holds, apart from what the allocator keeps for reuse.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to mimalloc, a correct
// allocator; the counter only observes sizes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as it is.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: `ptr` came from this allocator with `layout`, as `realloc` requires.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

fn report(name: &str, took: Duration, budget: Duration) {
    let ratio = took.as_secs_f64() / budget.as_secs_f64();
    println!(
        "{name:<28} {:>10.1} µs   budget {:>8.1} µs   ratio {ratio:.2}",
        took.as_secs_f64() * 1e6,
        budget.as_secs_f64() * 1e6
    );
}

fn time_per_iter(iters: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed() / iters
}

/// The process's resident memory in bytes (Linux), for the load figure.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() {
    process::as_the_gateway_runs();
    let suite = Suite::new(crs_test::crs_root().join("v4.28.0"));
    let before = resident_bytes();
    let live_before = LIVE.load(std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    let engine = crs_test::load_engine(&suite, false, 1).expect("CRS v4 loads");
    report(
        "load CRS v4.28.0 (first)",
        t.elapsed(),
        Duration::from_millis(150),
    );
    let after = resident_bytes();
    // The heap the engine holds (live bytes allocated since before the load)
    // against the 50 MB budget.
    let report_heap = |name: &str| {
        let mb = LIVE
            .load(std::sync::atomic::Ordering::Relaxed)
            .saturating_sub(live_before) as f64
            / 1e6;
        println!(
            "{name:<28} {mb:>10.1} MB   budget {:>8.1} MB   ratio {:.2}",
            50.0,
            mb / 50.0
        );
    };
    report_heap("load CRS v4.28.0 (heap)");
    // Regexes and phrase-set automata are built on first use (or by the
    // gateway's background warm-up), so the load's heap leaves them out;
    // this is the whole rule set's footprint once everything is built.
    engine.warm_up().expect("every CRS v4 pattern compiles");
    report_heap("heap after warm-up");
    // A reload in the same process finds the translated patterns cached;
    // it is what a configuration reload costs.
    let t = Instant::now();
    drop(crs_test::load_engine(&suite, false, 1).expect("CRS v4 loads"));
    report(
        "reload CRS v4.28.0",
        t.elapsed(),
        Duration::from_millis(150),
    );
    if let (Some(a), Some(b)) = (before, after) {
        let mb = b.saturating_sub(a) as f64 / 1e6;
        println!(
            "{:<28} {mb:>10.1} MB   (resident growth, with what the allocator keeps)",
            "load CRS v4.28.0 (RSS)"
        );
    }

    report(
        "benign GET",
        time_per_iter(2000, || get(&engine)),
        Duration::from_micros(20),
    );

    let body = form_body();
    report(
        "1 KB form POST",
        time_per_iter(1000, || post(&engine, body.as_bytes())),
        Duration::from_micros(60),
    );

    let json = json_body(10 * 1024);
    let took = time_per_iter(300, || post_json(&engine, json.as_bytes()));
    println!(
        "{:<28} {:>10.1} µs   ({} bytes)",
        "10 KB JSON POST",
        took.as_secs_f64() * 1e6,
        json.len()
    );

    // Up to 4 KB: a larger form of these fields would exceed CRS's limit of 255 arguments.
    for kb in [1usize, 2, 4] {
        let body = form_body_sized(kb * 1024);
        let took = time_per_iter(200, || post(&engine, body.as_bytes()));
        println!(
            "{:<28} {:>10.1} µs   {:>6.1} µs per KB",
            format!("{kb} KB form POST"),
            took.as_secs_f64() * 1e6,
            took.as_secs_f64() * 1e6 / kb as f64
        );
    }

    // Every attack case of the suite's injection groups (REQUEST-93x/94x)
    // that expects a rule to fire, each run once per round.
    let cases = crs_test::read_cases(&suite).expect("CRS v4 test cases");
    let attacks: Vec<&crs_test::Input> = cases
        .iter()
        .filter(|c| c.group.starts_with("REQUEST-93") || c.group.starts_with("REQUEST-94"))
        .filter_map(|c| c.stages.first())
        .filter(|(_, expect)| !expect.ids.is_empty())
        .map(|(input, _)| input)
        .collect();
    let rounds = 5;
    let t = Instant::now();
    for _ in 0..rounds {
        for input in &attacks {
            std::hint::black_box(crs_test::run_request(&engine, input, "bench"));
        }
    }
    let per = t.elapsed() / (rounds * attacks.len() as u32);
    println!(
        "{:<28} {:>10.1} µs   (mean over {} attack requests)",
        "attack mix (93x/94x)",
        per.as_secs_f64() * 1e6,
        attacks.len()
    );
}
