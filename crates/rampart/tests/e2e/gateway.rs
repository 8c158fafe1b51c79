//! End-to-end tests of the gateway: a real `rampart` process in front of
//! real upstream servers, on free loopback ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

fn single_site(upstream: &str, limits: &str) -> String {
    format!(
        r#"
[server]
admin_listen = "{{admin}}"

[limits]
{limits}

[[listener]]
address = "{{listen}}"

[[upstream]]
name = "app"
servers = [{upstream}]

[[site]]
name = "www"
hosts = ["*"]
upstream = "app"

[[site.route]]
prefix = "/api/"
api = true
"#
    )
}

#[test]
fn http1_requests_are_proxied_and_logged() {
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start("http1", &single_site(&format!("\"{}\"", up.addr), ""));
    let reply = get(gw.listen, "/hello?x=1");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body_text(), "alpha /hello?x=1 0");
    assert!(reply.header("x-request-id").is_some());

    // Keep-alive: two requests on one connection.
    let mut stream = TcpStream::connect(gw.listen).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for i in 0..2 {
        write!(stream, "GET /k{i} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_reply(&mut stream).unwrap();
        assert_eq!(r.body_text(), format!("alpha /k{i} 0"));
    }

    // A POST body streams through.
    let body = "a".repeat(5000);
    let r = raw(gw.listen, format!("POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    assert_eq!(r.body_text(), "alpha /form 5000");

    eventually("the access log has the requests", || {
        gw.access_log().lines().count() >= 4
    });
    let first: serde_json::Value =
        serde_json::from_str(gw.access_log().lines().next().unwrap()).unwrap();
    for field in [
        "time",
        "site",
        "route",
        "client",
        "method",
        "path",
        "status",
        "bytes",
        "duration_ms",
        "upstream",
        "verdict",
    ] {
        assert!(
            first.get(field).is_some(),
            "access log lacks `{field}`: {first}"
        );
    }
    assert_eq!(first["site"], "www");
    assert_eq!(first["status"], 200);
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["verdict"], "allow");
    assert_eq!(first["upstream"], up.addr.to_string());

    let metrics = gw.metrics();
    assert!(
        metrics.contains("rampart_responses_total{site=\"www\",class=\"2xx\"} 4"),
        "{metrics}"
    );
}

#[test]
fn malformed_request_gets_400_not_a_crash() {
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start("malformed", &single_site(&format!("\"{}\"", up.addr), ""));
    let r = raw(gw.listen, b"GARBAGE\r\n\r\n").unwrap();
    assert_eq!(r.status, 400);
    let r = raw(
        gw.listen,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    );
    assert!(
        r.map(|r| r.status == 400).unwrap_or(true),
        "a bad Content-Length is refused or the connection closed"
    );
    // The gateway still serves.
    assert_eq!(get(gw.listen, "/").status, 200);
}

#[test]
fn oversized_headers_get_431_and_bodies_413() {
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start(
        "sizes",
        &single_site(
            &format!("\"{}\"", up.addr),
            "max_header_bytes = 4096\nmax_body_bytes = 1000",
        ),
    );
    let big_cookie = format!("Cookie: c={}\r\n", "x".repeat(5000));
    let r = get_with(gw.listen, "/", &big_cookie);
    assert_eq!(r.status, 431);

    let r = raw(
        gw.listen,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 413);

    // A chunked body gives no length up front; it is stopped as it crosses the cap.
    let mut req =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..3 {
        req.extend_from_slice(format!("{:x}\r\n{}\r\n", 600, "y".repeat(600)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = raw(gw.listen, &req).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(
        up.served.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing oversized reached the upstream as a complete request"
    );

    // Under the caps, all is well.
    let r = raw(
        gw.listen,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    )
    .unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn slow_drip_head_is_cut_off_while_others_are_served() {
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start(
        "drip",
        &single_site(&format!("\"{}\"", up.addr), "head_timeout = \"2s\""),
    );
    let listen = gw.listen;
    let dripper = std::thread::spawn(move || {
        let mut s = TcpStream::connect(listen).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let started = Instant::now();
        let header = b"X-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        // One byte every 250 ms: each read is quick, so a per-read timeout
        // alone would never fire. Keep dripping for up to 20 s.
        for byte in header.iter().cycle() {
            if s.write_all(&[*byte]).is_err() {
                return (true, started.elapsed());
            }
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Ok(0) => return (true, started.elapsed()),
                Ok(_) => return (false, started.elapsed()),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return (true, started.elapsed()),
            }
            std::thread::sleep(Duration::from_millis(200));
            if started.elapsed() > Duration::from_secs(20) {
                return (false, started.elapsed());
            }
        }
        (false, started.elapsed())
    });
    // Meanwhile, ordinary clients are served.
    for _ in 0..5 {
        assert_eq!(get(gw.listen, "/").status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cut, after) = dripper.join().unwrap();
    assert!(
        cut,
        "the dripping client was never cut off (dripped for {after:?})"
    );
    assert!(
        gw.metrics().contains("rampart_head_timeouts_total 1"),
        "{}",
        gw.metrics()
    );
}

#[test]
fn slow_body_is_cut_off_below_the_minimum_rate() {
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start(
        "slowbody",
        &single_site(
            &format!("\"{}\"", up.addr),
            "body_min_rate = 2000\nbody_rate_grace = \"1s\"",
        ),
    );
    let mut s = TcpStream::connect(gw.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(b"0123456789").is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(n) => {
                // An error page is acceptable too, as long as it is not a 200.
                assert!(
                    !String::from_utf8_lossy(&buf[..n]).contains(" 200 "),
                    "slow body was served"
                );
                cut = true;
                break;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cut, "a 100 bytes/s upload was never cut off");
    eventually("the slow body is counted", || {
        gw.metrics().contains("rampart_slow_bodies_total 1")
    });
}

#[test]
fn per_client_connection_cap() {
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start(
        "conncap",
        &single_site(
            &format!("\"{}\"", up.addr),
            "max_connections_per_client = 2",
        ),
    );
    // The start-up probe's connection must be gone, or it holds one of the two slots.
    eventually("no connection is open before the test's own", || {
        gw.metrics().contains("rampart_connections_open 0")
    });
    let mut a = TcpStream::connect(gw.listen).unwrap();
    let b = TcpStream::connect(gw.listen).unwrap();
    // Wait until the gateway has registered both (it counts a connection
    // when its task starts, which a loaded machine can delay).
    eventually("both held connections are counted", || {
        gw.metrics().contains("rampart_connections_open 2")
    });
    let third = raw(
        gw.listen,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    // An error is a refusal at accept: closed without an answer.
    if let Ok(r) = third {
        assert_eq!(r.status, 503, "third connection must be refused");
    }
    // A held connection still works, and freeing one admits a new one.
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(read_reply(&mut a).unwrap().status, 200);
    drop(a);
    drop(b);
    eventually("a freed slot admits a new connection", || {
        raw(
            gw.listen,
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .map(|r| r.status == 200)
        .unwrap_or(false)
    });
    assert!(!gw
        .metrics()
        .contains("rampart_connections_rejected_per_client_total 0"));
}

#[test]
fn upstream_down_gives_502_page_in_html_or_json() {
    let dead = free_port();
    let gw = GatewayProcess::start("down", &single_site(&format!("\"127.0.0.1:{dead}\""), ""));
    let r = get_with(gw.listen, "/", "Accept: text/html\r\n");
    assert_eq!(r.status, 502);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let reference = r.header("x-request-id").unwrap().to_string();
    assert!(
        r.body_text().contains(&reference),
        "the page shows the reference id"
    );
    assert!(
        !r.body_text().contains(&dead.to_string()),
        "the page must not reveal the upstream address"
    );

    let r = get_with(gw.listen, "/api/items", "Accept: text/html\r\n");
    assert_eq!(r.status, 502);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["status"], 502);

    let r = get_with(gw.listen, "/", "Accept: application/json\r\n");
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));

    eventually("the access log names the reference", || {
        gw.access_log().contains(&reference)
    });
}

#[test]
fn connect_failures_retry_idempotent_requests_only() {
    let live = NamedUpstream::start("live");
    let dead = free_port();
    let config = single_site(&format!("\"127.0.0.1:{dead}\", \"{}\"", live.addr), "")
        .replace("servers = [", "eject_after_failures = 1000\nservers = [");
    let gw = GatewayProcess::start("retry", &config);
    for _ in 0..6 {
        let r = get(gw.listen, "/");
        assert_eq!(r.status, 200, "a GET is retried on the live server");
    }
    let statuses: Vec<u16> = (0..6)
        .map(|_| raw(gw.listen, b"POST /pay HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").unwrap().status)
        .collect();
    assert!(
        statuses.contains(&502),
        "a POST that hit the dead server is not retried: {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
}

#[test]
fn health_check_ejects_a_dead_upstream_and_readmits_it() {
    let a = NamedUpstream::start("a");
    let b = NamedUpstream::start("b");
    let config = single_site(&format!("\"{}\", \"{}\"", a.addr, b.addr), "").replace(
        "servers = [",
        "health_check = { path = \"/health\", interval = \"200ms\", timeout = \"500ms\", unhealthy_after = 1, healthy_after = 1 }\nservers = [",
    );
    let gw = GatewayProcess::start("health", &config);
    let names = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                get(gw.listen, "/")
                    .body_text()
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let seen = names(6);
    assert!(
        seen.contains(&"a".to_string()) && seen.contains(&"b".to_string()),
        "{seen:?}"
    );

    let a_addr = a.stop();
    eventually("the health check marks `a` down", || {
        gw.stderr()
            .contains(&format!("{a_addr} of pool `app` is now down"))
    });
    let seen = names(6);
    assert!(
        seen.iter().all(|n| n == "b"),
        "only `b` serves while `a` is down: {seen:?}"
    );

    let _a = NamedUpstream::start_on("a", a_addr);
    eventually("the health check readmits `a`", || {
        gw.stderr()
            .contains(&format!("{a_addr} of pool `app` is now up"))
    });
    let seen = names(6);
    assert!(seen.contains(&"a".to_string()), "{seen:?}");
}

#[test]
fn reload_keeps_in_flight_requests_and_rejects_a_broken_file() {
    let a = NamedUpstream::start("a");
    let b = NamedUpstream::start("b");
    let gw = GatewayProcess::start("reload", &single_site(&format!("\"{}\"", a.addr), ""));
    let listen = gw.listen;
    let slow = std::thread::spawn(move || get(listen, "/slow"));
    eventually("the slow request is in flight at `a`", || {
        a.served.load(std::sync::atomic::Ordering::Relaxed) >= 1
    });

    // Point the site at `b` and reload through the command line.
    let text = std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .replace(&a.addr.to_string(), &b.addr.to_string());
    std::fs::write(&gw.config_path, &text).unwrap();
    let out = gw
        .cli()
        .args(["reload", "--admin", &gw.admin.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(get(gw.listen, "/").body_text().starts_with("b "));

    // The request that began before the reload finishes on the old upstream.
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body_text().starts_with("a /slow"));

    // A broken file is rejected with its errors and `b` keeps serving.
    std::fs::write(
        &gw.config_path,
        text.replace("[limits]", "[limits]\nhead_timeout = \"soon\""),
    )
    .unwrap();
    let out = gw
        .cli()
        .args(["reload", "--admin", &gw.admin.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("rampart.toml:6:16: `head_timeout` must be a duration"),
        "{stderr}"
    );
    assert!(get(gw.listen, "/").body_text().starts_with("b "));

    // SIGHUP reloads too: back to `a`.
    std::fs::write(
        &gw.config_path,
        text.replace(&b.addr.to_string(), &a.addr.to_string()),
    )
    .unwrap();
    let pid = gw.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    eventually("SIGHUP reloads the configuration", || {
        get(gw.listen, "/").body_text().starts_with("a ")
    });
}

#[test]
fn check_reports_every_error_with_its_position() {
    let dir = temp_dir("check");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[limits]\nhead_timeout = \"ten\"\nmax_body_byts = 1\n\n[[listener]]\naddress = \"nowhere\"\n\n[[site]]\nname = \"w\"\nhosts = [\"a\"]\nupstream = \"none\"\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}:2:16: `head_timeout` must be a duration")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:3:1: unknown key `max_body_byts`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}:6:11: `address`: `nowhere` is not an address"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("uses upstream `none`, which is not defined"),
        "{stderr}"
    );

    std::fs::write(&path, "[[listener]]\naddress = \"127.0.0.1:1\"\n[[upstream]]\nname = \"u\"\nservers = [\"127.0.0.1:2\"]\n[[site]]\nname = \"w\"\nhosts = [\"*\"]\nupstream = \"u\"\n").unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn h2c_and_websocket_pass_through() {
    let up = NamedUpstream::start("alpha");
    let config = single_site(&format!("\"{}\"", up.addr), "").replace(
        "address = \"{listen}\"",
        "address = \"{listen}\"\nh2c = true",
    );
    let gw = GatewayProcess::start("h2c", &config);
    let url = format!("http://{}/h2", gw.listen);
    let (ok, out, err) = curl(&["--http2-prior-knowledge", "-w", "\n%{http_version}", &url]);
    assert!(ok, "{err}");
    assert!(out.starts_with("alpha /h2 0"), "{out}");
    assert!(out.ends_with("\n2"), "HTTP/2 was used: {out}");
    // HTTP/1.1 still works on the same listener.
    assert_eq!(get(gw.listen, "/").status, 200);

    // WebSocket: upgrade, then bytes both ways.
    let mut s = TcpStream::connect(gw.listen).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s.write_all(b"ping-frame").unwrap();
    let mut echo = [0u8; 10];
    s.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"ping-frame");
}

#[test]
fn tls_with_sni_and_http2() {
    let dir = temp_dir("tls-certs");
    let (cert_a, key_a) = certificate(&dir, "a.test");
    let (cert_b, key_b) = certificate(&dir, "b.test");
    let up_a = NamedUpstream::start("site-a");
    let up_b = NamedUpstream::start("site-b");
    let config = format!(
        r#"
[server]
admin_listen = "{{admin}}"

[[listener]]
address = "{{listen}}"
tls = true

[[upstream]]
name = "a"
servers = ["{}"]

[[upstream]]
name = "b"
servers = ["{}"]

[[site]]
name = "a"
hosts = ["a.test"]
upstream = "a"
tls = {{ cert = "{}", key = "{}" }}

[[site]]
name = "b"
hosts = ["b.test"]
upstream = "b"
tls = {{ cert = "{}", key = "{}" }}
"#,
        up_a.addr,
        up_b.addr,
        cert_a.display(),
        key_a.display(),
        cert_b.display(),
        key_b.display()
    );
    let gw = GatewayProcess::start("tls", &config);
    let port = gw.listen.port();
    for (host, cert, expect) in [("a.test", &cert_a, "site-a"), ("b.test", &cert_b, "site-b")] {
        // Trusting only this host's self-signed certificate proves that SNI
        // picked it: any other certificate would fail verification.
        let resolve = format!("{host}:{port}:127.0.0.1");
        let url = format!("https://{host}:{port}/x");
        let (ok, out, err) = curl(&[
            "--http2",
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_version}",
            &url,
        ]);
        assert!(ok, "{host}: {err}");
        assert!(out.starts_with(&format!("{expect} /x")), "{out}");
        assert!(out.ends_with("\n2"), "ALPN chose HTTP/2: {out}");
        let (ok, out, err) = curl(&[
            "--http1.1",
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-w",
            "\n%{http_version}",
            &url,
        ]);
        assert!(ok, "{err}");
        assert!(out.ends_with("\n1.1"), "{out}");
    }
    // The wrong trust anchor for a name fails: the certificates really differ.
    let (ok, _, _) = curl(&[
        "--cacert",
        cert_b.to_str().unwrap(),
        "--resolve",
        &format!("a.test:{port}:127.0.0.1"),
        &format!("https://a.test:{port}/"),
    ]);
    assert!(!ok);
}

/// A slowloris ramp (400 new connections a second from 127.0.0.1, each
/// sending part of a head and then a header line a second) fills the whole
/// connection table: the global cap is set below the per-client one, as a
/// botnet's many addresses fill it at the defaults. A probe from 127.0.0.2
/// once a second must be answered every time, within 3 s.
#[test]
fn slowloris_ramp_never_leaves_a_probe_unserved() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _one_flood = one_flood_at_a_time();
    let up = NamedUpstream::start("alpha");
    let gw = GatewayProcess::start(
        "slowramp",
        &single_site(&format!("\"{}\"", up.addr), "max_connections = 200"),
    );
    let listen = gw.listen;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let attack = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let (mut made, mut held) = (0u64, Vec::<TcpStream>::new());
            let mut last_drip = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * 400.0) as u64;
                while made < due {
                    made += 1;
                    if let Ok(mut s) = TcpStream::connect_timeout(&listen, Duration::from_secs(1)) {
                        let _ = s.set_nonblocking(true);
                        let _ = s.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n");
                        held.push(s);
                    }
                }
                if last_drip.elapsed() >= Duration::from_secs(1) {
                    last_drip = Instant::now();
                    // Drip a header line on each connection still open.
                    held.retain_mut(|s| {
                        let mut buf = [0u8; 256];
                        match s.read(&mut buf) {
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                s.write(b"X-b: c\r\n").is_ok()
                            }
                            _ => false,
                        }
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            made
        })
    };
    let mut failures = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        let t0 = Instant::now();
        let (ok, out, err) = curl(&[
            "--interface",
            "127.0.0.2",
            "--max-time",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{time_total}",
            &format!("http://{listen}/"),
        ]);
        if !ok || !out.starts_with("200") {
            failures.push(format!("at {:?}: {out} {err}", t0 - started));
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(t0.elapsed()));
    }
    stop.store(true, Ordering::Relaxed);
    let made = attack.join().unwrap();
    let metrics = gw.metrics();
    assert!(
        failures.is_empty(),
        "probes not served during the ramp ({made} attack connections): {failures:?}\n{metrics}"
    );
    // The attack did fill the table: the probes got in by eviction.
    assert!(made > 1000, "{made}");
    assert!(
        !metrics.contains("rampart_connections_evicted_total 0"),
        "{metrics}"
    );
}
