//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;

use rampart_flood::{
    FloodConfig, FloodVerdict, Keyring, RequestFacts, RouteId, Shield, SiteId, Time,
};

/// A fixed starting time: 2026-11-29 08:00:00 UTC.
pub const T0: u64 = 1_795_939_200;

pub fn at(secs: f64) -> Time {
    Time::from_nanos(T0 * 1_000_000_000 + (secs * 1e9) as u64)
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn shield(toml_text: &str) -> Shield {
    // Tests track few clients; a small table keeps each test from
    // allocating the production default of about 100 MB.
    let text = if toml_text.contains("max_tracked_keys") {
        toml_text.to_string()
    } else {
        format!("max_tracked_keys = 100000\n{toml_text}")
    };
    let config: FloodConfig = toml::from_str(&text).expect("config parses");
    Shield::in_memory(&config, Keyring::generate([7; 32]), at(0.0)).expect("config is valid")
}

pub fn facts<'a>(client: &str, route: RouteId, now: Time) -> RequestFacts<'a> {
    RequestFacts {
        client: ip(client),
        site: SiteId(0),
        route,
        is_api: false,
        is_browser: true,
        clearance_cookie: None,
        ticket_cookie: None,
        now,
    }
}

pub fn kind(v: &FloodVerdict) -> &'static str {
    match v {
        FloodVerdict::Continue { .. } => "continue",
        FloodVerdict::Limited { .. } => "limited",
        FloodVerdict::Challenge(_) => "challenge",
        FloodVerdict::WaitingRoom { .. } => "waiting",
        FloodVerdict::Unavailable { .. } => "unavailable",
        FloodVerdict::Banned { .. } => "banned",
    }
}

/// Solves a challenge verdict as a browser's worker would and returns the
/// clearance cookie's value for `client`.
pub fn cleared(s: &Shield, client: &str, v: FloodVerdict, now: Time) -> String {
    let FloodVerdict::Challenge(c) = v else {
        panic!("expected a challenge, got {v:?}");
    };
    let n = rampart_flood::token::solve(&c.token, c.difficulty);
    s.verify_solution(SiteId(0), ip(client), &c.token, &n.to_string(), now)
        .expect("the solution is accepted")
        .cookie_value
}
