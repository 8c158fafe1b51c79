//! Configuration: TOML shapes, defaults, and every error reported at once.

use rampart_flood::{ErrorKind, FloodConfig, Keyring, Shield, Time};

#[test]
fn example_config_parses_with_defaults() {
    let c: FloodConfig = toml::from_str(
        r#"
allow = ["66.249.64.0/19", "2001:4860:4801::/48"]
[[sites]]
name = "party.example"
[[sites.routes]]
name = "donate"
max_in_flight = 50
always_challenge = true
total = { requests = 100, burst = 200 }
[[sites.routes]]
name = "api"
api = true
"#,
    )
    .unwrap();
    assert_eq!(c.sites[0].client.requests, 20);
    assert_eq!(
        c.bans
            .ladder
            .iter()
            .map(|d| d.as_secs())
            .collect::<Vec<_>>(),
        vec![600, 3600, 86_400]
    );
    let s = Shield::in_memory(&c, Keyring::generate([0; 32]), Time::from_secs(0)).unwrap();
    assert!(s.site_id("party.example").is_some());
    assert!(s
        .route_id(s.site_id("party.example").unwrap(), "donate")
        .is_some());
}

#[test]
fn every_error_is_reported() {
    let c: FloodConfig = toml::from_str(
        r#"
allow = ["10.0.0.0/33", "not-an-ip"]
[challenge]
min_difficulty = 30
max_difficulty = 20
[[sites]]
name = "a"
client = { requests = 5, burst = 0 }
[[sites.schedule]]
daily_utc = "25:00-01:00"
[[sites.routes]]
name = "r"
max_in_flight = 0
[[sites]]
name = "a"
"#,
    )
    .unwrap();
    let errors = match Shield::in_memory(&c, Keyring::generate([0; 32]), Time::from_secs(0)) {
        Ok(_) => panic!("config should be refused"),
        Err(e) => e,
    };
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 7, "{text:#?}");
    assert_eq!(
        errors
            .iter()
            .filter(|e| e.kind() == ErrorKind::BadCidr)
            .count(),
        2
    );
}

#[test]
fn unknown_fields_are_refused() {
    assert!(toml::from_str::<FloodConfig>(
        "[[sites]]\nname = \"a\"\nclinet = { requests = 1, burst = 1 }\n"
    )
    .is_err());
}
