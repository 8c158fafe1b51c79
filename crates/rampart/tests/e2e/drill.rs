//! End-to-end: `rampart drill` against a real gateway in front of the real
//! (capped) demo site. A short drill with small rates; what is checked is
//! behaviour (a summary, browsers getting through the challenge, the attack
//! challenged, many distinct addresses, a drill that ends by itself; a
//! gateway the drill starts, restarts and always stops), never speed.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn a_short_drill_reports_browsers_through_the_challenge_and_stops_by_itself() {
    let _one_flood = one_flood_at_a_time();
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

/// The zero-config gateway (`rampart serve --upstream --listen`), as the
/// drill starts it after `--`: no Core Rule Set (it only slows the start),
/// its admin listener on a free port, no access log.
fn zero_config_gateway(origin: SocketAddr, listen: SocketAddr) -> Vec<String> {
    vec![
        binary().to_string(),
        "serve".into(),
        "--upstream".into(),
        format!("http://{origin}"),
        "--listen".into(),
        listen.to_string(),
        "--admin".into(),
        format!("127.0.0.1:{}", free_port()),
        "--waf".into(),
        "off".into(),
        "--access-log".into(),
        "off".into(),
        "--threads".into(),
        "1".into(),
    ]
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Waits for `child` to exit by itself; the bound only keeps a hang from
/// stalling the suite.
fn wait_for(child: &mut Child, what: &str) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("{what} did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cold_drill_starts_its_gateway_restarts_it_mid_flood_and_leaves_nothing_behind() {
    let _one_flood = one_flood_at_a_time();
    let origin = rampart_demo::DemoSite::start_with(
        "127.0.0.1:0".parse().unwrap(),
        rampart_demo::Options::with_capacity(1000),
    )
    .unwrap();
    let dir = temp_dir("drill-cold");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gateway_log = dir.join("gateway.log");
    let mut drill = Command::new(binary())
        .args([
            "drill",
            "--json",
            "--duration",
            "6s",
            "--flood-after",
            "1s",
            "--restart-after",
            "4s",
            "--attack-rate",
            "50",
            "--attackers",
            "100",
            "--browsers",
            "3",
            "--browser-interval",
            "200ms",
            "--visit-steps",
            "2",
        ])
        .args(["--target", &format!("http://{listen}")])
        .args([
            "--upstream-stats",
            &format!("http://{}{}", origin.local_addr(), rampart_demo::STATS_PATH),
        ])
        .arg("--gateway-log")
        .arg(&gateway_log)
        .arg("--")
        .args(zero_config_gateway(origin.local_addr(), listen))
        .env("XDG_STATE_HOME", dir.join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut drill, "the drill");
    let out = drill.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    // The drill started the gateway, restarted it once, mid-flood, and stopped it.
    let gateway = &summary["gateway"];
    assert_eq!(gateway["restarted"], 1, "{summary}");
    let restart = &gateway["restarts"][0];
    assert!(
        restart["at_secs"].as_f64().unwrap() <= restart["accepting_again_secs"].as_f64().unwrap(),
        "{summary}"
    );
    assert_eq!(summary["flood_after_secs"], 1.0, "{summary}");
    let log = std::fs::read_to_string(&gateway_log).unwrap();
    assert_eq!(
        log.matches("rampart_gateway::server: serving ").count(),
        2,
        "one start and one restart, both logged: {log}"
    );
    // Its state directory outlived the restart.
    assert!(dir.join("state/rampart/admin-token").exists());
    assert!(
        !accepts(listen),
        "the gateway the drill started is gone once the drill has exited"
    );

    // Browsers made steps, new visitors kept arriving, and the flood was sent.
    let legit = &summary["legit"];
    assert!(legit["page_views"].as_u64().unwrap() > 0, "{summary}");
    assert!(legit["succeeded"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        legit["visitors"].as_u64().unwrap() > 3,
        "visitors leave after two steps and new ones arrive: {summary}"
    );
    assert!(
        legit["after_first_challenge_ms"].is_object()
            && legit["during_restart"]["page_views"].is_u64(),
        "{summary}"
    );
    assert!(summary["attack"]["sent"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["upstream"]["window_secs"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(
        summary["upstream"]["seconds_over_capacity"].is_u64(),
        "{summary}"
    );
    assert!(
        summary["memory"]["peak_rss_mb"].as_f64().unwrap() > 0.0,
        "the started gateway's memory is watched: {summary}"
    );
}

#[test]
fn an_interrupted_drill_stops_the_gateway_it_started() {
    let origin = rampart_demo::DemoSite::start_with(
        "127.0.0.1:0".parse().unwrap(),
        rampart_demo::Options::with_capacity(1000),
    )
    .unwrap();
    let dir = temp_dir("drill-interrupted");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut drill = Command::new(binary())
        .args([
            "drill",
            "--duration",
            "10m",
            "--attack-rate",
            "10",
            "--attackers",
            "10",
            "--browsers",
            "1",
        ])
        .args(["--target", &format!("http://{listen}")])
        .arg("--gateway-log")
        .arg(dir.join("gateway.log"))
        .arg("--")
        .args(zero_config_gateway(origin.local_addr(), listen))
        .env("XDG_STATE_HOME", dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(listen);
    let interrupted = Command::new("kill")
        .args(["-INT", &drill.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    wait_for(&mut drill, "the interrupted drill");
    let out = drill.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an interrupted drill is not a finished one"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!accepts(listen), "the gateway went with the drill");
}

#[test]
fn a_cold_drill_refuses_a_port_something_else_holds() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(binary())
        .args(["drill", "--duration", "1s", "--target"])
        .arg(format!("http://{}", holder.local_addr().unwrap()))
        .args(["--", "sleep", "30"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already accepts"), "{stderr}");
}
