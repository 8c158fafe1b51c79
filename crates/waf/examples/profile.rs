//! Profiling driver for callgrind: loads CRS v4 (PL1, blocking) once, then
//! runs N benign GETs or 1 KB form POSTs (`get`, `post`, `full` for a GET
//! with its response phases, `search` for the gateway benchmark's GET).
//!
//! `valgrind --tool=callgrind target/release/examples/profile get 200`
use rampart_crstest::{self as crs_test, Suite};
use rampart_waf::Engine;

#[path = "../benches/shared/requests.rs"]
mod requests;
use requests::{form_body, get, get_with_response, post, search_with_response};

/// The gateway's allocator (see `crates/rampart/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/shared/process.rs"]
mod process;

fn main() {
    process::as_the_gateway_runs();
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "get".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    // RAMPART_CRS=v3.3.4 profiles the rule set the ModSecurity comparison uses.
    let version = std::env::var("RAMPART_CRS").unwrap_or_else(|_| "v4.28.0".into());
    let suite = Suite::new(crs_test::crs_root().join(version));
    let loading = std::time::Instant::now();
    let engine = crs_test::load_engine(&suite, false, 1).expect("CRS v4 loads");
    eprintln!("load: {:.1} ms", loading.elapsed().as_secs_f64() * 1e3);
    engine.warm_up().expect("warm up");
    let body = form_body();
    // one untimed request of each so lazy state is built before the loop
    get(&engine);
    post(&engine, body.as_bytes());
    let t = std::time::Instant::now();
    run_loop(&engine, &what, n, body.as_bytes());
    eprintln!(
        "{what}: {:.1} µs/req",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}

/// The measured loop, alone in its own symbol so callgrind can
/// `--toggle-collect=*run_loop*` and leave the load out.
#[inline(never)]
fn run_loop(engine: &Engine, what: &str, n: u32, body: &[u8]) {
    for _ in 0..n {
        match what {
            "post" => post(engine, body),
            "full" => get_with_response(engine),
            // The gateway benchmark's GET and its response.
            "search" => search_with_response(engine),
            _ => get(engine),
        }
    }
}
