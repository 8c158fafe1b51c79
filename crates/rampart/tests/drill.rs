//! End-to-end: `rampart drill` against a real gateway in front of the real
//! (capped) demo site. A short drill with small rates; what is checked is
//! behaviour (a summary, browsers getting through the challenge, the attack
//! challenged, many distinct addresses, a drill that ends by itself), never
//! speed.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_short_drill_reports_browsers_through_the_challenge_and_stops_by_itself() {
    let origin = rampart_demo::DemoSite::start_with(
        "127.0.0.1:0".parse().unwrap(),
        rampart_demo::Options::with_capacity(1000),
    )
    .unwrap();
    let flood = "[flood]\n[flood.challenge]\nmin_difficulty = 8\nmax_difficulty = 8\n[[flood.sites]]\nname = \"www\"\n[[flood.sites.routes]]\nname = \"/donate\"\nalways_challenge = true\n";
    let gw = GatewayProcess::start(
        "drill",
        &one_site_config(
            origin.local_addr(),
            &format!("\n[[site.route]]\nprefix = \"/donate\"\n\n{flood}"),
        ),
    );

    let mut drill = Command::new(binary())
        .args([
            "drill",
            "--json",
            "--duration",
            "5s",
            "--attack-rate",
            "100",
            "--attackers",
            "300",
            "--attack-paths",
            "/donate,/",
            "--browsers",
            "4",
            "--browser-interval",
            "200ms",
            "--browser-paths",
            "/,/donate",
        ])
        .args(["--target", &format!("http://{}", gw.listen)])
        .args(["--watch-pid", &gw.child.id().to_string()])
        .args([
            "--upstream-stats",
            &format!("http://{}{}", origin.local_addr(), rampart_demo::STATS_PATH),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The drill must end on its own; this bound is only against hanging the suite.
    let started = Instant::now();
    while drill.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = drill.kill();
            panic!("the drill did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = drill.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(summary["stopped_by_itself"], true);
    assert!(
        summary["elapsed_secs"].as_f64().unwrap() >= 5.0,
        "{summary}"
    );
    let legit = &summary["legit"];
    assert!(legit["page_views"].as_u64().unwrap() > 0, "{summary}");
    assert!(legit["succeeded"].as_u64().unwrap() > 0, "{summary}");
    assert!(legit["success_rate"].as_f64().unwrap() >= 90.0, "{summary}");
    assert!(
        legit["challenges"].as_u64().unwrap() >= 1,
        "browsers opening /donate solved its challenge: {summary}"
    );
    assert!(
        legit["latency_ms"]["count"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let attack = &summary["attack"];
    assert!(attack["sent"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        attack["addresses_connected"].as_u64().unwrap() >= 100,
        "{summary}"
    );
    assert!(
        attack["challenged"].as_u64().unwrap() > 0,
        "attackers on /donate get the challenge: {summary}"
    );
    assert!(
        summary["upstream"]["arrived_per_sec"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    assert!(
        summary["memory"]["peak_rss_mb"].as_f64().unwrap() > 0.0,
        "{summary}"
    );

    // The gateway saw the attack from many distinct addresses, none of them 127.0.0.1.
    let log = gw.access_log();
    let clients: HashSet<String> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["client"].as_str().map(str::to_string))
        .collect();
    assert!(
        clients.len() >= 100,
        "only {} distinct clients in the access log",
        clients.len()
    );
    assert!(!clients.contains("127.0.0.1"));
}

#[test]
fn a_drill_refuses_a_target_that_is_not_on_loopback() {
    let out = Command::new(binary())
        .args([
            "drill",
            "--target",
            "http://192.0.2.1:80",
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
