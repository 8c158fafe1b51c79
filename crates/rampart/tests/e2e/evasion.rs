//! The evasion suite: what an attacker who has read rampart's code would
//! send to walk around a layer, as raw bytes over real HTTP to a running
//! gateway. Each test is one row of the "no way around" table (see
//! `docs/threat-model.md`) with its variants. The promises held here:
//! the donor feed never leaves, the injection never reaches the origin,
//! the challenge is never skipped, and malformed input gets a 4xx.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// `rampart demo` itself: the gateway in front of the bundled demo site,
/// with its state in a directory of its own.
struct Demo {
    child: Child,
    dir: std::path::PathBuf,
    listen: SocketAddr,
    origin: SocketAddr,
    admin: SocketAddr,
    state: std::path::PathBuf,
}

impl Demo {
    fn start(name: &str) -> Demo {
        let dir = temp_dir(name);
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let origin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary())
            .args([
                "demo",
                "--listen",
                &listen.to_string(),
                "--origin-listen",
                &origin.to_string(),
                "--admin",
                &admin.to_string(),
                "--access-log",
            ])
            .arg(dir.join("access.log"))
            .env("HOME", &dir)
            .env("XDG_STATE_HOME", dir.join("state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .expect("start rampart demo");
        wait_listening(listen);
        wait_listening(origin);
        let state = dir.join("state");
        Demo {
            child,
            dir,
            listen,
            origin,
            admin,
            state,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a body carries the demo feed's donors (each item's title reads
/// "NAME donated AMOUNT").
fn carries_donors(body: &str) -> bool {
    body.matches(" donated ").count() >= 2
}

fn send(addr: SocketAddr, request: &str) -> Reply {
    raw(addr, request.as_bytes()).unwrap_or_else(|e| panic!("no answer to {request:?}: {e}"))
}

/// The attempt must not carry the donors out: refused, or answered
/// without them.
fn assert_no_donors(what: &str, reply: &Reply) {
    assert!(
        !carries_donors(&reply.body_text()),
        "{what}: the donor feed left with status {}",
        reply.status
    );
}

#[test]
fn the_origin_really_publishes_the_feed() {
    // Without this, every test below could pass against an empty feed.
    let demo = Demo::start("evasion-origin");
    let direct = get(demo.origin, "/donations/feed");
    assert_eq!(direct.status, 200);
    assert!(
        carries_donors(&direct.body_text()),
        "{}",
        direct.body_text()
    );
    let through = get(demo.listen, "/donations/feed");
    assert_eq!(through.status, 503, "{}", through.body_text());
    assert_no_donors("the straight path", &through);
}

#[test]
fn an_upgrade_header_switches_no_layer_off() {
    let demo = Demo::start("evasion-upgrade");
    let a = demo.listen;
    for extra in [
        "Upgrade: x\r\nConnection: Upgrade\r\n",
        "Upgrade: x\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
    ] {
        let reply = send(a, &format!("GET /donations/feed HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"));
        assert_no_donors(extra, &reply);
        let reply = send(a, &format!("GET /donations/feed HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n"));
        assert_no_donors(&format!("HTTP/1.0 {extra}"), &reply);
        // The form-body injection is judged with the Upgrade header too.
        let body = "q=x%27+UNION+SELECT+name%2C+sql+FROM+sqlite_master--";
        let reply = send(a, &format!("POST /search HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
        assert_eq!(reply.status, 403, "{extra}: {}", reply.body_text());
        assert!(!reply.body_text().contains("sqlite_master") && !reply.body_text().contains("CREATE TABLE"), "{extra}");
    }
    // The body-size cap applies to an upgrade request with a body as well.
    let reply = send(a, "POST /search HTTP/1.1\r\nHost: localhost\r\nUpgrade: x\r\nContent-Length: 20000000\r\nConnection: close\r\n\r\n");
    assert_eq!(reply.status, 413);
}

#[test]
fn no_host_name_reaches_a_more_lenient_policy() {
    let demo = Demo::start("evasion-host");
    let a = demo.listen;
    for host in [
        "evil.example",
        "localhost.",
        "LOCALHOST",
        "localhost:1",
        "127.0.0.1",
        "127.0.0.1.",
        "[::1]",
        "x",
    ] {
        let reply = send(
            a,
            &format!("GET /donations/feed HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_no_donors(host, &reply);
    }
    // Absolute-form targets, with and without a matching Host.
    for request in [
        "GET http://evil.example/donations/feed HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        "GET http://localhost/donations/feed HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        "GET http://evil.example/donations/feed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "GET http://evil.example/donations/feed HTTP/1.0\r\n\r\n",
        "GET /donations/feed HTTP/1.0\r\n\r\n",
    ] {
        let reply = send(a, request);
        assert_no_donors(request, &reply);
    }
}

#[test]
fn malformed_hosts_get_400_and_the_gateway_stays_up() {
    let demo = Demo::start("evasion-bad-host");
    let a = demo.listen;
    for request in [
        "GET / HTTP/1.1\r\nHost: [\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: ]:\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: :\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost:99999\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        "CONNECT localhost:22 HTTP/1.1\r\nHost: localhost:22\r\n\r\n",
    ] {
        let reply = send(a, request);
        assert!(
            (400..500).contains(&reply.status),
            "{request:?} got {}",
            reply.status
        );
    }
    // Still serving.
    assert_eq!(get(a, "/").status, 200);
}

/// A head the HTTP layer refuses before any hook (raw `"` and `<` in the
/// target) is still logged, counted and judged by the WAF for its log,
/// and nothing of it reaches the origin.
#[test]
fn heads_the_http_layer_refuses_are_logged_and_counted() {
    let demo = Demo::start("evasion-refused-head");
    let reply = send(demo.listen, "GET /search?q=\"><script>alert(1)</script> HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(reply.status, 400);
    let log = demo.dir.join("access.log");
    eventually("the refused head is in the access log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("bad-request:malformed-head")
    });
    let metrics = get(demo.admin, "/metrics").body_text();
    let counted = metrics
        .lines()
        .find(|l| l.starts_with("rampart_malformed_requests_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<u64>().ok());
    assert_eq!(counted, Some(1), "{metrics}");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("malformed-head+waf"),
        "the WAF judged the refused head"
    );
}

/// The request smuggling classics and other malformed framing: refused
/// with a 4xx, or (where the framing is unambiguous and re-written by the
/// gateway) handled as one request; never a second, hidden request that
/// reaches the origin unjudged.
#[test]
fn smuggling_classics_are_refused() {
    let demo = Demo::start("evasion-smuggling");
    let a = demo.listen;
    let smuggled = "GET /donations/feed HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let cases = [
        // CL.TE
        format!("POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}", 5 + smuggled.len()),
        // TE.CL
        format!("POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len()),
        // Two different lengths.
        "POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nq=a".to_string(),
        // An obfuscated Transfer-Encoding.
        "POST /search HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\n\r\nq=a".to_string(),
        // obs-fold.
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n".to_string(),
    ];
    for request in &cases {
        let mut stream = TcpStream::connect(a).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        let text = String::from_utf8_lossy(&all);
        assert!(
            !carries_donors(&text),
            "{request:?}: the smuggled request got the feed: {text}"
        );
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{request:?} got {status}: {text}"
        );
    }
    assert_eq!(get(a, "/").status, 200);
}

/// A thousand dummy arguments, then the injection: the engine inspects
/// the first thousand, so it refuses the request rather than pass the rest
/// unread (ModSecurity's rule 200007).
#[test]
fn a_thousand_dummy_arguments_do_not_hide_an_injection() {
    let demo = Demo::start("evasion-arguments");
    let a = demo.listen;
    let injection = "q=x%27+UNION+SELECT+name%2C+sql+FROM+sqlite_master--";
    let dummies: String = (0..1000).map(|i| format!("a{i}=x&")).collect();
    let query = format!("{dummies}{injection}");
    let reply = send(
        a,
        &format!("GET /search?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        reply.status == 400 || reply.status == 403,
        "query: {}",
        reply.status
    );
    assert!(
        !reply.body_text().contains("sqlite_master"),
        "the origin ran it"
    );
    // Duplicate parameters: the same name a thousand times.
    let same: String = (0..1000).map(|_| "q=x&").collect();
    let reply = send(a, &format!("GET /search?{same}{injection} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
    assert!(
        reply.status == 400 || reply.status == 403,
        "duplicates: {}",
        reply.status
    );
    let forms = [
        ("application/x-www-form-urlencoded", query.clone()),
        (
            "application/json",
            format!(
                "[{}\"x' UNION SELECT name, sql FROM sqlite_master--\"]",
                "1,".repeat(1000)
            ),
        ),
        (
            "application/json",
            format!(
                "{{{}\"q\":\"x' UNION SELECT name, sql FROM sqlite_master--\"}}",
                (0..1200)
                    .map(|i| format!("\"k{i}\":1,"))
                    .collect::<String>()
            ),
        ),
    ];
    for (content_type, body) in forms {
        let reply = send(a, &format!("POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
        assert!(
            reply.status == 400 || reply.status == 403,
            "{content_type}: {}",
            reply.status
        );
        assert!(
            !reply.body_text().contains("sqlite_master"),
            "{content_type}: the origin ran it"
        );
        // Chunked, the same.
        let reply = send(a, &format!("POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()));
        assert!(
            reply.status == 400 || reply.status == 403,
            "{content_type} chunked: {}",
            reply.status
        );
    }
}

/// The injection in a body the WAF reads another way: a GET with a body, a
/// gzip-compressed body, a body in a charset no rule reads, bare LF framing.
#[test]
fn an_injection_in_an_unusual_body_is_refused() {
    let demo = Demo::start("evasion-bodies");
    let a = demo.listen;
    let form = "q=x%27+UNION+SELECT+name%2C+sql+FROM+sqlite_master--";
    let get_body = format!("GET /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}", form.len());
    let reply = send(a, &get_body);
    assert_eq!(reply.status, 403, "GET with a body: {}", reply.status);
    let gz = gzip(form.as_bytes());
    let mut request = format!("POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", gz.len()).into_bytes();
    request.extend_from_slice(&gz);
    let reply = raw(a, &request).unwrap();
    assert_eq!(reply.status, 415, "gzip body: {}", reply.status);
    let utf16: Vec<u8> = "q=x' UNION SELECT name, sql FROM sqlite_master--"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut request = format!("POST /search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-16le\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", utf16.len()).into_bytes();
    request.extend_from_slice(&utf16);
    let reply = raw(a, &request).unwrap();
    assert!(
        reply.status == 403 || reply.status == 400,
        "utf-16 body: {}",
        reply.status
    );
    // Bare LF line ends: RFC 9112 lets a server read them; the request is
    // read as one request, and the policies apply to it as to any other.
    let reply = send(
        a,
        "GET /donations/feed HTTP/1.1\nHost: localhost\nConnection: close\n\n",
    );
    assert_no_donors("bare LF", &reply);
    let reply = send(a, &format!("POST /search HTTP/1.1\nHost: localhost\nContent-Type: application/x-www-form-urlencoded\nContent-Length: {}\nConnection: close\n\n{form}", form.len()));
    assert_eq!(reply.status, 403, "bare LF body: {}", reply.status);
}

/// What a layer cannot read is refused or passed by an explicit choice per
/// route: a compressed request body is refused by default, and passes only
/// where the route says `uninspectable = "pass"`.
#[test]
fn an_unreadable_body_follows_the_routes_explicit_choice() {
    let demo = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let feed = get(demo.local_addr(), "/donations/feed").body;
    let origin = LenientOrigin::start(feed);
    let tail = "[[site.route]]\nprefix = \"/upload\"\nuninspectable = \"pass\"\n[site.waf]\nmode = \"on\"\ncrs = \"/usr/share/modsecurity-crs\"\n";
    let gw = GatewayProcess::start("evasion-uninspectable", &one_site_config(origin.addr, tail));
    let gz = gzip(b"q=hello");
    for (path, want_refused) in [
        ("/search", true),
        ("/UPLOAD/../search", true),
        ("/upload/file", false),
    ] {
        let mut request = format!("POST {path} HTTP/1.1\r\nHost: www.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", gz.len()).into_bytes();
        request.extend_from_slice(&gz);
        let reply = raw(gw.listen, &request).unwrap();
        assert_eq!(
            reply.status == 415,
            want_refused,
            "{path}: {}",
            reply.status
        );
    }
    let metrics = gw.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("rampart_waf_uninspectable_total") && l.ends_with(" 2")),
        "{metrics}"
    );
}

#[test]
fn ranges_of_the_feed_do_not_leave() {
    let demo = Demo::start("evasion-range");
    for range in [
        "bytes=0-400",
        "bytes=100-",
        "bytes=-500",
        "bytes=0-10,200-400,600-900",
    ] {
        let reply = send(demo.listen, &format!("GET /donations/feed HTTP/1.1\r\nHost: localhost\r\nRange: {range}\r\nConnection: close\r\n\r\n"));
        assert_no_donors(range, &reply);
        assert_ne!(reply.status, 206, "{range}");
    }
}

#[test]
fn under_attack_no_header_or_method_skips_the_challenge() {
    let demo = Demo::start("evasion-challenge");
    let out = Command::new(binary())
        .env("XDG_STATE_HOME", &demo.state)
        .args([
            "mode",
            "default",
            "under-attack",
            "--admin",
            &demo.admin.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for request in [
        "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nX-Requested-With: XMLHttpRequest\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "POST /donate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        "OPTIONS / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\nAccept: application/json\r\n\r\n",
    ] {
        let reply = send(demo.listen, request);
        assert!(reply.status == 403 || reply.status == 429 || reply.status == 503, "{request:?} reached the origin: {}", reply.status);
        if reply.status == 429 {
            assert!(reply.header("retry-after").is_some(), "{request:?}");
            assert!(reply.body_text().contains("challenge_required"), "{request:?}: {}", reply.body_text());
        }
    }
    // HEAD has no body to read: its status line says enough.
    let mut stream = TcpStream::connect(demo.listen).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    let mut head = String::new();
    let _ = stream.read_to_string(&mut head);
    assert!(
        head.starts_with("HTTP/1.1 429") || head.starts_with("HTTP/1.1 403"),
        "HEAD reached the origin: {head}"
    );
    // A browser still gets the challenge page it can solve.
    let page = send(
        demo.listen,
        "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(page.status, 403);
    assert!(
        page.body_text().contains("rampart-challenge"),
        "{}",
        page.body_text()
    );
}

/// An origin that normalises paths as most frameworks do: decodes percent
/// escapes (also `%2f`), reads `\` as `/`, drops `;parameters`, merges
/// slashes, resolves dot segments and ignores case. It serves the demo's
/// feed at `/donations/feed`, gzip-compressed whatever it is asked when
/// the query has `gz`, and counts what it served.
struct LenientOrigin {
    addr: SocketAddr,
    served_feed: Arc<AtomicUsize>,
    last_target: Arc<Mutex<String>>,
}

fn lenient_normalise(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let mut bytes = Vec::new();
    let raw = path.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            if let Ok(b) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                bytes.push(b);
                i += 3;
                continue;
            }
        }
        bytes.push(raw[i]);
        i += 1;
    }
    let decoded = String::from_utf8_lossy(&bytes).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for s in decoded.split('/') {
        let s = s.split(';').next().unwrap_or("");
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/")).to_ascii_lowercase()
}

impl LenientOrigin {
    fn start(feed: Vec<u8>) -> LenientOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served_feed = Arc::new(AtomicUsize::new(0));
        let last_target = Arc::new(Mutex::new(String::new()));
        let gz = gzip(&feed);
        let (count, last) = (served_feed.clone(), last_target.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (feed, gz, count, last) =
                    (feed.clone(), gz.clone(), count.clone(), last.clone());
                std::thread::spawn(move || serve_lenient(stream, &feed, &gz, &count, &last));
            }
        });
        LenientOrigin {
            addr,
            served_feed,
            last_target,
        }
    }
}

fn serve_lenient(
    mut stream: TcpStream,
    feed: &[u8],
    gz: &[u8],
    count: &AtomicUsize,
    last: &Mutex<String>,
) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    *last.lock().unwrap() = target.clone();
    let (status, encoding, body): (&str, &str, &[u8]) =
        if lenient_normalise(&target) == "/donations/feed" {
            count.fetch_add(1, Ordering::Relaxed);
            if target.contains("gz") {
                ("200 OK", "Content-Encoding: gzip\r\n", gz)
            } else {
                ("200 OK", "", feed)
            }
        } else {
            ("404 Not Found", "", b"not here")
        };
    let reply = format!("HTTP/1.1 {status}\r\nContent-Type: application/rss+xml\r\n{encoding}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.write_all(body);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A gateway in front of the lenient origin, with the feed a block route.
fn lenient_gateway(name: &str) -> (LenientOrigin, GatewayProcess) {
    let demo = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let feed = get(demo.local_addr(), "/donations/feed").body;
    assert!(carries_donors(&String::from_utf8_lossy(&feed)));
    let origin = LenientOrigin::start(feed);
    let policies = "[leak_guard.default]\naction = \"alert\"\n[[leak_guard.sites]]\nhost = \"www.example\"\n[[leak_guard.sites.routes]]\npath_prefix = \"/donations/feed\"\naction = \"block\"\n";
    let config = one_site_config(origin.addr, policies)
        .replace("hosts = [\"*\"]", "hosts = [\"www.example\", \"*\"]");
    let gw = GatewayProcess::start(name, &config);
    (origin, gw)
}

#[test]
fn every_spelling_of_the_feed_meets_its_policy() {
    let (origin, gw) = lenient_gateway("evasion-paths");
    let spellings = [
        "/donations/feed",
        "/%64onations/feed",
        "//donations/feed",
        "/donations//feed",
        "/donations/./feed",
        "/x/../donations/feed",
        "/DONATIONS/FEED",
        "/Donations/Feed",
        "/donations%2ffeed",
        "/donations%2Ffeed",
        "/donations%5cfeed",
        "/donations;x/feed",
        "/donations/feed;jsessionid=1",
        "/%2e/donations/feed",
        "/x/%2e%2e/donations/feed",
        "/x/%2E%2E%2Fdonations/feed",
        "/donations/feed?gz=1",
        "/%64onations/feed?gz",
    ];
    for spelling in spellings {
        // The origin itself serves the feed under this spelling ...
        let before = origin.served_feed.load(Ordering::Relaxed);
        let direct = get_with(origin.addr, spelling, "");
        assert_eq!(direct.status, 200, "the lenient origin serves {spelling}");
        assert_eq!(origin.served_feed.load(Ordering::Relaxed), before + 1);
        // ... and through the gateway it never leaves, under any host name.
        for host in ["www.example", "other.example", "WWW.EXAMPLE."] {
            let reply = send(gw.listen, &format!("GET {spelling} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"));
            let body = if reply.header("content-encoding").is_some() {
                String::from_utf8_lossy(&gunzip(&reply.body)).into_owned()
            } else {
                reply.body_text()
            };
            assert!(
                !carries_donors(&body),
                "{spelling} via {host}: the feed left with {}",
                reply.status
            );
            assert!(
                reply.status == 503 || (400..500).contains(&reply.status),
                "{spelling} via {host}: {}",
                reply.status
            );
        }
    }
    // The upstream is sent the normalised path, so it serves what was judged.
    get_with(gw.listen, "/x/../elsewhere/./page?b=%2e", "");
    assert_eq!(*origin.last_target.lock().unwrap(), "/elsewhere/page?b=%2e");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = flate2::read::GzDecoder::new(bytes).read_to_end(&mut out);
    out
}

#[test]
fn the_feed_over_http2_with_tls_meets_the_same_policy() {
    let dir = temp_dir("evasion-h2-certs");
    let (cert, key) = certificate(&dir, "www.example");
    let demo = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let feed = get(demo.local_addr(), "/donations/feed").body;
    let origin = LenientOrigin::start(feed);
    let config = format!(
        "[server]\nadmin_listen = \"{{admin}}\"\n\n[[listener]]\naddress = \"{{listen}}\"\ntls = true\n\n[[upstream]]\nname = \"app\"\nservers = [\"{}\"]\n\n[[site]]\nname = \"www\"\nhosts = [\"www.example\", \"*\"]\nupstream = \"app\"\ntls = {{ cert = \"{}\", key = \"{}\" }}\n\n[leak_guard.default]\naction = \"alert\"\n[[leak_guard.sites]]\nhost = \"www.example\"\n[[leak_guard.sites.routes]]\npath_prefix = \"/donations/feed\"\naction = \"block\"\n",
        origin.addr,
        cert.display(),
        key.display()
    );
    let gw = GatewayProcess::start("evasion-h2", &config);
    let port = gw.listen.port();
    for (host, path) in [
        ("www.example", "/donations/feed"),
        ("other.example", "/donations/feed"),
        ("www.example", "/%64onations//feed"),
    ] {
        let url = format!("https://{host}:{port}{path}");
        let resolve = format!("{host}:{port}:127.0.0.1");
        let (ok, out, err) = curl(&[
            "-sk",
            "--http2",
            "--path-as-is",
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_code} %{http_version}",
            &url,
        ]);
        assert!(ok, "{err}");
        assert!(!carries_donors(&out), "{url}: {out}");
        assert!(out.ends_with(" 2"), "HTTP/2 was used: {out}");
        assert!(
            out.contains("\n503 "),
            "{url}: the block route answers, not the origin: {out}"
        );
    }
}

#[test]
fn the_feed_over_h2c_meets_the_same_policy() {
    let demo = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let feed = get(demo.local_addr(), "/donations/feed").body;
    let origin = LenientOrigin::start(feed);
    let policies = "[leak_guard.default]\naction = \"alert\"\n[[leak_guard.sites]]\nhost = \"www.example\"\n[[leak_guard.sites.routes]]\npath_prefix = \"/donations/feed\"\naction = \"block\"\n";
    let config = one_site_config(origin.addr, policies)
        .replace("hosts = [\"*\"]", "hosts = [\"www.example\", \"*\"]")
        .replace(
            "address = \"{listen}\"",
            "address = \"{listen}\"\nh2c = true",
        );
    let gw = GatewayProcess::start("evasion-h2c", &config);
    for (host, path) in [
        ("www.example", "/donations/feed"),
        ("other.example", "/DONATIONS/feed"),
        ("www.example", "/x/../donations/feed"),
    ] {
        let url = format!("http://{}{path}", gw.listen);
        let (ok, out, err) = curl(&[
            "-s",
            "--http2-prior-knowledge",
            "--path-as-is",
            "-H",
            &format!("Host: {host}"),
            "-w",
            "\n%{http_code} %{http_version}",
            &url,
        ]);
        assert!(ok, "{err}");
        assert!(!carries_donors(&out), "{url} as {host}: {out}");
        assert!(out.ends_with("503 2"), "{url} as {host}: {out}");
    }
}

#[test]
fn a_gzip_export_on_a_block_route_is_judged_decoded() {
    let (_origin, gw) = lenient_gateway("evasion-gzip");
    for accept in [
        "",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: gzip\r\n",
    ] {
        let reply = send(gw.listen, &format!("GET /donations/feed?gz=1 HTTP/1.1\r\nHost: www.example\r\n{accept}Connection: close\r\n\r\n"));
        assert_eq!(reply.status, 503, "{accept:?}");
        assert!(
            !carries_donors(&String::from_utf8_lossy(&gunzip(&reply.body))),
            "{accept:?}"
        );
    }
}

/// One way to reach an upstream: a pool behind TLS (`tls_sni`) is reached
/// over TLS by the proxy, by the health checks (the pool stays up) and by
/// the block route's whole-response fetch (the feed is judged, not passed
/// or refused unread). The origin is `openssl s_server` with a certificate
/// from a test CA the gateway is told to trust (`SSL_CERT_FILE`).
#[test]
fn a_tls_upstream_is_reached_by_the_fetch_and_the_health_checks() {
    let dir = temp_dir("evasion-tls-upstream");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rampart test ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=origin.test",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:origin.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("donations")).unwrap();
    let demo = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    std::fs::write(
        www.join("donations/feed"),
        get(demo.local_addr(), "/donations/feed").body,
    )
    .unwrap();
    std::fs::write(www.join("health"), "ok").unwrap();
    std::fs::write(www.join("page"), "a page").unwrap();
    let origin_port = free_port();
    let mut origin = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{origin_port}"),
            "-cert",
            "../leaf.pem",
            "-key",
            "../leaf.key",
            "-WWW",
            "-quiet",
        ])
        .current_dir(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    wait_listening(format!("127.0.0.1:{origin_port}").parse().unwrap());
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[server]\nadmin_listen = \"{admin}\"\n[[listener]]\naddress = \"{listen}\"\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{origin_port}\"]\ntls_sni = \"origin.test\"\nhealth_check = {{ path = \"/health\", interval = \"1s\", timeout = \"2s\", unhealthy_after = 1, healthy_after = 1 }}\n[[site]]\nname = \"www\"\nhosts = [\"*\"]\nupstream = \"app\"\n[leak_guard.default]\naction = \"alert\"\n[[leak_guard.sites]]\nhost = \"www.example\"\n[[leak_guard.sites.routes]]\npath_prefix = \"/donations/feed\"\naction = \"block\"\n"
    );
    std::fs::write(dir.join("rampart.toml"), config).unwrap();
    let mut gateway = Command::new(binary())
        .args(["serve", "--config"])
        .arg(dir.join("rampart.toml"))
        .arg("--access-log")
        .arg(dir.join("access.log"))
        .env("SSL_CERT_FILE", dir.join("ca.pem"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rampart serve");
    wait_listening(listen);
    // Several health-check rounds: a probe that could not speak TLS would
    // have marked the only server down, and every request would be a 503.
    std::thread::sleep(Duration::from_millis(3500));
    let page = send(
        listen,
        "GET /page HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((page.status, page.body_text().as_str()), (200, "a page"));
    let feed = send(
        listen,
        "GET /donations/feed HTTP/1.1\r\nHost: www.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(feed.status, 503);
    assert_no_donors("the TLS origin's feed", &feed);
    // The fetch read the feed over TLS and judged it.
    let log = dir.join("access.log");
    eventually("the feed's verdict is in the access log", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("leak:block:donor_list")
    });
    let metrics = get(admin, "/metrics").body_text();
    assert!(
        metrics.lines().any(|l| l == "rampart_health_flips_total 0"),
        "{metrics}"
    );
    let _ = gateway.kill();
    let _ = gateway.wait();
    let _ = origin.kill();
    let _ = origin.wait();
}
