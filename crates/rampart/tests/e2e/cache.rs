//! End-to-end tests of the serve-stale cache: a real gateway in front of an
//! origin that is stopped for real (its socket closed), so that every later
//! connection to it is refused.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

/// An origin that answers each request on its own connection (so the
/// gateway holds no pooled connection to it) and can be stopped.
struct Origin {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Origin {
    fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (served2, stop2) = (served.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let n = served2.fetch_add(1, Ordering::Relaxed) + 1;
                let extra = match path.as_str() {
                    "/private" => "Cache-Control: private\r\n",
                    "/login" => "Set-Cookie: session=abc\r\n",
                    _ => "",
                };
                let body = match path.as_str() {
                    // A public contact address and a page full of them.
                    "/contact" => format!("page {path} version {n}: write to press@party.example"),
                    "/members" => format!(
                        "page {path} version {n}: {}",
                        (0..60)
                            .map(|i| format!("member{i}@mail.example"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    _ => format!("page {path} version {n}"),
                };
                let mut stream = stream;
                let _ = stream.write_all(format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
            }
        });
        Origin {
            addr,
            served,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

fn page(gw: &GatewayProcess, path: &str, extra: &str) -> Reply {
    raw(gw.listen, format!("GET {path} HTTP/1.1\r\nHost: www.example\r\nAccept: text/html\r\n{extra}Connection: close\r\n\r\n").as_bytes()).unwrap()
}

#[test]
fn stale_pages_are_served_while_the_origin_is_down_but_never_to_a_visitor_with_cookies() {
    let mut origin = Origin::start();
    let gw = GatewayProcess::start(
        "cache-stale",
        &one_site_config(origin.addr, "\n[cache]\nttl = \"1s\"\nstale = \"5m\"\n"),
    );
    let news = page(&gw, "/news", "");
    assert_eq!(
        (news.status, news.body_text()),
        (200, "page /news version 1".to_string())
    );
    assert!(
        news.header("x-rampart-cache").is_none(),
        "a normal request goes to the origin"
    );
    for path in ["/private", "/login"] {
        assert_eq!(page(&gw, path, "").status, 200);
    }
    let before = origin.served.load(Ordering::Relaxed);
    origin.stop();
    // Past the copy's freshness: only the stale window keeps it.
    std::thread::sleep(Duration::from_millis(1100));

    let stale = page(&gw, "/news", "");
    assert_eq!(stale.status, 200, "{}", stale.body_text());
    assert_eq!(stale.body_text(), "page /news version 1");
    assert_eq!(stale.header("x-rampart-cache"), Some("stale"));
    assert!(stale.header("age").is_some());
    // HEAD is answered from the same copy, without a body.
    let (ok, head, err) = curl(&[
        "-sI",
        "-H",
        "Host: www.example",
        &format!("http://{}/news", gw.listen),
    ]);
    assert!(ok && head.starts_with("HTTP/1.1 200"), "{head}{err}");
    assert!(
        head.to_ascii_lowercase().contains("x-rampart-cache: stale"),
        "{head}"
    );

    // A visitor with a session cookie or credentials is never served a shared copy.
    assert!(page(&gw, "/news", "Cookie: session=abc\r\n").status >= 500);
    assert!(page(&gw, "/news", "Authorization: Bearer x\r\n").status >= 500);
    // The gateway's own clearance cookie does not make a visitor known.
    assert_eq!(
        page(&gw, "/news", "Cookie: rampart_clearance=x\r\n").status,
        200
    );
    // Responses a shared cache must not keep were not kept.
    assert!(
        page(&gw, "/private", "").status >= 500,
        "Cache-Control: private is not kept"
    );
    assert!(
        page(&gw, "/login", "").status >= 500,
        "a response with Set-Cookie is not kept"
    );
    assert!(page(&gw, "/never-seen", "").status >= 500);
    assert_eq!(
        origin.served.load(Ordering::Relaxed),
        before,
        "the origin was down throughout"
    );
    eventually("stale answers are logged", || {
        gw.access_log().contains("cache:stale-on-error")
    });
    assert!(
        gw.metrics().contains("rampart_cache_entries 1"),
        "{}",
        gw.metrics()
    );
}

/// The leak guard and the cache together: a page whose findings the
/// policy allows (one contact address) is kept like any other, while a page
/// the guard alerts on (a list of addresses) is never kept to be served
/// again without a scan.
#[test]
fn pages_the_leak_guard_allows_are_kept_and_alerted_ones_are_not() {
    let mut origin = Origin::start();
    let extra =
        "\n[cache]\nttl = \"1s\"\nstale = \"5m\"\n[leak_guard.default]\naction = \"alert\"\n";
    let gw = GatewayProcess::start("cache-leak", &one_site_config(origin.addr, extra));
    assert_eq!(page(&gw, "/contact", "").status, 200);
    assert_eq!(page(&gw, "/members", "").status, 200);
    eventually("both verdicts are logged", || {
        gw.access_log().contains("leak:allow:") && gw.access_log().contains("leak:alert:")
    });
    origin.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let contact = page(&gw, "/contact", "");
    assert_eq!(
        (contact.status, contact.header("x-rampart-cache")),
        (200, Some("stale")),
        "{}",
        contact.body_text()
    );
    assert!(contact.body_text().contains("press@party.example"));
    assert!(
        page(&gw, "/members", "").status >= 500,
        "an alerted page was kept"
    );
}

#[test]
fn a_disabled_cache_keeps_nothing() {
    let mut origin = Origin::start();
    let gw = GatewayProcess::start(
        "cache-off",
        &one_site_config(origin.addr, "\n[cache]\nenabled = false\n"),
    );
    assert_eq!(page(&gw, "/news", "").status, 200);
    origin.stop();
    assert!(page(&gw, "/news", "").status >= 500);
}

#[test]
fn a_broken_cache_section_is_reported_with_its_position() {
    let (ok, text) = check_config(
        "cache-bad",
        &one_site_config("127.0.0.1:9".parse().unwrap(), "\n[cache]\ntll = \"5s\"\n"),
    );
    assert!(!ok);
    assert!(
        text.contains("rampart.toml:") && text.contains("unknown field `tll`"),
        "{text}"
    );
}
