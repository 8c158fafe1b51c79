//! End-to-end tests of incidents: a real gateway in front of the real demo
//! site records events to its SQLite store, groups them into incidents,
//! sends webhook alerts, and `rampart incidents` / `rampart report` read
//! them back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::common::*;

pub(crate) fn crs_v4() -> PathBuf {
    let root = std::env::var_os("RAMPART_CRS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crs"));
    let dir = root.join("v4.28.0");
    assert!(
        dir.join("rules").is_dir(),
        "the CRS is expected at {} (set RAMPART_CRS_ROOT)",
        dir.display()
    );
    dir
}

/// A webhook receiver: answers 200 to every POST and keeps the bodies.
struct Webhook {
    address: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head, then exactly Content-Length bytes of body.
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            kept.lock().unwrap().push(body.to_string());
                            break;
                        }
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        });
        Webhook { address, bodies }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

fn rampart(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run rampart");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn incidents_json(gw: &GatewayProcess) -> Vec<serde_json::Value> {
    let config = gw.config_path.display().to_string();
    let (ok, out, err) = rampart(&["incidents", "--config", &config, "--json", "on"]);
    assert!(ok, "rampart incidents failed: {err}");
    serde_json::from_str::<Vec<serde_json::Value>>(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn find_kind<'a>(incidents: &'a [serde_json::Value], kind: &str) -> Option<&'a serde_json::Value> {
    incidents.iter().find(|i| {
        i["kinds"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == kind))
    })
}

