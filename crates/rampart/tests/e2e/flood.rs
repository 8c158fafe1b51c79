//! End-to-end tests of the flood shield in the gateway: real `rampart`
//! processes in front of real upstreams.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use sha2::{Digest, Sha256};

fn flood_config(upstream: SocketAddr, flood: &str) -> String {
    one_site_config(upstream, &format!("\n[[site.route]]\nprefix = \"/api/\"\napi = true\n\n[[site.route]]\nprefix = \"/slow\"\n\n{flood}"))
}

const BROWSER: &str = "Accept: text/html,application/xhtml+xml\r\nUser-Agent: Mozilla/5.0 test\r\n";

pub(crate) fn browser(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Reply {
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
        &flood_config(up.addr, "[flood]\n[[flood.sites]]\nname = \"www\"\nclient = { requests = 5, per = \"1m\", burst = 5 }\n"),
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
        &flood_config(up.addr, "[flood]\n[flood.challenge]\nmin_difficulty = 8\nmax_difficulty = 10\nnojs_wait = \"1s\"\n[[flood.sites]]\nname = \"www\"\n"),
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

    // API routes are challenged too, in a form an API client can act on
    // (429, Retry-After, the proof of work in JSON); with clearance they pass.
    let api = raw(gw.listen, b"GET /api/items HTTP/1.1\r\nHost: www.example\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(api.status, 429, "{}", api.body_text());
    assert!(api.header("retry-after").is_some());
    assert!(
        api.body_text().contains("\"challenge_required\"")
            && api.body_text().contains("\"difficulty\""),
        "{}",
        api.body_text()
    );
    let cleared = format!("GET /api/items HTTP/1.1\r\nHost: www.example\r\nAccept: application/json\r\nCookie: {}\r\nConnection: close\r\n\r\n", set_cookie_value(&later));
    assert_eq!(raw(gw.listen, cleared.as_bytes()).unwrap().status, 200);

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

    let allowed = GatewayProcess::start("flood-allow", &flood_config(up.addr, "[flood]\nallow = [\"127.0.0.0/8\"]\n[[flood.sites]]\nname = \"www\"\nclient = { requests = 1, per = \"1m\", burst = 1 }\n"));
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

/// One request to the admin listener, as a program sends it (`Host` is the
/// listener's address), with `extra` header lines.
/// One call to the admin API: `call` is `METHOD /path`, optionally
/// followed by a space and a JSON body.
fn admin_request(gw: &GatewayProcess, call: &str, extra: &str) -> Reply {
    let mut parts = call.splitn(3, ' ');
    let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
    let body = parts.next().unwrap_or("");
    raw(
        gw.admin,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            gw.admin,
            body.len()
        )
        .as_bytes(),
    )
    .unwrap()
}

#[test]
fn admin_calls_need_the_token_and_web_pages_cannot_make_them() {
    use std::os::unix::fs::PermissionsExt;
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-admin-token",
        &flood_config(up.addr, "[flood]\n[flood.challenge]\nmin_difficulty = 8\nmax_difficulty = 8\n[[flood.sites]]\nname = \"www\"\n"),
    );
    // The token was made at this first start: 64 hex digits in a file only
    // the gateway's user can read, named (with the new token) on stderr.
    let token = gw.admin_token();
    assert_eq!(token.len(), 64, "{token}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let mode = std::fs::metadata(gw.admin_token_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let file = gw.admin_token_file().display().to_string();
    eventually("the gateway names its token file", || {
        gw.stderr()
            .lines()
            .any(|l| l.contains("admin token") && l.contains(&file) && l.contains(&token))
    });
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let site_open = || browser(gw.listen, "/", None).status == 200;
    assert!(site_open());

    // Without the token: 401 with a JSON reason, and nothing changes.
    for call in [
        "PUT /api/v1/sites/www/mode {\"mode\":\"under-attack\"}",
        "POST /api/v1/bans {\"address\":\"127.0.0.1\",\"for\":\"60s\"}",
        "DELETE /api/v1/bans/127.0.0.1",
        "POST /api/v1/reload",
        "GET /api/v1/bans",
        "GET /api/v1/incidents",
        "GET /api/v1/live",
    ] {
        let r = admin_request(&gw, call, "");
        assert_eq!(r.status, 401, "{call}: {}", r.body_text());
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "{:?}",
            r.headers
        );
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(site_open(), "neither the mode nor a ban changed");

    // A wrong token, or the right one under another scheme: 401.
    for auth in [
        format!("Bearer {}", "0".repeat(64)),
        format!("Bearer {}", &token[..63]),
        format!("Bearer {token}0"),
        format!("Basic {token}"),
        token.clone(),
    ] {
        let r = admin_request(
            &gw,
            "POST /api/v1/bans {\"address\":\"127.0.0.1\",\"for\":\"60s\"}",
            &format!("Authorization: {auth}\r\n"),
        );
        assert_eq!(r.status, 401, "{auth}");
    }
    assert!(site_open());

    // A page elsewhere cannot use the API even with the token: a foreign
    // Origin (CSRF) or a name as Host (DNS rebinding) gets 403.
    let r = admin_request(
        &gw,
        "POST /api/v1/bans {\"address\":\"127.0.0.1\",\"for\":\"60s\"}",
        &format!("{bearer}Origin: http://evil.example\r\n"),
    );
    assert_eq!(r.status, 403, "{}", r.body_text());
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(body["error"].is_string(), "{body}");
    let port = gw.admin.port();
    for request in [
        format!("POST /api/v1/reload HTTP/1.1\r\nHost: evil.example:{port}\r\n{bearer}Content-Length: 0\r\nConnection: close\r\n\r\n"),
        format!("GET /metrics HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"),
        format!("GET /metrics HTTP/1.1\r\nHost: localhost:{port}\r\nSec-Fetch-Site: cross-site\r\nConnection: close\r\n\r\n"),
    ] {
        assert_eq!(raw(gw.admin, request.as_bytes()).unwrap().status, 403, "{request}");
    }
    assert!(site_open(), "the refused ban did not happen");

    // Scrapers need no token.
    assert_eq!(get(gw.admin, "/metrics").status, 200);
    assert_eq!(get(gw.admin, "/healthz").status, 200);

    // The right token works, also with the listener's own Origin.
    let r = admin_request(
        &gw,
        "PUT /api/v1/sites/www/mode {\"mode\":\"under-attack\"}",
        &bearer,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body_text().contains("\"under_attack\":true"));
    assert_eq!(browser(gw.listen, "/", None).status, 403, "now challenged");
    let own = format!("{bearer}Origin: http://{}\r\n", gw.admin);
    let r = admin_request(
        &gw,
        "PUT /api/v1/sites/www/mode {\"mode\":\"normal\"}",
        &own,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(site_open());
    let r = admin_request(
        &gw,
        "POST /api/v1/bans {\"address\":\"127.0.0.1\",\"for\":\"60s\"}",
        &bearer,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    assert!(admin_request(&gw, "GET /api/v1/bans", &bearer)
        .body_text()
        .contains("127.0.0.1"));
    assert_eq!(
        admin_request(&gw, "DELETE /api/v1/bans/127.0.0.1", &bearer).status,
        200
    );
    assert!(site_open());
    let r = admin_request(&gw, "POST /api/v1/reload", &bearer);
    assert_eq!(r.status, 200, "{}", r.body_text());

    // The commands find the token in the state directory, or take it from
    // --token-file or RAMPART_ADMIN_TOKEN, and say what to do without it.
    let (ok, out) = admin(&gw, &["bans"]);
    assert!(ok, "{out}");
    let elsewhere = temp_dir("flood-admin-elsewhere");
    let bans = |configure: &dyn Fn(&mut Command)| {
        let mut command = Command::new(binary());
        command
            .env("XDG_STATE_HOME", &elsewhere)
            .env_remove("RAMPART_ADMIN_TOKEN")
            .args(["bans", "--admin", &gw.admin.to_string()]);
        configure(&mut command);
        let out = command.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = bans(&|_| {});
    assert!(!ok);
    let missing = elsewhere.join("rampart/admin-token").display().to_string();
    assert!(
        out.contains(&missing)
            && out.contains("--token-file")
            && out.contains("RAMPART_ADMIN_TOKEN"),
        "{out}"
    );
    let (ok, out) = bans(&|c| {
        c.arg("--token-file").arg(gw.admin_token_file());
    });
    assert!(ok, "{out}");
    let (ok, out) = bans(&|c| {
        c.env("RAMPART_ADMIN_TOKEN", &token);
    });
    assert!(ok, "{out}");
    let (ok, out) = bans(&|c| {
        c.env("RAMPART_ADMIN_TOKEN", "f".repeat(64));
    });
    assert!(!ok);
    assert!(
        out.contains("refused the admin token from RAMPART_ADMIN_TOKEN"),
        "{out}"
    );
}

/// Solves the challenge page `page` came with and returns the clearance
/// cookie (`name=value`).
fn clear(gw: &GatewayProcess, page: &Reply) -> String {
    let page = page.body_text();
    let token = html_unescape(attribute(&page, "data-token"));
    let bits: u32 = attribute(&page, "data-bits").parse().unwrap();
    let verify = html_unescape(attribute(&page, "data-verify"));
    let body = format!("token={}&solution={}", enc(&token), solve(&token, bits));
    let r = raw(gw.listen, format!("POST {verify} HTTP/1.1\r\nHost: www.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    assert_eq!(r.status, 204, "{}", r.body_text());
    set_cookie_value(&r)
}

#[test]
fn at_capacity_new_visitors_are_challenged_and_cleared_browsers_wait() {
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-queue",
        &flood_config(up.addr, "[flood]\n[flood.challenge]\nmin_difficulty = 8\nmax_difficulty = 8\n[[flood.sites]]\nname = \"www\"\n[[flood.sites.routes]]\nname = \"/slow\"\nmax_in_flight = 1\nrefresh = \"2s\"\n"),
    );
    let listen = gw.listen;
    let holder = std::thread::spawn(move || browser(listen, "/slow", None));
    // The holder is inside once the upstream has it (it then answers after 2 s).
    eventually("the first request holds the route's only slot", || {
        up.served.load(std::sync::atomic::Ordering::Relaxed) >= 1
    });
    // A new visitor at capacity gets the challenge, not a place in the queue.
    let challenged = browser(gw.listen, "/slow", None);
    assert_eq!(challenged.status, 403);
    assert!(challenged.body_text().contains("data-token"));
    let api = raw(gw.listen, b"GET /slow HTTP/1.1\r\nHost: www.example\r\nAccept: application/json\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(
        api.status, 429,
        "an API client without clearance is challenged in JSON"
    );
    assert!(api.header("rampart-challenge").is_some());
    // Once cleared, the browser waits in the queue.
    let cookie = clear(&gw, &challenged);
    let r = browser(gw.listen, "/slow", Some(&cookie));
    assert_eq!(r.status, 503);
    assert!(r
        .header("set-cookie")
        .is_some_and(|c| c.starts_with("rampart_ticket=")));
    assert!(r.header("retry-after").is_some());
    let api = raw(gw.listen, format!("GET /slow HTTP/1.1\r\nHost: www.example\r\nAccept: application/json\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    assert_eq!(
        api.status, 503,
        "cleared API clients get 503, not the waiting room page"
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
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[[upstream]]\nname = \"u\"\nservers = [\"127.0.0.1:2\"]\n[[site]]\nname = \"w\"\nhosts = [\"*\"]\nupstream = \"u\"\n[flood]\n[[flood.sites]]\nname = \"w\"\nclinet = { requests = 1, per = \"1s\", burst = 1 }\n",
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

/// Slow uploads must not fill the upstream's capacity: a request whose body
/// is still arriving holds no place, so five dripping POSTs against a site
/// whose capacity is two leave the next visitor unchallenged.
#[test]
fn uploads_still_arriving_hold_no_place_in_the_capacity() {
    use std::io::Write;
    let up = NamedUpstream::start("app");
    let gw = GatewayProcess::start(
        "flood-uploads",
        &flood_config(
            up.addr,
            "[flood]\n[[flood.sites]]\nname = \"www\"\nmax_in_flight = 2\n",
        ),
    );
    assert_eq!(browser(gw.listen, "/", None).status, 200);
    let uploads: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(gw.listen).unwrap();
            s.write_all(b"POST /donate HTTP/1.1\r\nHost: www.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\namount=")
                .unwrap();
            s
        })
        .collect();
    // Give the gateway time to read the five heads and admit them (a set-up
    // wait, not a timing assertion: the check below is on the answer).
    std::thread::sleep(Duration::from_millis(500));
    let r = browser(gw.listen, "/", None);
    assert_eq!(
        r.status,
        200,
        "five unfinished uploads filled a capacity of two: {}",
        r.body_text()
    );
    drop(uploads);
}
