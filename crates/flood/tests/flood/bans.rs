//! Bans: escalation, expiry, strikes from limits and the WAF, list and
//! unban, and the allowlist winning over all of it.

use std::time::Duration;

use crate::common::{at, facts, ip, kind, shield};
use rampart_flood::{BanReason, Event, FloodVerdict, RouteId, Strike};

const SITE: &str = r#"
allow = ["192.0.2.0/28", "2001:db8:ffff::/48"]
[bans]
limit_strikes = { requests = 5, per = "1m", burst = 5 }
waf_strikes = { requests = 3, per = "10m", burst = 3 }
ladder = ["10m", "1h", "1d"]
remember = "7d"
[[sites]]
name = "party"
client = { requests = 1, per = "1s", burst = 1 }
detector = { enabled = false }
"#;

fn banned_events(s: &rampart_flood::Shield) -> Vec<(std::net::IpAddr, u8, BanReason)> {
    let mut ev = Vec::new();
    s.drain_events(&mut ev);
    ev.into_iter()
        .filter_map(|e| match e {
            Event::Banned { client, record, .. } => Some((client, record.level, record.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn bans_escalate_and_expire() {
    let s = shield(SITE);
    let c = ip("198.51.100.9");
    let r1 = s.ban(c, None, at(0.0));
    assert_eq!((r1.level, r1.until), (1, at(600.0)));
    assert!(
        matches!(s.admit(&facts("198.51.100.9", RouteId::NONE, at(599.0))), FloodVerdict::Banned { until } if until == at(600.0))
    );
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.9", RouteId::NONE, at(600.0)))),
        "continue"
    );
    let r2 = s.ban(c, None, at(1000.0));
    assert_eq!((r2.level, r2.until), (2, at(4600.0)));
    let r3 = s.ban(c, None, at(5000.0));
    assert_eq!((r3.level, r3.until), (3, at(5000.0 + 86_400.0)));
    // The ladder's last step repeats.
    let r4 = s.ban(c, None, at(100_000.0));
    assert_eq!((r4.level, r4.until), (4, at(100_000.0 + 86_400.0)));
    // After the memory runs out, the next ban starts over.
    let forgotten = 100_000.0 + 86_400.0 + 604_800.0 + 1.0;
    let r5 = s.ban(c, None, at(forgotten));
    assert_eq!(r5.level, 1);
    assert_eq!(banned_events(&s).len(), 5);
}

#[test]
fn repeated_limit_breaches_earn_a_ban() {
    let s = shield(SITE);
    let mut limited = 0;
    let mut t = 0.0;
    loop {
        match s.admit(&facts("198.51.100.50", RouteId::NONE, at(t))) {
            FloodVerdict::Limited { .. } => limited += 1,
            FloodVerdict::Banned { until } => {
                assert_eq!(until, at(t - 0.01).plus(Duration::from_secs(600)));
                break;
            }
            _ => {}
        }
        t += 0.01;
        assert!(t < 10.0, "never banned");
    }
    // Five strikes are tolerated (the burst), the sixth bans.
    assert_eq!(limited, 6);
    assert_eq!(
        banned_events(&s),
        vec![(ip("198.51.100.50"), 1, BanReason::RateLimits)]
    );
}

#[test]
fn waf_strikes_ban_and_escalate() {
    let s = shield(SITE);
    let c = ip("2001:db8:1::5");
    for _ in 0..3 {
        s.report_strike(c, Strike::Waf, at(0.0));
    }
    assert_eq!(
        kind(&s.admit(&facts("2001:db8:1::5", RouteId::NONE, at(1.0)))),
        "continue"
    );
    s.report_strike(c, Strike::Waf, at(1.0));
    assert_eq!(
        kind(&s.admit(&facts("2001:db8:1::5", RouteId::NONE, at(2.0)))),
        "banned"
    );
    // After the ban ends it trips the WAF again: a longer ban.
    for _ in 0..4 {
        s.report_strike(c, Strike::Waf, at(4000.0));
    }
    let list = s.bans(at(4001.0), 10);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].0, c);
    assert_eq!(list[0].1.level, 2);
    assert_eq!(list[0].1.until, at(4000.0 + 3600.0));
}

#[test]
fn unban_lifts_and_lists() {
    let s = shield(SITE);
    s.ban(ip("198.51.100.1"), Some(Duration::from_secs(60)), at(0.0));
    s.ban(ip("198.51.100.2"), None, at(0.0));
    assert_eq!(s.bans(at(1.0), 10).len(), 2);
    assert_eq!(s.bans(at(61.0), 10).len(), 1, "the 60 s ban has ended");
    // The count agrees with the list, and stops at its bound.
    assert_eq!(s.ban_count(at(1.0), 10), 2);
    assert_eq!(s.ban_count(at(61.0), 10), 1);
    assert_eq!(s.ban_count(at(1.0), 1), 1);
    assert!(s.unban(ip("198.51.100.2"), at(2.0)));
    assert!(!s.unban(ip("198.51.100.2"), at(2.0)));
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.2", RouteId::NONE, at(3.0)))),
        "continue"
    );
    let mut ev = Vec::new();
    s.drain_events(&mut ev);
    assert!(ev.iter().any(|e| matches!(e, Event::Unbanned { .. })));
}

#[test]
fn allowlist_beats_ban_and_limits() {
    let s = shield(SITE);
    let office = ip("192.0.2.5");
    s.ban(office, Some(Duration::from_secs(86_400)), at(0.0));
    for i in 0..100 {
        // Far above the 1/s limit, and banned: still let through.
        assert_eq!(
            kind(&s.admit(&facts("192.0.2.5", RouteId::NONE, at(f64::from(i) * 0.01)))),
            "continue"
        );
        assert_eq!(
            kind(&s.admit(&facts(
                "2001:db8:ffff:1::1",
                RouteId::NONE,
                at(f64::from(i) * 0.01)
            ))),
            "continue"
        );
    }
    // WAF strikes never ban an allowlisted client.
    for _ in 0..10 {
        s.report_strike(ip("2001:db8:ffff::9"), Strike::Waf, at(1.0));
    }
    assert_eq!(
        kind(&s.admit(&facts("2001:db8:ffff::9", RouteId::NONE, at(2.0)))),
        "continue"
    );
    // Just outside the range the ban applies.
    s.ban(ip("192.0.2.16"), None, at(0.0));
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.16", RouteId::NONE, at(1.0)))),
        "banned"
    );
}

