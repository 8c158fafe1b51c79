//! A real browser against the challenge: Debian's headless Chromium, driven
//! by Playwright (`tests-browser/challenge.mjs`), through a real gateway in
//! under-attack mode in front of the real demo site. `scripts/setup`
//! installs Chromium and the script's npm packages.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

#[test]
fn chromium_passes_the_challenge_with_and_without_javascript() {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests-browser");
    assert!(
        scripts.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/setup (npm ci in tests-browser/)"
    );
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = one_site_config(
        site.local_addr(),
        "\n[flood]\n[flood.challenge]\nnojs_wait_secs = 2\n[[flood.sites]]\nname = \"www\"\n",
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
