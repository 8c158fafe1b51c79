//! A real browser against the flood shield: Debian's headless Chromium,
//! driven by Playwright (`tests-browser/challenge.mjs` and `visit.mjs`),
//! through a real gateway in front of the real demo site: in under-attack
//! mode switched by hand, and in a real flood (`rampart drill`) against a
//! gateway that has to notice it by itself, from a cold start and across a
//! restart. `scripts/setup` installs Chromium and the scripts' npm packages.
//!
//! What is checked is behaviour (the visitor gets through, the mode switches
//! by itself, the flood is challenged, what was learned survives a restart),
//! never speed: the benchmarks measure that.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn chromium_passes_the_challenge_with_and_without_javascript() {
    let scripts = browser_scripts();
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = one_site_config(
        site.local_addr(),
        "\n[flood]\n[flood.challenge]\nnojs_wait = \"2s\"\n[[flood.sites]]\nname = \"www\"\n",
    );
    let gw = GatewayProcess::start("browser", &config);
    let out = gw
        .cli()
        .args([
            "mode",
            "www",
            "under-attack",
            "--admin",
            &gw.admin.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let url = format!("http://{}/", gw.listen);
    let run = Command::new("node")
        .arg(scripts.join("challenge.mjs"))
        .arg(&url)
        .arg("Fairshare")
        .output()
        .expect("node must be installed");
    let report =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{report}");
    for check in ["ok js", "ok nojs-no-shortcut", "ok nojs"] {
        assert!(report.contains(check), "{check} missing: {report}");
    }
    // Both ways in went through the shield's own endpoints.
    let log = gw.access_log();
    assert!(log.contains("\"verdict\":\"flood:cleared\""), "{log}");
    assert!(log.contains("\"verdict\":\"flood:cleared-nojs\""), "{log}");
}

/// The origin serves this many requests a second (503 beyond).
const ORIGIN_CAPACITY: u32 = 20;

/// The flood shield with one site and every default: nothing switched by
/// hand, no capacity given (it is learned).
const DEFAULT_FLOOD: &str = "\n[flood]\n[[flood.sites]]\nname = \"www\"\n";

/// Where Chromium connects from; the drill never uses 127.0.0.0/24.
const BROWSER_CLIENT: &str = "127.0.0.1";

/// A flood of twenty times the origin's capacity from 2,000 loopback
/// addresses, no browsers of the drill's own; it runs until dropped.
fn flood(gw: &GatewayProcess) -> DrillProcess {
    DrillProcess::start(
        &gw.dir,
        &format!("http://{}", gw.listen),
        &[
            "--duration",
            "10m",
            "--attack-rate",
            &(ORIGIN_CAPACITY * 20).to_string(),
            "--attackers",
            "2000",
            "--browsers",
            "0",
            "--json",
        ],
    )
}

/// The home page and the donation page through Chromium, each given
/// `seconds` to show its text; `extra` goes to `visit.mjs`.
fn visit_home_and_donate(gw: &GatewayProcess, seconds: u32, extra: &[&str]) -> (bool, String) {
    let url = format!("http://{}/", gw.listen);
    let seconds = seconds.to_string();
    let mut args = vec![
        url.as_str(),
        "Vote for a fairer future",
        "/donate",
        "Donate to the Fairshare Party",
        "--seconds",
        &seconds,
    ];
    args.extend_from_slice(extra);
    chromium_visit(&args)
}

fn is_attacker(record: &serde_json::Value) -> bool {
    record["client"]
        .as_str()
        .is_some_and(|c| c.starts_with("127.") && !c.starts_with("127.0.0."))
}

fn is_browser(record: &serde_json::Value) -> bool {
    record["client"] == BROWSER_CLIENT
}

/// The browser's requests for `path` that the origin answered with 200.
fn browser_served(records: &[serde_json::Value], path: &str) -> bool {
    records.iter().any(|r| {
        is_browser(r) && r["path"] == path && r["status"] == 200 && r["upstream"].is_string()
    })
}

/// The demo site capped at [`ORIGIN_CAPACITY`], behind a gateway with the
/// flood shield's defaults.
fn capped_origin_behind_a_gateway(name: &str) -> (rampart_demo::DemoSite, GatewayProcess) {
    let origin = rampart_demo::DemoSite::start_with(
        "127.0.0.1:0".parse().unwrap(),
        rampart_demo::Options::with_capacity(ORIGIN_CAPACITY),
    )
    .unwrap();
    let gw = GatewayProcess::start(name, &one_site_config(origin.local_addr(), DEFAULT_FLOOD));
    (origin, gw)
}

#[test]
fn a_browser_gets_through_a_flood_that_starts_as_the_gateway_starts() {
    let _one_flood = one_flood_at_a_time();
    browser_scripts();
    let (_origin, gw) = capped_origin_behind_a_gateway("browser-cold-flood");
    // The flood starts with the gateway, before anything was learned, and
    // the visitor arrives in its first seconds (Chromium takes a moment to
    // start).
    let mut drill = flood(&gw);
    let (ok, report) = visit_home_and_donate(&gw, 45, &[]);
    let stderr = gw.stderr();
    assert!(
        ok,
        "the visitor did not get through the flood:\n{report}\n{stderr}"
    );
    for check in ["ok / ", "ok /donate "] {
        assert!(report.contains(check), "{check} missing: {report}");
    }
    assert!(drill.running(), "the drill stopped during the visit");

    // Nobody switched the mode: the gateway did, from the upstream's
    // distress, with no baseline learned.
    eventually_within(
        "the gateway switches into under-attack mode by itself",
        Duration::from_secs(30),
        || switched_under_attack(&gw.stderr(), "distress"),
    );
    // The flood was held back by the challenge rather than passed on: the
    // drill's attackers never solve it.
    eventually_within(
        "the flood's requests are challenged",
        Duration::from_secs(30),
        || {
            let records = access_records(&gw.access_log());
            let attack = || records.iter().filter(|r| is_attacker(r));
            let challenged = attack()
                .filter(|r| r["verdict"] == "flood:challenge")
                .count();
            let passed = attack().filter(|r| r["upstream"].is_string()).count();
            challenged > 0 && challenged > passed
        },
    );
    // The visitor's pages came from the origin itself.
    let records = access_records(&gw.access_log());
    assert!(browser_served(&records, "/"), "{report}");
    assert!(browser_served(&records, "/donate"), "{report}");
}

#[test]
fn a_restart_in_the_middle_of_a_flood_keeps_what_was_learned() {
    let _one_flood = one_flood_at_a_time();
    browser_scripts();
    let (_origin, mut gw) = capped_origin_behind_a_gateway("browser-restart-flood");
    let mut drill = flood(&gw);
    eventually_within(
        "the gateway switches into under-attack mode by itself",
        Duration::from_secs(60),
        || switched_under_attack(&gw.stderr(), "distress"),
    );

    // A visitor clears the challenge and keeps its cookies.
    let cookies = gw.dir.join("browser-state.json");
    let cookies = cookies.to_str().unwrap();
    let (ok, report) = visit_home_and_donate(&gw, 45, &["--save-state", cookies]);
    assert!(ok, "the visitor did not get through the flood:\n{report}");
    assert!(
        report.contains("cookie rampart_clearance"),
        "no clearance: {report}"
    );

    // The gateway is stopped while the flood goes on; it saved what it
    // learned beside its key file.
    let exit = gw.terminate();
    assert!(drill.running(), "the drill stopped with the gateway");
    let learned_path = gw.dir.join("learned.json");
    let learned: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&learned_path)
            .unwrap_or_else(|e| panic!("{}: {e} (exit {exit})", learned_path.display())),
    )
    .unwrap();
    let site = &learned["www"];
    assert_eq!(site["under_attack"], true, "{learned:#}");
    assert!(
        site["capacity_per_sec"].as_f64().is_some_and(|c| c > 0.0),
        "no capacity learned: {learned:#}"
    );

    // Started again on the same files, it takes the attack up at once.
    let before_restart = gw.access_log().len();
    gw.restart();
    eventually_within(
        "the restarted gateway takes up under-attack mode again",
        Duration::from_secs(30),
        || switched_under_attack(&gw.stderr(), "restored"),
    );
    // The flood's first requests after the restart are challenged, none
    // passed to the origin to learn again what was known.
    let first = 50;
    eventually_within(
        "the flood reaches the restarted gateway",
        Duration::from_secs(30),
        || {
            access_records(&gw.access_log()[before_restart..])
                .iter()
                .filter(|r| is_attacker(r))
                .count()
                >= first
        },
    );
    let after = access_records(&gw.access_log()[before_restart..]);
    let attack: Vec<_> = after
        .iter()
        .filter(|r| is_attacker(r))
        .take(first)
        .collect();
    for record in &attack {
        assert_eq!(record["verdict"], "flood:challenge", "{record}");
        assert!(record["upstream"].is_null(), "{record}");
    }

    // The visitor comes back with its cookies: its clearance is still
    // good, so it is not asked to solve the challenge again.
    let (ok, report) = visit_home_and_donate(&gw, 45, &["--load-state", cookies, "--no-challenge"]);
    assert!(ok, "the returning visitor did not get through:\n{report}");
    assert!(report.contains("challenges 0"), "{report}");
    let after = access_records(&gw.access_log()[before_restart..]);
    let challenged: Vec<_> = after
        .iter()
        .filter(|r| is_browser(r) && r["verdict"] == "flood:challenge")
        .collect();
    assert!(challenged.is_empty(), "{challenged:?}");
    assert!(browser_served(&after, "/"), "{report}");
    assert!(browser_served(&after, "/donate"), "{report}");
    assert!(drill.running(), "the drill stopped during the test");
}