/// Rebuilding the shield on a configuration reload keeps bans and limiter
/// state when the gateway shares one backend between the old and new shield.
#[test]
fn reload_with_shared_state_keeps_bans() {
    use rampart_flood::{FloodConfig, Keyring, MemoryState, Shield};
    use std::sync::Arc;
    let config: FloodConfig = toml::from_str(SITE).unwrap();
    let state = Arc::new(MemoryState::default());
    let old = Shield::new(
        &config,
        Arc::clone(&state),
        Keyring::generate([1; 32]),
        at(0.0),
    )
    .unwrap();
    old.ban(ip("198.51.100.9"), None, at(0.0));
    let keys = old.keyring();
    drop(old);
    let new = Shield::new(&config, state, keys, at(5.0)).unwrap();
    assert!(matches!(
        new.admit(&facts("198.51.100.9", RouteId::NONE, at(6.0))),
        FloodVerdict::Banned { .. }
    ));
}

/// Regression: refusals by the prefix limit were counted as strikes against
/// each client behind it, so everyone on a busy campus /24 got banned for
/// their neighbours' traffic. Only a client's own limits count now.
#[test]
fn prefix_limit_refusals_do_not_ban_neighbours() {
    let s = shield(
        r#"
[bans]
limit_strikes = { requests = 1, per = "1m", burst = 2 }
[[sites]]
name = "party"
client = { requests = 100, burst = 100 }
prefix = { requests = 1, per = "1m", burst = 1 }
detector = { enabled = false }
"#,
    );
    let _ = s.admit(&facts("203.0.113.1", RouteId::NONE, at(0.0)));
    for i in 0..50 {
        let v = s.admit(&facts("203.0.113.2", RouteId::NONE, at(f64::from(i) * 0.1)));
        assert!(matches!(v, FloodVerdict::Limited { .. }), "{v:?}");
    }
    assert!(s.bans(at(10.0), 10).is_empty());
}

