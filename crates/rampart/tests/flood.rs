//! End-to-end tests of the flood shield in the gateway: real `rampart`
//! processes in front of real upstreams.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

fn flood_config(upstream: SocketAddr, flood: &str) -> String {
    one_site_config(upstream, &format!("\n[[site.route]]\nprefix = \"/api/\"\napi = true\n\n[[site.route]]\nprefix = \"/slow\"\n\n{flood}"))
}

const BROWSER: &str = "Accept: text/html,application/xhtml+xml\r\nUser-Agent: Mozilla/5.0 test\r\n";

fn browser(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    raw(addr, format!("GET {path} HTTP/1.1\r\nHost: www.example\r\n{BROWSER}{cookie}Connection: close\r\n\r\n").as_bytes()).expect("GET")
}

fn admin(gw: &GatewayProcess, args: &[&str]) -> (bool, String) {
    let out = gw
        .cli()
        .args(args)
        .args(["--admin", &gw.admin.to_string()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn attribute<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!("{name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + name.len()
        + 2;
    &page[start..start + page[start..].find('"').unwrap()]
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Solves the proof of work the way the page's script does.
fn solve(token: &str, bits: u32) -> u64 {
    (0u64..)
        .find(|n| {
            let hash = Sha256::digest(format!("{token}:{n}").as_bytes());
            let mut zeros = 0;
            for byte in hash.iter() {
                if *byte == 0 {
                    zeros += 8;
                } else {
                    zeros += byte.leading_zeros();
                    break;
                }
            }
            zeros >= bits
        })
        .unwrap()
}

fn set_cookie_value(r: &Reply) -> String {
    r.header("set-cookie")
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn client_rate_limit_answers_429_with_retry_after() {
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-limit",
        &flood_config(up.addr, "[flood]\n[[flood.sites]]\nname = \"www\"\nclient = { requests = 5, per_secs = 60, burst = 5 }\n"),
    );
    let statuses: Vec<u16> = (0..8)
        .map(|_| browser(gw.listen, "/", None).status)
        .collect();
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let r = browser(gw.listen, "/", None);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    eventually("the limit shows in the access log", || {
        gw.access_log().contains("flood:limited:Client")
    });
}

#[test]
fn under_attack_mode_challenges_browsers_and_a_solved_challenge_clears_them() {
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-challenge",
        &flood_config(up.addr, "[flood]\n[flood.challenge]\nmin_difficulty = 8\nmax_difficulty = 10\nnojs_wait_secs = 1\n[[flood.sites]]\nname = \"www\"\n"),
    );
    assert_eq!(browser(gw.listen, "/", None).status, 200);
    let (ok, out) = admin(&gw, &["mode", "www", "under-attack"]);
    assert!(ok && out.contains("\"under_attack\":true"), "{out}");

    let r = browser(gw.listen, "/donate?x=1", None);
    assert_eq!(r.status, 403);
    assert!(r.header("content-security-policy").is_some());
    let page = r.body_text();
    let token = html_unescape(attribute(&page, "data-token"));
    let bits: u32 = attribute(&page, "data-bits").parse().unwrap();
    let verify = html_unescape(attribute(&page, "data-verify"));
    let wait = html_unescape(attribute(&page, "data-wait"));

    // A wrong answer is refused.
    let body = format!("token={}&solution=1", enc(&token));
    let post = |body: &str| {
        raw(gw.listen, format!("POST {verify} HTTP/1.1\r\nHost: www.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes()).unwrap()
    };
    if Sha256::digest(format!("{token}:1").as_bytes())[0] != 0 {
        assert_eq!(post(&body).status, 403);
    }
    // The right answer clears; the cookie then opens the site.
    let solution = solve(&token, bits);
    let r = post(&format!("token={}&solution={solution}", enc(&token)));
    assert_eq!(r.status, 204, "{}", r.body_text());
    let cookie = set_cookie_value(&r);
    assert_eq!(browser(gw.listen, "/donate?x=1", Some(&cookie)).status, 200);
    // The same solution cannot be used twice.
    assert_eq!(
        post(&format!("token={}&solution={solution}", enc(&token))).status,
        403,
        "a replayed solution must be refused"
    );
    // A tampered cookie is no clearance.
    let mut tampered = cookie.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        browser(gw.listen, "/", Some(&String::from_utf8(tampered).unwrap())).status,
        403
    );

    // Without script: the wait link works only after the wait.
    let early = raw(
        gw.listen,
        format!("GET {wait} HTTP/1.1\r\nHost: www.example\r\n{BROWSER}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        early.status, 403,
        "the wait token must not work before its wait"
    );
    std::thread::sleep(Duration::from_millis(1300));
    let later = raw(
        gw.listen,
        format!("GET {wait} HTTP/1.1\r\nHost: www.example\r\n{BROWSER}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(later.status, 303);
    assert_eq!(later.header("location"), Some("/donate?x=1"));
    assert_eq!(
        browser(gw.listen, "/donate?x=1", Some(&set_cookie_value(&later))).status,
        200
    );

    // API routes are challenged too (a route or header that skipped the
    // challenge would be a free pass for a flood), in a form an API client
    // can act on: 429, when to retry, and the proof of work in JSON.
    let api = raw(gw.listen, b"GET /api/items HTTP/1.1\r\nHost: www.example\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(api.status, 429);
    assert!(api.header("retry-after").is_some());
    let body: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(body["error"], "challenge_required", "{body}");

    let (ok, _) = admin(&gw, &["mode", "www", "normal"]);
    assert!(ok);
    assert_eq!(browser(gw.listen, "/", None).status, 200);
}

#[test]
fn under_attack_page_views_from_cleared_browsers_cost_the_origin_nothing() {
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-cache",
        &flood_config(up.addr, "[flood]\n[flood.challenge]\nmin_difficulty = 8\nmax_difficulty = 10\n[[flood.sites]]\nname = \"www\"\n"),
    );
    // A first, ordinary view leaves a copy in the serve-stale cache.
    assert_eq!(browser(gw.listen, "/news", None).status, 200);
    let (ok, out) = admin(&gw, &["mode", "www", "under-attack"]);
    assert!(ok, "{out}");
    let page = browser(gw.listen, "/news", None).body_text();
    let token = html_unescape(attribute(&page, "data-token"));
    let bits: u32 = attribute(&page, "data-bits").parse().unwrap();
    let verify = html_unescape(attribute(&page, "data-verify"));
    let body = format!("token={}&solution={}", enc(&token), solve(&token, bits));
    let cleared = raw(gw.listen, format!("POST {verify} HTTP/1.1\r\nHost: www.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    assert_eq!(cleared.status, 204);
    let cookie = set_cookie_value(&cleared);

    let before = up.served.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..20 {
        let r = browser(gw.listen, "/news", Some(&cookie));
        assert_eq!(r.status, 200);
        assert!(
            r.header("x-rampart-cache").is_some(),
            "under attack, page views come from the cache"
        );
        assert_eq!(r.body_text(), "app /news 0");
    }
    assert_eq!(
        up.served.load(std::sync::atomic::Ordering::Relaxed),
        before,
        "the origin saw none of them"
    );
    // A visitor with a session of their own still reaches the origin.
    let own = browser(gw.listen, "/news", Some(&format!("session=1; {cookie}")));
    assert_eq!(own.status, 200);
    assert!(own.header("x-rampart-cache").is_none());
    assert_eq!(
        up.served.load(std::sync::atomic::Ordering::Relaxed),
        before + 1
    );
    eventually("cache answers are logged", || {
        gw.access_log().contains("cache:under-attack")
    });
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn bans_by_hand_and_the_allowlist_beats_them() {
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-ban",
        &flood_config(up.addr, "[flood]\n[[flood.sites]]\nname = \"www\"\n"),
    );
    let (ok, out) = admin(&gw, &["ban", "127.0.0.1", "--for", "60"]);
    assert!(ok, "{out}");
    assert_eq!(browser(gw.listen, "/", None).status, 403);
    let (_, list) = admin(&gw, &["bans"]);
    assert!(list.contains("127.0.0.1"), "{list}");
    let (ok, _) = admin(&gw, &["unban", "127.0.0.1"]);
    assert!(ok);
    assert_eq!(browser(gw.listen, "/", None).status, 200);

    let allowed = GatewayProcess::start("flood-allow", &flood_config(up.addr, "[flood]\nallow = [\"127.0.0.0/8\"]\n[[flood.sites]]\nname = \"www\"\nclient = { requests = 1, per_secs = 60, burst = 1 }\n"));
    let (ok, _) = admin(&allowed, &["ban", "127.0.0.1", "--for", "60"]);
    assert!(ok);
    for _ in 0..3 {
        assert_eq!(
            browser(allowed.listen, "/", None).status,
            200,
            "an allowlisted client passes bans and limits"
        );
    }
}

#[test]
fn concurrency_cap_sends_browsers_to_the_waiting_room() {
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-queue",
        &flood_config(up.addr, "[flood]\n[[flood.sites]]\nname = \"www\"\n[[flood.sites.routes]]\nname = \"/slow\"\nmax_in_flight = 1\nrefresh_secs = 2\n"),
    );
    let listen = gw.listen;
    let holder = std::thread::spawn(move || browser(listen, "/slow", None));
    // The holder is inside once the upstream has it (it then answers after 2 s).
    eventually("the first request holds the route's only slot", || {
        up.served.load(std::sync::atomic::Ordering::Relaxed) >= 1
    });
    let r = browser(gw.listen, "/slow", None);
    assert_eq!(r.status, 503);
    assert!(r
        .header("set-cookie")
        .is_some_and(|c| c.starts_with("rampart_ticket=")));
    assert!(r.header("retry-after").is_some());
    let api = raw(gw.listen, b"GET /slow HTTP/1.1\r\nHost: www.example\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(
        api.status, 503,
        "API clients get 503, not the waiting room page"
    );
    assert!(!api.body_text().contains("<html"));
    assert_eq!(holder.join().unwrap().status, 200);
    // The slot is free again.
    eventually("the freed slot admits the next client", || {
        browser(gw.listen, "/", None).status == 200
    });
}

#[test]
fn broken_flood_section_is_reported_with_its_position() {
    let dir = temp_dir("flood-check");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[[upstream]]\nname = \"u\"\nservers = [\"127.0.0.1:2\"]\n[[site]]\nname = \"w\"\nhosts = [\"*\"]\nupstream = \"u\"\n[flood]\n[[flood.sites]]\nname = \"w\"\nclinet = { requests = 1, per_secs = 1, burst = 1 }\n",
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.toml:13:1: in [flood]: unknown field `clinet`"),
        "{stderr}"
    );
}
