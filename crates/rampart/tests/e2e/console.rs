//! End-to-end tests of the console: the admin API over real HTTP (who may
//! call it, and that each action changes what the read side reports), and
//! an operator driving the dashboard in Debian's Chromium through an
//! attack (`tests-browser/console.mjs`), which saves a screenshot of each
//! section to `docs/console/`.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use crate::flood::browser;
use crate::incidents::crs_v4;

/// The demo site behind a gateway with every layer on: the CRS, the flood
/// shield, the leak guard blocking the donor feed, and incidents grouped
/// after 3 quiet seconds.
fn console_gateway(name: &str, site: &rampart_demo::DemoSite) -> GatewayProcess {
    let tail = format!(
        r#"
[site.waf]
mode = "on"
crs = "{crs}"

[flood]
[[flood.sites]]
name = "www"

[leak_guard.default]
action = "alert"
[[leak_guard.sites]]
host = "*"
[[leak_guard.sites.routes]]
path_prefix = "/donations/feed"
action = "block"

[incidents.thresholds]
quiet = "3s"
"#,
        crs = crs_v4().display(),
    );
    GatewayProcess::start(name, &one_site_config(site.local_addr(), &tail))
}

/// One admin API call; `headers` are whole lines, each ending in `\r\n`.
fn api(gw: &GatewayProcess, method: &str, path: &str, headers: &str, body: &str) -> Reply {
    raw(
        gw.admin,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            gw.admin,
            body.len()
        )
        .as_bytes(),
    )
    .unwrap()
}

fn json_of(reply: &Reply) -> serde_json::Value {
    serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", reply.body_text()))
}

