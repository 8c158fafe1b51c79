fn main() {
    let rules = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let e = rampart_waf::Engine::from_str_with_name(&rules, "dbg").unwrap_or_else(|e| panic!("{e}"));
    let body = std::fs::read(std::env::args().nth(2).unwrap()).unwrap();
    let ct = std::env::args().nth(3).unwrap_or_default();
    let mut tx = e.transaction(Default::default());
    tx.process_request_headers("POST", "/", "HTTP/1.1", [("Content-Type", ct.as_bytes())]);
    tx.append_request_body(&body);
    tx.process_request_body();
    for l in tx.error_log_lines() { println!("{l}"); }
    println!("tx1={:?}", tx.tx_var("1").map(String::from_utf8_lossy));
}
