//! Plain benchmark (no harness): CRS v4 at paranoia level 1 in blocking
//! mode, the gateway's production shape.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-waf cargo bench -p rampart-waf --bench waf`
//!
//! There is no peer engine on this machine to measure against, so each
//! figure is printed next to the budget it must meet (the targets:
//! benign GET ≤ 20 µs, 1 KB form POST ≤ 60 µs, load ≤ 150 ms) and the ratio.

use std::time::{Duration, Instant};

use rampart_waf::crs_test::{self, Suite};
#[path = "shared/requests.rs"]
mod requests;
use requests::{form_body, get, post};

/// The gateway's allocator (see `crates/rampart/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn report(name: &str, took: Duration, budget: Duration) {
    let ratio = took.as_secs_f64() / budget.as_secs_f64();
    println!("{name:<28} {:>10.1} µs   budget {:>8.1} µs   ratio {ratio:.2}", took.as_secs_f64() * 1e6, budget.as_secs_f64() * 1e6);
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

fn main() {
    let suite = Suite::new(crs_test::crs_root().join("v4.28.0"));
    let t = Instant::now();
    let engine = crs_test::load_engine(&suite, false, 1).expect("CRS v4 loads");
    report("load CRS v4.28.0", t.elapsed(), Duration::from_millis(150));

    report("benign GET", time_per_iter(2000, || get(&engine)), Duration::from_micros(20));

    let body = form_body();
    report("1 KB form POST", time_per_iter(1000, || post(&engine, body.as_bytes())), Duration::from_micros(60));
}