#[test]
fn the_admin_api_needs_the_token_and_each_action_changes_what_it_reads() {
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = console_gateway("console-api", &site);
    let token = gw.admin_token();
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let front = format!("http://{}/", gw.listen);
    let read = |path: &str| json_of(&api(&gw, "GET", path, &bearer, ""));

    // The dashboard's files and the API's description are open and strict.
    for path in ["/", "/console.js", "/console.css", "/api/v1/openapi.json"] {
        let r = api(&gw, "GET", path, "", "");
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-security-policy")
                .is_some_and(|c| c.contains("script-src 'self'")),
            "{path}: {:?}",
            r.headers
        );
    }
    let openapi = json_of(&api(&gw, "GET", "/api/v1/openapi.json", "", ""));
    for route in [
        "/api/v1/bans",
        "/api/v1/incidents",
        "/api/v1/exclusions/proposal",
        "/api/v1/live",
    ] {
        assert!(openapi["paths"][route].is_object(), "{route} is described");
    }

    // Without the token, every route is refused with 401 and changes nothing.
    for (method, path, body) in [
        ("GET", "/api/v1/overview", ""),
        ("GET", "/api/v1/traffic", ""),
        ("GET", "/api/v1/top", ""),
        ("GET", "/api/v1/waf/events", ""),
        ("GET", "/api/v1/leaks", ""),
        ("GET", "/api/v1/incidents", ""),
        ("GET", "/api/v1/incidents/1/report?format=markdown", ""),
        ("GET", "/api/v1/bans", ""),
        ("GET", "/api/v1/live", ""),
        ("GET", "/api/v1/exclusions", ""),
        (
            "POST",
            "/api/v1/bans",
            r#"{"address":"127.0.0.9","for":"10m"}"#,
        ),
        ("DELETE", "/api/v1/bans/127.0.0.9", ""),
        (
            "PUT",
            "/api/v1/sites/www/mode",
            r#"{"mode":"under-attack"}"#,
        ),
        ("POST", "/api/v1/reload", ""),
        (
            "POST",
            "/api/v1/exclusions",
            r#"{"site":"www","prefix":"/","rule_ids":[942100],"reason":"x"}"#,
        ),
        ("POST", "/api/v1/incidents/1/decisions", r#"{"text":"x"}"#),
    ] {
        let r = api(&gw, method, path, "", body);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.body_text());
        let r = api(&gw, method, path, "Authorization: Bearer 0000000000000000000000000000000000000000000000000000000000000000\r\n", body);
        assert_eq!(r.status, 401, "{method} {path} with a wrong token");
    }
    assert_eq!(status_from("127.0.0.9", &front), 200);

    // A page elsewhere cannot use the token or a session: 403.
    let r = api(
        &gw,
        "GET",
        "/api/v1/bans",
        &format!("{bearer}Origin: http://evil.example\r\n"),
        "",
    );
    assert_eq!(r.status, 403, "{}", r.body_text());

    // Signing in: a session cookie the page's script cannot read, and a
    // CSRF token every change from the console must carry.
    let wrong = api(&gw, "POST", "/api/v1/session", "", r#"{"token":"not it"}"#);
    assert_eq!(wrong.status, 401);
    let signed = api(
        &gw,
        "POST",
        "/api/v1/session",
        "",
        &format!(r#"{{"token":"{token}"}}"#),
    );
    assert_eq!(signed.status, 200, "{}", signed.body_text());
    let cookie = signed.header("set-cookie").unwrap().to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let csrf = json_of(&signed)["csrf"].as_str().unwrap().to_string();
    let with_cookie = format!("Cookie: {session}\r\n");
    assert_eq!(
        api(&gw, "GET", "/api/v1/overview", &with_cookie, "").status,
        200
    );
    let ban = r#"{"address":"127.0.0.9","for":"10m"}"#;
    assert_eq!(
        api(&gw, "POST", "/api/v1/bans", &with_cookie, ban).status,
        403,
        "no CSRF token"
    );
    let forged = format!("{with_cookie}X-CSRF-Token: {}\r\n", "0".repeat(64));
    assert_eq!(
        api(&gw, "POST", "/api/v1/bans", &forged, ban).status,
        403,
        "a wrong CSRF token"
    );
    assert_eq!(status_from("127.0.0.9", &front), 200, "nothing was banned");
    let with_csrf = format!("{with_cookie}X-CSRF-Token: {csrf}\r\n");
    assert_eq!(
        json_of(&api(&gw, "GET", "/api/v1/session", &with_cookie, ""))["csrf"],
        csrf.as_str()
    );

    // A ban made through the API is refused traffic, listed by the API and
    // by `rampart bans`, and lifted again.
    let r = api(&gw, "POST", "/api/v1/bans", &with_csrf, ban);
    assert_eq!(r.status, 201, "{}", r.body_text());
    assert_eq!(status_from("127.0.0.9", &front), 403);
    assert_eq!(status_from("127.0.0.1", &front), 200, "only that client");
    let bans = read("/api/v1/bans");
    assert!(
        bans["bans"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["address"] == "127.0.0.9"),
        "{bans}"
    );
    let out = gw
        .cli()
        .args(["bans", "--admin", &gw.admin.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.9"));
    assert_eq!(
        api(&gw, "DELETE", "/api/v1/bans/127.0.0.9", &bearer, "").status,
        200
    );
    assert_eq!(status_from("127.0.0.9", &front), 200);
    let r = api(
        &gw,
        "POST",
        "/api/v1/bans",
        &bearer,
        r#"{"address":"not an address"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body_text().contains("not an IPv4 or IPv6 address"),
        "{}",
        r.body_text()
    );

    // A site's mode, switched and read back; the site challenges browsers.
    let r = api(
        &gw,
        "PUT",
        "/api/v1/sites/www/mode",
        &bearer,
        r#"{"mode":"under-attack"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let sites = read("/api/v1/sites");
    assert_eq!(sites[0]["mode"], "under-attack", "{sites}");
    assert_eq!(sites[0]["under_attack"], true, "{sites}");
    assert_eq!(browser(gw.listen, "/", None).status, 403, "challenged");
    assert_eq!(
        api(
            &gw,
            "PUT",
            "/api/v1/sites/www/mode",
            &bearer,
            r#"{"mode":"auto"}"#
        )
        .status,
        200
    );
    assert_eq!(read("/api/v1/sites")[0]["mode"], "auto");
    assert_eq!(
        api(
            &gw,
            "PUT",
            "/api/v1/sites/nope/mode",
            &bearer,
            r#"{"mode":"auto"}"#
        )
        .status,
        404
    );
    assert_eq!(
        api(
            &gw,
            "PUT",
            "/api/v1/sites/www/mode",
            &bearer,
            r#"{"mode":"off"}"#
        )
        .status,
        400
    );

    // An injection is blocked and shows up as a WAF event with what
    // matched; the narrowest exclusion is proposed, added, and lets that
    // request pass while other injections are still blocked.
    let injection = "/search?q=1%27%20OR%20%271%27%3D%271";
    for _ in 0..3 {
        assert_eq!(get(gw.listen, injection).status, 403);
    }
    assert_eq!(
        get(
            gw.listen,
            "/search?q=1%20UNION%20SELECT%20password%20FROM%20users"
        )
        .status,
        403
    );
    let mut event = serde_json::Value::Null;
    eventually("the WAF event is listed", || {
        let list = read("/api/v1/waf/events?window=1h");
        event = list["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == "/search" && e["blocked"] == true)
            .cloned()
            .unwrap_or_default();
        !event.is_null()
    });
    assert_eq!(
        event["client"], "127.0.0.0/24",
        "a prefix, not the address: {event}"
    );
    let matches = event["matches"].as_array().unwrap();
    assert!(matches.iter().any(|m| m["target"] == "ARGS:q"), "{event}");
    let proposal = api(
        &gw,
        "POST",
        "/api/v1/exclusions/proposal",
        &bearer,
        &format!(r#"{{"event":{}}}"#, event["id"]),
    );
    assert_eq!(proposal.status, 200, "{}", proposal.body_text());
    let proposal = json_of(&proposal);
    let exclusion = &proposal["exclusion"];
    assert_eq!(exclusion["prefix"], "/search", "{proposal}");
    assert_eq!(exclusion["site"], "www", "{proposal}");
    // The narrowest: the SQL rule for `q` only, not the protocol rule that
    // the numeric Host of this test client also set off.
    assert_eq!(exclusion["target"], "ARGS:q", "{proposal}");
    assert!(
        !exclusion["rule_ids"].to_string().contains("920350"),
        "{proposal}"
    );
    let would = proposal["would_allow"].as_u64().unwrap();
    let blocked = proposal["blocked"].as_u64().unwrap();
    assert!(would >= 1 && would <= blocked, "{proposal}");
    let mut add = exclusion.clone();
    add["reason"] = "a search box false positive".into();
    let r = api(
        &gw,
        "POST",
        "/api/v1/exclusions",
        &with_csrf,
        &add.to_string(),
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    assert_eq!(json_of(&r)["reloaded"], true);
    assert_ne!(
        get(gw.listen, injection).status,
        403,
        "the allowed request passes"
    );
    assert_eq!(
        get(gw.listen, "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").status,
        403,
        "another attack on the same field"
    );
    assert_eq!(
        get(gw.listen, "/?q=1%27%20OR%20%271%27%3D%271").status,
        403,
        "the same attack elsewhere"
    );
    // Ways around a scoped exclusion: another endpoint that begins with the
    // same letters, a walk back out of it, another argument.
    for evasion in [
        "/search-admin?q=1%27%20OR%20%271%27%3D%271",
        "/search/..%2f..%2fadmin?q=1%27%20OR%20%271%27%3D%271",
        "/search?q=x&r=1%27%20OR%20%271%27%3D%271",
    ] {
        // From another client, so this test's own client stays under the
        // shield's ten WAF strikes that would ban it.
        let url = format!("http://{}{evasion}", gw.listen);
        assert_eq!(status_from("127.0.0.5", &url), 403, "{evasion}");
    }
    let file = std::fs::read_to_string(gw.dir.join("rampart-exclusions.toml")).unwrap();
    assert!(
        file.contains("a search box false positive") && file.contains("by = \"console\""),
        "{file}"
    );
    let listed = read("/api/v1/exclusions");
    assert_eq!(
        listed["exclusions"][0]["reason"], "a search box false positive",
        "{listed}"
    );
    assert!(gw.stderr().contains("exclusion added by console"));
    // The same from the command line.
    let out = gw
        .cli()
        .args([
            "allow",
            "941100",
            "--path",
            "/contact",
            "--arg",
            "message",
            "--reason",
            "prose about HTML",
            "--admin",
            &gw.admin.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listed = read("/api/v1/exclusions");
    assert_eq!(
        listed["exclusions"][1]["target"], "ARGS:message",
        "{listed}"
    );
    // A broken exclusion is refused with the reason, and nothing is written.
    let bad = r#"{"site":"www","prefix":"search","rule_ids":[942100],"reason":"x"}"#;
    let r = api(&gw, "POST", "/api/v1/exclusions", &bearer, bad);
    assert_eq!(r.status, 400);
    assert!(
        r.body_text().contains("must start with"),
        "{}",
        r.body_text()
    );

    // The donor feed is stopped by the leak guard; the findings are listed
    // by kind and count, never with values.
    assert_eq!(get(gw.listen, "/donations/feed").status, 503);
    let mut leaks = serde_json::Value::Null;
    eventually("the leak-guard finding is listed", || {
        leaks = read("/api/v1/leaks?window=1h");
        leaks["kinds"].as_array().is_some_and(|k| !k.is_empty())
    });
    assert!(leaks["kinds"][0]["count"].as_u64().unwrap() > 0, "{leaks}");
    assert!(
        !leaks.to_string().contains("sample") && !leaks.to_string().contains('@'),
        "{leaks}"
    );

    // The injection burst becomes an incident with a timeline, reports in
    // every format, and a decision log the API adds to.
    let mut incident = serde_json::Value::Null;
    eventually_within("an injection incident", Duration::from_secs(40), || {
        let list = read("/api/v1/incidents");
        incident = list
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["kinds"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "injection"))
            })
            .cloned()
            .unwrap_or_default();
        !incident.is_null()
    });
    let id = incident["id"].as_i64().unwrap();
    let detail = read(&format!("/api/v1/incidents/{id}"));
    assert!(
        detail["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "{detail}"
    );
    for format in ["markdown", "html", "json", "stix", "misp"] {
        let r = api(
            &gw,
            "GET",
            &format!("/api/v1/incidents/{id}/report?format={format}"),
            &bearer,
            "",
        );
        assert_eq!(r.status, 200, "{format}");
        assert!(
            r.header("content-disposition")
                .is_some_and(|d| d.contains("attachment")),
            "{format}"
        );
        assert!(
            r.body_text().contains(&format!("INC-{id}")) || format == "stix" || format == "misp",
            "{format}"
        );
    }
    assert_eq!(
        api(
            &gw,
            "GET",
            &format!("/api/v1/incidents/{id}/report?format=pdf"),
            &bearer,
            ""
        )
        .status,
        400
    );
    let r = api(
        &gw,
        "POST",
        &format!("/api/v1/incidents/{id}/decisions"),
        &with_csrf,
        r#"{"text":"Blocked at the WAF; no report needed","by":"Sam"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.body_text());
    let detail = read(&format!("/api/v1/incidents/{id}"));
    assert!(
        detail["decisions"].to_string().contains("no report needed"),
        "{detail}"
    );

    // Traffic per second, the top lists and the overview.
    // The clock samples each second, so the last requests show a second later.
    let sum = |traffic: &serde_json::Value, field: &str| -> u64 {
        traffic["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[field].as_u64().unwrap())
            .sum()
    };
    eventually("the traffic counts every request", || {
        let traffic = read("/api/v1/traffic?window=5m");
        sum(&traffic, "requests") >= 10 && sum(&traffic, "blocked") >= 4
    });
    let top = read("/api/v1/top?window=1h");
    assert_eq!(top["clients"][0]["key"], "127.0.0.0/24", "{top}");
    assert!(
        top["rules"].as_array().is_some_and(|r| !r.is_empty()),
        "{top}"
    );
    assert_eq!(
        api(&gw, "GET", "/api/v1/top?window=forever", &bearer, "").status,
        400
    );
    let overview = read("/api/v1/overview");
    assert_eq!(overview["upstreams"][0]["healthy"], true, "{overview}");
    let generation = overview["generation"].as_u64().unwrap();
    let r = json_of(&api(&gw, "POST", "/api/v1/reload", &bearer, ""));
    assert_eq!(r["generation"].as_u64().unwrap(), generation + 1, "{r}");

    // The live stream sends a tick each second.
    let mut stream = std::net::TcpStream::connect(gw.admin).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(
            format!(
                "GET /api/v1/live HTTP/1.1\r\nHost: {}\r\n{bearer}\r\n",
                gw.admin
            )
            .as_bytes(),
        )
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_millis(3500) {
        let mut buf = [0u8; 4096];
        if let Ok(n) = stream.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
        }
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.matches("event: tick").count() >= 2, "{seen}");
    assert!(seen.contains("\"generation\""), "{seen}");

    // Too many wrong tokens from one address: 429, whatever the token, for
    // that address only.
    let admin_url = format!("http://{}/api/v1/session", gw.admin);
    let sign_in = |source: &str, token: &str| {
        let (_, out, _) = curl(&[
            "--interface",
            source,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Type: application/json",
            "-d",
            &format!(r#"{{"token":"{token}"}}"#),
            &admin_url,
        ]);
        out.trim().to_string()
    };
    for _ in 0..5 {
        assert_eq!(sign_in("127.0.0.3", "guess"), "401");
    }
    assert_eq!(sign_in("127.0.0.3", &token), "429");
    assert_eq!(sign_in("127.0.0.1", &token), "200");

    // Rotating the token: the old one and its sessions stop working at once.
    let out = gw.cli().args(["admin-token", "--rotate"]).output().unwrap();
    assert!(out.status.success());
    let new_token = gw.admin_token();
    assert_ne!(new_token, token);
    assert_eq!(api(&gw, "GET", "/api/v1/bans", &bearer, "").status, 401);
    assert_eq!(
        api(&gw, "GET", "/api/v1/bans", &with_cookie, "").status,
        401
    );
    let new_bearer = format!("Authorization: Bearer {new_token}\r\n");
    assert_eq!(api(&gw, "GET", "/api/v1/bans", &new_bearer, "").status, 200);
}

#[test]
fn the_console_refuses_a_network_address_without_tls() {
    let up = NamedUpstream::start("app");
    let config =
        one_site_config(up.addr, "").replace("{admin}", &format!("0.0.0.0:{}", free_port()));
    let dir = temp_dir("console-no-tls");
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        config.replace("{listen}", &format!("127.0.0.1:{}", free_port())),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&path)
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("admin_tls_cert") && err.contains("not on a loopback address"),
        "{err}"
    );
}

#[test]
fn an_operator_runs_an_attack_from_the_console_in_chromium() {
    let scripts = browser_scripts();
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = console_gateway("console-browser", &site);
    let shots = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
    std::fs::create_dir_all(&shots).unwrap();
    let run = Command::new("node")
        .arg(scripts.join("console.mjs"))
        .args(["--console", &format!("http://{}/", gw.admin)])
        .args(["--gateway", &format!("http://{}", gw.listen)])
        .arg("--token-file")
        .arg(gw.admin_token_file())
        .arg("--shots")
        .arg(&shots)
        .args(["--ban", "127.0.0.7"])
        .output()
        .expect("node must be installed");
    let report =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{report}");
    for step in [
        "ok chart moved",
        "ok top lists",
        "ok incident",
        "ok allowed",
        "ok banned 127.0.0.7",
        "ok mode",
        "ok accessibility",
        "ok phone",
    ] {
        assert!(report.contains(step), "{step} missing: {report}");
    }
    // The ban made in the console is enforced and listed by the command.
    let front = format!("http://{}/", gw.listen);
    assert_eq!(status_from("127.0.0.7", &front), 403);
    let out = gw
        .cli()
        .args(["bans", "--admin", &gw.admin.to_string()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.7"));
    for shot in [
        "sign-in",
        "traffic",
        "waf-events",
        "incidents",
        "leak-guard",
        "bans",
        "phone",
    ] {
        let path = shots.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 1000),
            "{}",
            path.display()
        );
    }
}
