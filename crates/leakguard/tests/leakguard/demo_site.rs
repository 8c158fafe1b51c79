//! The demo site's real pages, fetched over a socket from a running `rampart-demo`, scanned under
//! the default policy: the donations feed is a donor list and is blocked; the thank-you page, the
//! home page and the forms pass.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rampart_demo::DemoSite;
use rampart_leakguard::{is_scannable, Action, EntityKind, GuardConfig, LeakGuard, RoutePolicy};

/// One request with `Connection: close`; returns the content type and the body.
fn fetch(site: &DemoSite, request: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(site.local_addr()).expect("connect to the demo site");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, reply[split..].to_vec())
}

fn get(site: &DemoSite, path: &str) -> (String, Vec<u8>) {
    fetch(
        site,
        &format!("GET {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n\r\n"),
    )
}

fn scan(body: &[u8]) -> (Vec<u8>, rampart_leakguard::Outcome) {
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    let mut scanner = guard.scanner(&RoutePolicy::default());
    let mut out = Vec::new();
    // The proxy hands bodies over in pieces; use an awkward size.
    for chunk in body.chunks(1000) {
        scanner.push(chunk, &mut out);
    }
    let outcome = scanner.finish(&mut out);
    (out, outcome)
}

#[test]
fn demo_feed_is_blocked_and_thank_you_page_passes() {
    let site = DemoSite::start("127.0.0.1:0".parse().unwrap()).expect("demo site starts");

    let form = "first_name=Alice&last_name=Smith&email=alice%40example.org&amount=25.00";
    let (content_type, thanks) = fetch(
        &site,
        &format!(
            "POST /donate HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert!(is_scannable(&content_type), "{content_type}");
    assert!(String::from_utf8_lossy(&thanks).contains("Thank you, Alice!"));
    let (out, outcome) = scan(&thanks);
    assert_eq!(outcome.action, Action::Allow, "thank-you page: {outcome:?}");
    assert_eq!(out, thanks);

    let (content_type, feed) = get(&site, "/donations/feed");
    assert!(is_scannable(&content_type), "{content_type}");
    assert!(String::from_utf8_lossy(&feed).matches("<item>").count() >= 20);
    let (out, outcome) = scan(&feed);
    assert_eq!(outcome.action, Action::Block, "feed: {outcome:?}");
    assert!(out.is_empty());
    let donors = outcome
        .findings
        .iter()
        .find(|f| f.kind == EntityKind::DonorList)
        .expect("a donor list finding");
    assert!(donors.count >= 5, "{donors:?}");
    assert_eq!(donors.action, Action::Block);

    for path in [
        "/",
        "/donate",
        "/login",
        "/search?q=budget",
        "/api/health",
        "/static/style.css",
    ] {
        let (content_type, body) = get(&site, path);
        if !is_scannable(&content_type) {
            continue;
        }
        let (_, outcome) = scan(&body);
        assert_eq!(outcome.action, Action::Allow, "{path}: {outcome:?}");
    }
    site.shutdown();
}
