//! The benign requests the benchmark and the profiling driver both time,
//! kept in one place so their figures describe the same work.

use rampart_waf::{Engine, Transaction, TxMeta, Verdict};

/// A browser's GET with three query arguments, its headers and cookies.
pub fn get(engine: &Engine) {
    drop(get_request(engine));
}

/// [`get`], then the response phases as the gateway runs them: a small
/// HTML page, its headers, body and the logging phase.
#[allow(dead_code)]
pub fn get_with_response(engine: &Engine) {
    let mut tx = get_request(engine);
    respond(
        &mut tx,
        b"text/html; charset=utf-8",
        b"<html><body><h1>Shop</h1><p>hello from the upstream</p></body></html>\n",
    );
}

/// The response phases as the gateway runs them for a 200 `page`: its
/// headers, its body when the rules want it, and the logging phase.
#[allow(dead_code)]
fn respond(tx: &mut Transaction, content_type: &[u8], page: &[u8]) {
    let length = page.len().to_string();
    let response = [
        ("Content-Type", content_type),
        ("Content-Length", length.as_bytes()),
        ("Server", b"nginx"),
    ];
    assert_eq!(
        tx.process_response_headers(200, "HTTP/1.1", response),
        Verdict::Continue
    );
    if tx.response_body_wanted() {
        tx.append_response_body(page);
    }
    assert_eq!(tx.process_response_body(), Verdict::Continue);
    tx.process_logging();
}

/// The GET that `bench/waf-vs-modsecurity.sh` sends through the gateway, with
/// its response: a search with five arguments, a Chrome browser's headers and
/// three cookies, answered by the benchmark upstream's small HTML page.
#[allow(dead_code)]
pub fn search_with_response(engine: &Engine) {
    let mut tx = engine.transaction(TxMeta {
        remote_addr: "127.0.0.1".into(),
        unique_id: "bench".into(),
        ..TxMeta::default()
    });
    let headers = [
        ("Host", &b"shop.example.org"[..]),
        ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"),
        ("Accept-Language", b"en-GB,en;q=0.9,fr;q=0.8"),
        ("Accept-Encoding", b"gzip, deflate"),
        ("Cookie", b"session_id=6f1c2a9e8b7d4c3f0a1b2c3d4e5f6a7b; theme=dark; cart_items=3"),
    ];
    let path = "/search?q=garden+chairs&category=outdoor&page=2&sort=price_asc&lang=en";
    assert_eq!(
        tx.process_request_headers("GET", path, "HTTP/1.1", headers),
        Verdict::Continue
    );
    assert_eq!(tx.process_request_body(), Verdict::Continue);
    let page = b"<!doctype html>\n<html lang=en><head><meta charset=utf-8><title>Garden shop</title></head>\n<body><h1>Garden shop</h1><p>Thank you for visiting. Our summer range of chairs, tables and planters is in stock.</p>\n<ul><li><a href=/chairs>Chairs</a></li><li><a href=/tables>Tables</a></li><li><a href=/contact>Contact us</a></li></ul></body></html>\n";
    respond(&mut tx, b"text/html", page);
}

/// The request phases of [`get`]; the transaction is returned for the
/// response phases.
fn get_request(engine: &Engine) -> Transaction {
    let mut tx = engine.transaction(TxMeta {
        remote_addr: "192.0.2.10".into(),
        unique_id: "bench".into(),
        ..TxMeta::default()
    });
    let headers = [
        ("Host", &b"shop.example.com"[..]),
        (
            "User-Agent",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "Accept",
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", b"en-US,en;q=0.5"),
        ("Accept-Encoding", b"gzip, deflate, br"),
        ("Cookie", b"session=3f2a9c0d1e; theme=dark"),
    ];
    assert_eq!(
        tx.process_request_headers(
            "GET",
            "/products/shoes?page=2&sort=price",
            "HTTP/1.1",
            headers
        ),
        Verdict::Continue
    );
    assert_eq!(tx.process_request_body(), Verdict::Continue);
    tx
}

/// A URL-encoded form POST of `body`.
pub fn post(engine: &Engine, body: &[u8]) {
    post_to(
        engine,
        "/checkout",
        b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        b"application/x-www-form-urlencoded",
        body,
    );
}

/// A browser-like POST of `body` with the given accepted and content types,
/// which the engine must pass.
fn post_to(engine: &Engine, path: &str, accept: &[u8], content_type: &[u8], body: &[u8]) {
    let mut tx = engine.transaction(TxMeta {
        remote_addr: "192.0.2.10".into(),
        unique_id: "bench".into(),
        ..TxMeta::default()
    });
    let len = body.len().to_string();
    let headers = [
        ("Host", &b"shop.example.com"[..]),
        (
            "User-Agent",
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("Accept", accept),
        ("Content-Type", content_type),
        ("Content-Length", len.as_bytes()),
    ];
    assert_eq!(
        tx.process_request_headers("POST", path, "HTTP/1.1", headers),
        Verdict::Continue
    );
    tx.append_request_body(body);
    assert_eq!(
        tx.process_request_body(),
        Verdict::Continue,
        "{:?}",
        tx.error_log_lines()
    );
}

/// A realistic checkout form body of about 1 KB.
pub fn form_body() -> String {
    form_body_sized(1024)
}

/// A checkout form body of about `size` bytes (its fields repeat).
pub fn form_body_sized(size: usize) -> String {
    let mut body = String::new();
    let fields = [
        "first_name=Alice",
        "last_name=Martin",
        "email=alice.martin%40example.com",
        "street=12+Rue+de+la+Paix",
        "city=Paris",
        "zip=75002",
        "country=FR",
        "phone=%2B33123456789",
        "comment=Please+leave+the+parcel+with+the+concierge+if+nobody+answers",
    ];
    let mut i = 0;
    while body.len() < size.saturating_sub(24) {
        if !body.is_empty() {
            body.push('&');
        }
        body.push_str(fields[i % fields.len()]);
        i += 1;
    }
    body.truncate(size);
    while body.ends_with('%') || body.ends_with('&') {
        body.pop();
    }
    body
}

/// A JSON API body of about `size` bytes: an order with a list of line
/// items, each with a few fields of ordinary text and numbers (few enough
/// that 10 KB stays under CRS's default limit of 255 arguments).
#[allow(dead_code)]
pub fn json_body(size: usize) -> String {
    let mut items = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < size.saturating_sub(160) {
        let item = format!(
            r#"{{"sku":"SHOE-{i:04}","name":"Trail running shoe, size {}","quantity":{},"price":{}.99,"description":"A light trail shoe with a grippy outsole, a breathable upper and a cushioned midsole for long days on rough paths and wet rocks."}}"#,
            36 + i % 10,
            1 + i % 3,
            40 + i % 50
        );
        len += item.len() + 1;
        items.push(item);
        i += 1;
    }
    format!(
        r#"{{"order":{{"id":"ord_20261129_0042","customer":{{"name":"Alice Martin","email":"alice.martin@example.com"}},"items":[{}],"currency":"GBP"}}}}"#,
        items.join(",")
    )
}

/// A JSON POST of `body` to an API route.
#[allow(dead_code)]
pub fn post_json(engine: &Engine, body: &[u8]) {
    post_to(
        engine,
        "/api/orders",
        b"application/json",
        b"application/json",
        body,
    );
}