#[test]
fn an_injection_burst_and_a_blocked_donor_feed_become_incidents_with_reports_and_alerts() {
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let hook = Webhook::start();
    let tail = format!(
        r#"
[site.waf]
mode = "on"
crs = "{crs}"
paranoia = 1

[leak_guard.default]
action = "alert"
[[leak_guard.sites]]
host = "party.example"
[[leak_guard.sites.routes]]
path_prefix = "/donations/feed"
action = "block"

[incidents]
organisation = "Example Party"
contact = "Data Protection Officer, dpo@party.example"

[incidents.thresholds]
quiet = "3s"

[[incidents.webhook]]
name = "ops"
url = "http://{hook}/alerts"
format = "json"
"#,
        crs = crs_v4().display(),
        hook = hook.address,
    );
    let config = one_site_config(site.local_addr(), &tail);
    let gw = GatewayProcess::start("incidents-e2e", &config);

    // An injection burst: ten different SQL injection probes.
    let mut blocked = 0;
    for i in 0..10 {
        let reply = raw(gw.listen, format!("GET /search?q=1%27%20OR%20%27{i}%27%3D%27{i}%27%20--%20 HTTP/1.1\r\nHost: party.example\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        if reply.status == 403 {
            blocked += 1;
        }
    }
    assert_eq!(blocked, 10, "every probe is blocked by the CRS");
    // The donor feed, stopped by the leak guard.
    let feed = raw(
        gw.listen,
        b"GET /donations/feed HTTP/1.1\r\nHost: party.example\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(feed.status, 503);
    // Ordinary pages in between, counted by the traffic samples.
    for _ in 0..5 {
        assert_eq!(get(gw.listen, "/").status, 200);
    }

    eventually_long("an injection and a data-leak incident are recorded", || {
        let list = incidents_json(&gw);
        find_kind(&list, "injection").is_some() && find_kind(&list, "data_leak").is_some()
    });
    let list = incidents_json(&gw);
    let injection = find_kind(&list, "injection").unwrap();
    assert!(
        injection["blocked"].as_u64().unwrap_or(0) >= 10
            || injection["events"].as_u64().unwrap() >= 10,
        "{injection}"
    );
    assert_eq!(
        injection["top_prefixes"][0]["key"], "127.0.0.0/24",
        "{injection}"
    );
    assert!(
        injection["rules"].as_array().is_some_and(|r| !r.is_empty()),
        "rules hit are recorded: {injection}"
    );
    assert!(
        injection["attacks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["key"] == "sqli")),
        "{injection}"
    );
    let leak = find_kind(&list, "data_leak").unwrap();
    assert_eq!(leak["data"]["left"], "prevented", "{leak}");
    assert_eq!(
        leak["data"]["special_category"], true,
        "donor data reveals political opinions: {leak}"
    );

    // Alerts: the webhook heard about both openings.
    eventually_long("the webhook receives the openings", || {
        hook.bodies()
            .iter()
            .filter(|b| b.contains("opened"))
            .count()
            >= 2
    });

    // Reports in every format, from the command line.
    let config_path = gw.config_path.display().to_string();
    let id = injection["id"].as_i64().unwrap().to_string();
    for format in ["md", "html", "json", "stix", "misp"] {
        let out = gw.dir.join(format!("report.{format}"));
        let (ok, _, err) = rampart(&[
            "report",
            &id,
            "--format",
            format,
            "--config",
            &config_path,
            "--out",
            &out.display().to_string(),
        ]);
        assert!(ok, "report --format {format} failed: {err}");
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            !text.contains("127.0.0.1"),
            "a {format} report must not carry a full client address"
        );
        assert!(
            text.contains("127.0.0.0/24"),
            "a {format} report names the source prefix"
        );
    }
    let markdown = std::fs::read_to_string(gw.dir.join("report.md")).unwrap();
    assert!(
        markdown.contains("Example Party"),
        "the organisation from the config is used"
    );

    // The decision log takes an operator's note, and the report shows it.
    let (ok, _, err) = rampart(&[
        "incidents",
        "note",
        &id,
        "Reported to the NCSC",
        "--told",
        "NCSC",
        "--by",
        "duty officer",
        "--config",
        &config_path,
    ]);
    assert!(ok, "{err}");
    let (ok, shown, err) = rampart(&["incidents", "show", &id, "--config", &config_path]);
    assert!(ok, "{err}");
    assert!(
        shown.contains("Reported to the NCSC") && shown.contains("NCSC"),
        "{shown}"
    );

    // Quiet for longer than `quiet` closes the incident, and the webhook hears of it.
    eventually_long(
        "the injection incident closes after the quiet period",
        || {
            let list = incidents_json(&gw);
            find_kind(&list, "injection").is_some_and(|i| i["status"] == "closed")
        },
    );
    eventually_long("the webhook receives the closing", || {
        hook.bodies().iter().any(|b| b.contains("closed"))
    });
    let metrics = gw.metrics();
    assert!(
        metrics.contains("rampart_events_recorded_total"),
        "{metrics}"
    );
}

#[test]
fn recording_off_leaves_no_store() {
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = GatewayProcess::start(
        "incidents-off",
        &one_site_config(site.local_addr(), "[incidents]\nrecord = false\n"),
    );
    assert_eq!(get(gw.listen, "/").status, 200);
    assert!(!gw.dir.join("rampart-events.db").exists());
    let (ok, _, err) = rampart(&[
        "incidents",
        "--config",
        &gw.config_path.display().to_string(),
    ]);
    assert!(!ok, "listing a missing store is an error");
    assert!(err.contains("no event store"), "{err}");
}

#[test]
fn a_broken_incidents_section_is_reported_with_its_position() {
    let config = one_site_config(
        "127.0.0.1:9".parse().unwrap(),
        "\n[incidents]\nretention_dayz = 3\n",
    );
    let line = config
        .lines()
        .position(|l| l.starts_with("retention_dayz"))
        .unwrap()
        + 1;
    let (ok, text) = check_config("incidents-bad", &config);
    assert!(!ok);
    assert!(
        text.contains(&format!("rampart.toml:{line}:1:")) && text.contains("retention_dayz"),
        "{text}"
    );
}

/// Like `eventually`, with room for the writer's flush and the grouping's
/// quiet period.
fn eventually_long(what: &str, condition: impl FnMut() -> bool) {
    eventually_within(what, std::time::Duration::from_secs(40), condition)
}
