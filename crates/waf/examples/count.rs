fn main() {
    let suite = rampart_waf::crs_test::Suite::new(rampart_waf::crs_test::crs_root().join("v4.28.0"));
    let engine = rampart_waf::crs_test::load_engine(&suite, false, 1).unwrap();
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut tx = engine.transaction(Default::default());
        let headers = [("Host", &b"shop.example.com"[..]), ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"), ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), ("Accept-Language", b"en-US,en;q=0.5"), ("Accept-Encoding", b"gzip, deflate, br"), ("Cookie", b"session=3f2a9c0d1e; theme=dark")];
        tx.process_request_headers("GET", "/products/shoes?page=2&sort=price", "HTTP/1.1", headers);
        tx.process_request_body();
        if n == 1 { for m in tx.matched_rules() { eprintln!("{} {}", m.id, m.logged); } }
    }
    eprintln!("{:?}/iter", t.elapsed() / n as u32);
}
