//! Plain benchmark (no harness): CRS v4 at paranoia level 1 in blocking
//! mode, the gateway's production shape.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-waf cargo bench -p rampart-waf --bench waf`
//!
//! There is no peer engine on this machine to measure against, so each
//! figure is printed next to the budget it must meet (the issue's targets:
//! benign GET ≤ 20 µs, 1 KB form POST ≤ 60 µs, load ≤ 150 ms) and the ratio.

use std::time::{Duration, Instant};

use rampart_waf::crs_test::{self, Suite};
use rampart_waf::{Engine, TxMeta, Verdict};

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

fn get(engine: &Engine) {
    let mut tx = engine.transaction(TxMeta { remote_addr: "192.0.2.10".into(), unique_id: "bench".into(), ..TxMeta::default() });
    let headers = [
        ("Host", &b"shop.example.com"[..]),
        ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Accept-Language", b"en-US,en;q=0.5"),
        ("Accept-Encoding", b"gzip, deflate, br"),
        ("Cookie", b"session=3f2a9c0d1e; theme=dark"),
    ];
    let v = tx.process_request_headers("GET", "/products/shoes?page=2&sort=price", "HTTP/1.1", headers);
    assert_eq!(v, Verdict::Continue);
    let v = tx.process_request_body();
    assert_eq!(v, Verdict::Continue);
}

fn post(engine: &Engine, body: &[u8]) {
    let mut tx = engine.transaction(TxMeta { remote_addr: "192.0.2.10".into(), unique_id: "bench".into(), ..TxMeta::default() });
    let len = body.len().to_string();
    let headers = [
        ("Host", &b"shop.example.com"[..]),
        ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Content-Type", b"application/x-www-form-urlencoded"),
        ("Content-Length", len.as_bytes()),
    ];
    let v = tx.process_request_headers("POST", "/checkout", "HTTP/1.1", headers);
    assert_eq!(v, Verdict::Continue);
    tx.append_request_body(body);
    let v = tx.process_request_body();
    assert_eq!(v, Verdict::Continue, "{:?}", tx.error_log_lines());
}

fn main() {
    let suite = Suite::new(crs_test::crs_root().join("v4.28.0"));
    let t = Instant::now();
    let engine = crs_test::load_engine(&suite, false, 1).expect("CRS v4 loads");
    report("load CRS v4.28.0", t.elapsed(), Duration::from_millis(150));

    report("benign GET", time_per_iter(2000, || get(&engine)), Duration::from_micros(20));

    let mut body = String::new();
    let fields = ["first_name=Alice", "last_name=Martin", "email=alice.martin%40example.com", "street=12+Rue+de+la+Paix", "city=Paris", "zip=75002", "country=FR", "phone=%2B33123456789", "comment=Please+leave+the+parcel+with+the+concierge+if+nobody+answers"];
    let mut i = 0;
    while body.len() < 1000 {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(fields[i % fields.len()]);
        i += 1;
    }
    body.truncate(1024);
    while body.ends_with('%') || body.ends_with('&') {
        body.pop();
    }
    report("1 KB form POST", time_per_iter(1000, || post(&engine, body.as_bytes())), Duration::from_micros(60));
}
