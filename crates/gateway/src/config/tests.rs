use super::*;

fn check(text: &str) -> String {
    match Config::parse(text, "rampart.toml", Path::new("/etc/rampart")) {
        Ok(c) => format!(
            "ok: {} listeners, {} sites, {} upstreams",
            c.listeners.len(),
            c.sites.len(),
            c.upstreams.len()
        ),
        Err(e) => e.to_string(),
    }
}

const GOOD: &str = r#"
[server]
threads = 2
trusted_proxies = ["10.0.0.0/8"]

[limits]
head_timeout = "5s"
max_body_bytes = 1048576

[[listener]]
address = "127.0.0.1:8080"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000", "127.0.0.1:3001"]
health_check = { path = "/health", interval = "2s" }

[[site]]
name = "www"
hosts = ["Example.org"]
upstream = "app"

[[site.route]]
prefix = "/api/"
api = true
"#;

#[test]
fn valid_config_is_accepted() {
    assert_eq!(check(GOOD), "ok: 1 listeners, 1 sites, 1 upstreams");
    let c = Config::parse(GOOD, "x", Path::new("/")).unwrap();
    assert_eq!(c.sites[0].hosts, vec!["example.org"]);
    assert_eq!(c.limits.head_timeout, Duration::from_secs(5));
    assert_eq!(
        c.upstreams[0].health_check.as_ref().unwrap().path,
        "/health"
    );
    assert!(c.sites[0].routes[0].api);
}

/// A route's choices for upgrades and for what cannot be inspected are
/// read, and a wrong value is reported with its position.
#[test]
fn route_choices_for_tunnels_and_uninspectable_input() {
    let good = GOOD.replace(
        "api = true",
        "api = true\nwebsocket = false\nuninspectable = \"refuse\"",
    );
    let c = Config::parse(&good, "x", Path::new("/")).unwrap();
    assert_eq!(c.sites[0].routes[0].websocket, Some(false));
    assert_eq!(
        c.sites[0].routes[0].uninspectable,
        Some(Uninspectable::Refuse)
    );
    let bad = GOOD.replace("api = true", "api = true\nuninspectable = \"maybe\"");
    let errors = Config::parse(&bad, "x", Path::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("uninspectable")
            && errors.contains("\"pass\" or \"refuse\"")
            && errors.contains("x:"),
        "{errors}"
    );
}

#[test]
fn every_error_is_reported_with_its_position() {
    let bad = r#"
[limits]
head_timeout = "ten seconds"
max_body_byts = 5

[[listener]]
address = "localhost"

[[site]]
name = "www"
hosts = ["a.org"]
upstream = "missing"
"#;
    let out = check(bad);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rampart.toml:3:16: `head_timeout` must be a duration")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rampart.toml:4:1: unknown key `max_body_byts`")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("rampart.toml:7:11: `address`: `localhost` is not an address")),
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("uses upstream `missing`, which is not defined")),
        "{out}"
    );
}

#[test]
fn two_sites_with_one_name_are_refused() {
    let twice = r#"
[[listener]]
address = "127.0.0.1:8080"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[site]]
name = "www"
hosts = ["a.org"]
upstream = "app"

[[site]]
name = "www"
hosts = ["b.org"]
upstream = "app"
"#;
    let out = check(twice);
    assert!(out.contains("site `www` is defined twice"), "{out}");
    let once = twice.replacen(
        "name = \"www\"\nhosts = [\"b.org\"]",
        "name = \"shop\"\nhosts = [\"b.org\"]",
        1,
    );
    assert!(!check(&once).contains("defined twice"), "{}", check(&once));
}

#[test]
fn broken_toml_names_the_line() {
    let out = check("[limits\nhead_timeout = 1\n");
    assert!(out.starts_with("rampart.toml:1:"), "{out}");
    assert!(out.contains("not valid TOML"), "{out}");
}

#[test]
fn durations_are_strings_in_one_convention() {
    let at = |value: &str| {
        check(&GOOD.replace("head_timeout = \"5s\"", &format!("head_timeout = {value}")))
    };
    let c = |value: &str| {
        Config::parse(&GOOD.replace("\"5s\"", value), "x", Path::new("/"))
            .map(|c| c.limits.head_timeout)
    };
    assert_eq!(c("\"500ms\"").unwrap(), Duration::from_millis(500));
    assert_eq!(c("\"2m\"").unwrap(), Duration::from_secs(120));
    assert_eq!(c("\"1h 30m\"").unwrap(), Duration::from_secs(5400));
    for bad in ["5", "\"5\"", "\"s\"", "\"5 parsecs\""] {
        let out = at(bad);
        assert!(
            out.contains("`head_timeout` must be a duration"),
            "{bad}: {out}"
        );
    }
}

/// Every error in every section is reported in one round, each at its own
/// line: the sections read by the layers' serde types do not stop at their
/// first error, and a multi-byte character before an error does not shift
/// its position.
#[test]
fn every_error_in_every_section_is_reported_at_once() {
    let text = format!(
        "{GOOD}
[flood]
max_bans = \"many\"
colour = \"blue\"

[[flood.sites]]
name = \"www\"  # é, ü: two bytes each
client = {{ requests = \"five\", per = \"1m\", burst = 5 }}
shape = 3

[cache]
ttl = \"soon\"

[incidents]
organisation = 7

[leak_guard.default]
action = \"shout\"
"
    );
    let report = check(&text);
    let line = |needle: &str| {
        text.lines()
            .position(|l| l.starts_with(needle))
            .map(|i| i + 1)
            .unwrap()
    };
    for (needle, key) in [
        ("max_bans", "[flood]"),
        ("colour", "[flood]"),
        ("client", "[flood]"),
        ("shape", "[flood]"),
        ("ttl", "[cache]"),
        ("organisation", "[incidents]"),
        ("action", "[leak_guard]"),
    ] {
        let at = format!("rampart.toml:{}:", line(needle));
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(&at) && l.contains(key)),
            "no error at {at} in {key}:\n{report}"
        );
    }
    assert_eq!(report.lines().count(), 7, "{report}");
}
