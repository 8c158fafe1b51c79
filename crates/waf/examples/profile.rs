//! Profiling driver for callgrind: loads CRS v4 (PL1, blocking) once, then
//! runs N benign GETs or 1 KB form POSTs.
//!
//! `valgrind --tool=callgrind target/release/examples/profile get 200`
use rampart_waf::crs_test::{self, Suite};
use rampart_waf::{Engine, TxMeta, Verdict};

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
    assert_eq!(tx.process_request_headers("GET", "/products/shoes?page=2&sort=price", "HTTP/1.1", headers), Verdict::Continue);
    assert_eq!(tx.process_request_body(), Verdict::Continue);
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
    assert_eq!(tx.process_request_headers("POST", "/checkout", "HTTP/1.1", headers), Verdict::Continue);
    tx.append_request_body(body);
    assert_eq!(tx.process_request_body(), Verdict::Continue, "{:?}", tx.error_log_lines());
}

fn form_body() -> String {
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
    body
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "get".into());
    let n: u32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let suite = Suite::new(crs_test::crs_root().join("v4.28.0"));
    let engine = crs_test::load_engine(&suite, false, 1).expect("CRS v4 loads");
    engine.warm_up().expect("warm up");
    let body = form_body();
    // one untimed request of each so lazy state is built before the loop
    get(&engine);
    post(&engine, body.as_bytes());
    let t = std::time::Instant::now();
    run_loop(&engine, &what, n, body.as_bytes());
    eprintln!("{what}: {:.1} µs/req", t.elapsed().as_secs_f64() * 1e6 / f64::from(n));
}

/// The measured loop, alone in its own symbol so callgrind can
/// `--toggle-collect=*run_loop*` and leave the load out.
#[inline(never)]
fn run_loop(engine: &Engine, what: &str, n: u32, body: &[u8]) {
    for _ in 0..n {
        match what {
            "post" => post(engine, body),
            _ => get(engine),
        }
    }
}