#[test]
fn denylisted_ranges_are_banned_but_allowlist_still_wins() {
    let s = shield(
        r#"
allow = ["203.0.113.7"]
deny = ["203.0.113.0/24", "2001:db8:bad::/48"]
[[sites]]
name = "party"
detector = { enabled = false }
"#,
    );
    assert_eq!(
        kind(&s.admit(&facts("203.0.113.8", RouteId::NONE, at(0.0)))),
        "banned"
    );
    assert_eq!(
        kind(&s.admit(&facts("2001:db8:bad:1::1", RouteId::NONE, at(0.0)))),
        "banned"
    );
    assert_eq!(
        kind(&s.admit(&facts("203.0.113.7", RouteId::NONE, at(0.0)))),
        "continue"
    );
    assert_eq!(
        kind(&s.admit(&facts("203.0.114.8", RouteId::NONE, at(0.0)))),
        "continue"
    );
}

/// Hammers the site from `addr` until it is banned; returns when it was.
fn flood_until_banned(s: &rampart_flood::Shield, addr: &str, from: f64) -> f64 {
    let mut t = from;
    loop {
        if let FloodVerdict::Banned { .. } = s.admit(&facts(addr, RouteId::NONE, at(t))) {
            return t;
        }
        t += 0.01;
        assert!(t < from + 10.0, "{addr} never banned");
    }
}

#[test]
fn waf_strikes_ban_one_address_never_its_neighbours() {
    let s = shield(SITE);
    // Nine visitors behind one carrier's /24 each trip the WAF enough for a
    // ban: nine single-address bans, and the tenth visitor still gets in.
    for host in 1..=9 {
        let c = ip(&format!("198.51.100.{host}"));
        for _ in 0..4 {
            s.report_strike(c, Strike::Waf, at(0.0));
        }
    }
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.1", RouteId::NONE, at(1.0)))),
        "banned"
    );
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.200", RouteId::NONE, at(1.0)))),
        "continue"
    );
    let list = s.bans(at(1.0), 100);
    assert_eq!(list.len(), 9);
    assert!(list.iter().all(|(_, b)| b.reason == BanReason::Waf));
}

#[test]
fn a_flood_from_many_addresses_of_one_prefix_bans_the_prefix() {
    let s = shield(SITE);
    // Seven flooding addresses of one /24 are banned one by one; the prefix
    // is still open to the rest of it.
    let mut t = 0.0;
    for host in 1..=7 {
        t = flood_until_banned(&s, &format!("203.0.113.{host}"), t);
    }
    assert_eq!(
        kind(&s.admit(&facts("203.0.113.99", RouteId::NONE, at(t)))),
        "continue"
    );
    // The eighth bans the whole /24, and only it.
    t = flood_until_banned(&s, "203.0.113.8", t + 0.01);
    assert_eq!(
        kind(&s.admit(&facts("203.0.113.100", RouteId::NONE, at(t + 0.01)))),
        "banned"
    );
    assert_eq!(
        kind(&s.admit(&facts("203.0.114.100", RouteId::NONE, at(t + 0.01)))),
        "continue"
    );
    let events = banned_events(&s);
    assert_eq!(events.len(), 9, "{events:?}");
    assert_eq!(events[8], (ip("203.0.113.0"), 1, BanReason::Flood));
    let list = s.bans(at(t + 1.0), 100);
    assert!(
        list.iter()
            .any(|(a, b)| *a == ip("203.0.113.0") && b.reason == BanReason::Flood),
        "{list:?}"
    );
    // The operator lifts it by the prefix's network address.
    assert!(s.unban(ip("203.0.113.0"), at(t + 2.0)));
    assert_eq!(
        kind(&s.admit(&facts("203.0.113.100", RouteId::NONE, at(t + 2.0)))),
        "continue"
    );
}
