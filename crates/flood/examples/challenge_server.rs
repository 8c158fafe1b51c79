//! A throwaway HTTP server on 127.0.0.1 for checking the challenge page in a
//! real browser. It is an example, not part of the library (the library
//! does no I/O); the gateway does this job for real.
//!
//! Run: `cargo run -p rampart-flood --release --example challenge_server -- 8099 30`
//! (port, seconds to live), then point a browser at http://127.0.0.1:8099/.
//! Every line it prints is one decision, so a script can check the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rampart_flood::{
    pages, FloodConfig, FloodVerdict, Keyring, RequestFacts, RouteId, Shield, SiteConfig, Time,
};

fn now() -> Time {
    Time::from_nanos(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8099);
    let ttl = Duration::from_secs(args.next().and_then(|a| a.parse().ok()).unwrap_or(30));
    let mut config = FloodConfig::default();
    config.challenge.min_difficulty = 16;
    config.sites.push(SiteConfig {
        name: "local".into(),
        ..Default::default()
    });
    let shield = std::sync::Arc::new(
        Shield::in_memory(
            &config,
            Keyring::generate(*b"example-key-not-for-production!!"),
            now(),
        )
        .unwrap(),
    );
    let site = shield.site_id("local").unwrap();
    shield.set_mode(site, Some(true), now());
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    println!("listening on 127.0.0.1:{port}");
    while started.elapsed() < ttl {
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let shield = std::sync::Arc::clone(&shield);
        // One thread per connection: browsers open speculative connections
        // that send nothing, which must not hold up the real requests.
        std::thread::spawn(move || serve(&shield, site, stream, peer));
    }
}

fn serve(
    shield: &Shield,
    site: rampart_flood::SiteId,
    mut stream: std::net::TcpStream,
    peer: std::net::SocketAddr,
) {
    {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("/").to_string(),
        );
        let mut cookie = None;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0).min(4096);
            }
            if lower.starts_with("cookie:") {
                cookie =
                    pages::find_cookie(h[7..].trim(), pages::CLEARANCE_COOKIE).map(str::to_string);
            }
        }
        let mut body = vec![0u8; len];
        let _ = reader.read_exact(&mut body);
        let body = String::from_utf8_lossy(&body).to_string();
        let client: IpAddr = peer.ip();
        println!("request {method} {target} len={len}");
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |s: &str, k: &str| pages::form_field(s, k).map(pages::percent_decode);
        let response = if method == "POST" && path == pages::VERIFY_PATH {
            let token = param(&body, "token").unwrap_or_default();
            let solution = param(&body, "solution").unwrap_or_default();
            match shield.verify_solution(site, client, &token, &solution, now()) {
                Ok(c) => {
                    println!("verify ok solution={solution}");
                    format!(
                        "HTTP/1.1 204 No Content\r\nSet-Cookie: {}\r\nConnection: close\r\n\r\n",
                        c.set_cookie().replace("; Secure", "")
                    )
                }
                Err(e) => {
                    println!("verify rejected {e:?}");
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                }
            }
        } else if path == pages::WAIT_PATH {
            let token = param(query, "t").unwrap_or_default();
            let ret = param(query, "r").unwrap_or_else(|| "/".into());
            match shield.redeem_wait(site, client, &token, now()) {
                Ok(c) => {
                    println!("wait ok");
                    format!(
                        "HTTP/1.1 303 See Other\r\nLocation: {}\r\nSet-Cookie: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        pages::safe_return_path(&ret),
                        c.set_cookie().replace("; Secure", "")
                    )
                }
                Err(rampart_flood::Reject::TooEarly { remaining }) => {
                    println!("wait too early");
                    let page =
                        pages::wait_page(&token, &ret, rampart_flood::retry_after_secs(remaining));
                    format!("HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len())
                }
                Err(e) => {
                    println!("wait rejected {e:?}");
                    "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                }
            }
        } else {
            let facts = RequestFacts {
                client,
                site,
                route: RouteId::NONE,
                is_api: false,
                is_browser: true,
                clearance_cookie: cookie.as_deref(),
                ticket_cookie: None,
                now: now(),
            };
            match shield.admit(&facts) {
                FloodVerdict::Challenge(c) => {
                    println!("challenge difficulty={}", c.difficulty);
                    let page = c.page(&target);
                    format!(
                        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\nContent-Security-Policy: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                        pages::challenge_csp(),
                        page.len()
                    )
                }
                FloodVerdict::Continue { .. } => {
                    println!("cleared {target}");
                    let page = "<!doctype html><html lang=\"en\"><title>Welcome</title><h1 id=\"ok\">CLEARED</h1></html>";
                    format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}", page.len())
                }
                v => {
                    println!("other {v:?}");
                    "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                }
            }
        };
        let _ = stream.write_all(response.as_bytes());
    }
}
