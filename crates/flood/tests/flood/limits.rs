//! Rate limits: GCRA bursts and retry-after, prefix and route limits, the
//! client table's memory cap under a spoofed flood, and a stress test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use crate::common::{at, facts, ip, kind, shield};
use rampart_flood::{
    ClientTable, FloodVerdict, KeyKind, Limit, LimitKey, LimitScope, RouteId, Take, Time,
};

const SITE: &str = r#"
[[sites]]
name = "party"
client = { requests = 2, per = "1s", burst = 5 }
prefix = { requests = 0, burst = 1 }
detector = { enabled = false }
"#;

#[test]
fn burst_then_rate_then_429_with_retry_after() {
    let s = shield(SITE);
    // Five at once (the burst) pass, the sixth is refused.
    for i in 0..5 {
        assert_eq!(
            kind(&s.admit(&facts("198.51.100.7", RouteId::NONE, at(0.0)))),
            "continue",
            "request {i}"
        );
    }
    match s.admit(&facts("198.51.100.7", RouteId::NONE, at(0.0))) {
        FloodVerdict::Limited {
            retry_after_secs,
            scope,
        } => {
            assert_eq!(scope, LimitScope::Client);
            // One token comes back every 0.5 s: Retry-After rounds up to 1.
            assert_eq!(retry_after_secs, 1);
        }
        v => panic!("expected 429, got {v:?}"),
    }
    // Half a second later exactly one more fits.
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.7", RouteId::NONE, at(0.5)))),
        "continue"
    );
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.7", RouteId::NONE, at(0.5)))),
        "limited"
    );
    // Another client is unaffected.
    assert_eq!(
        kind(&s.admit(&facts("198.51.100.8", RouteId::NONE, at(0.5)))),
        "continue"
    );
}

#[test]
fn retry_after_reflects_long_periods() {
    // One request a minute, burst one: the second request waits 60 s.
    let t = ClientTable::new(1000);
    let rate = Limit {
        requests: 1,
        per: std::time::Duration::from_secs(60),
        burst: 1,
    }
    .rate()
    .unwrap();
    let key = LimitKey::new(KeyKind::Client, 0, Some(ip("192.0.2.1")));
    assert_eq!(t.take(&key, rate, at(0.0)), Take::Allowed);
    match t.take(&key, rate, at(10.0)) {
        Take::Denied { retry_after } => assert_eq!(retry_after.as_secs(), 50),
        v => panic!("{v:?}"),
    }
    assert_eq!(t.take(&key, rate, at(60.0)), Take::Allowed);
}

#[test]
fn prefix_limit_covers_a_whole_slash_24_and_slash_64() {
    let s = shield(
        r#"
[[sites]]
name = "party"
client = { requests = 100, burst = 100 }
prefix = { requests = 1, per = "10s", burst = 3 }
detector = { enabled = false }
"#,
    );
    // Three different addresses in one /24 use up the prefix's burst.
    for host in ["203.0.113.1", "203.0.113.2", "203.0.113.250"] {
        assert_eq!(
            kind(&s.admit(&facts(host, RouteId::NONE, at(0.0)))),
            "continue"
        );
    }
    match s.admit(&facts("203.0.113.99", RouteId::NONE, at(0.0))) {
        FloodVerdict::Limited {
            scope,
            retry_after_secs,
        } => {
            assert_eq!(scope, LimitScope::Prefix);
            assert_eq!(retry_after_secs, 10);
        }
        v => panic!("{v:?}"),
    }
    // The neighbouring /24 is another prefix.
    assert_eq!(
        kind(&s.admit(&facts("203.0.114.1", RouteId::NONE, at(0.0)))),
        "continue"
    );
    // IPv6: the whole /64 is one prefix, the next /64 is not.
    for host in ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:ffff::3"] {
        assert_eq!(
            kind(&s.admit(&facts(host, RouteId::NONE, at(0.0)))),
            "continue"
        );
    }
    assert_eq!(
        kind(&s.admit(&facts("2001:db8:0:1:abcd::9", RouteId::NONE, at(0.0)))),
        "limited"
    );
    assert_eq!(
        kind(&s.admit(&facts("2001:db8:0:2::1", RouteId::NONE, at(0.0)))),
        "continue"
    );
    // An IPv4-mapped IPv6 address is the IPv4 client it maps.
    assert_eq!(
        kind(&s.admit(&facts("::ffff:203.0.113.7", RouteId::NONE, at(0.0)))),
        "limited"
    );
}

#[test]
fn route_limits_add_to_site_limits() {
    let s = shield(
        r#"
[[sites]]
name = "party"
client = { requests = 100, burst = 100 }
detector = { enabled = false }
[[sites.routes]]
name = "donate"
client = { requests = 1, per = "1m", burst = 2 }
total = { requests = 10, per = "1s", burst = 4 }
"#,
    );
    let donate = s.route_id(rampart_flood::SiteId(0), "donate").unwrap();
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.1", donate, at(0.0)))),
        "continue"
    );
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.1", donate, at(0.0)))),
        "continue"
    );
    match s.admit(&facts("192.0.2.1", donate, at(0.0))) {
        FloodVerdict::Limited {
            scope: LimitScope::RouteClient,
            ..
        } => {}
        v => panic!("{v:?}"),
    }
    // The same client elsewhere on the site is fine.
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.1", RouteId::NONE, at(0.0)))),
        "continue"
    );
    // The route's total: two more clients fit, the next is refused.
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.2", donate, at(0.0)))),
        "continue"
    );
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.3", donate, at(0.0)))),
        "continue"
    );
    match s.admit(&facts("192.0.2.4", donate, at(0.0))) {
        FloodVerdict::Limited {
            scope: LimitScope::RouteTotal,
            ..
        } => {}
        v => panic!("{v:?}"),
    }
}

/// A spoofed-address flood: four times the table's capacity in distinct
/// addresses, one request each. The table must never exceed its capacity
/// or its fixed memory, and a heavy hitter that was limited before the flood
/// must still be limited after it (its entry has the highest value).
#[test]
fn spoofed_flood_keeps_memory_cap_and_heavy_hitters() {
    let t = ClientTable::new(64 * 1024);
    let cap = t.capacity();
    let mem = t.memory_bytes();
    let rate = Limit {
        requests: 1,
        per: std::time::Duration::from_secs(1),
        burst: 10,
    }
    .rate()
    .unwrap();
    let heavy = LimitKey::new(KeyKind::Client, 0, Some(ip("192.0.2.66")));
    for _ in 0..10 {
        assert_eq!(t.take(&heavy, rate, at(0.0)), Take::Allowed);
    }
    assert!(matches!(t.take(&heavy, rate, at(0.0)), Take::Denied { .. }));
    // The flood arrives within 0.4 s, so no spoofed entry has refilled:
    // eviction must choose by value, not by expiry alone.
    let mut n = 0u32;
    let total = cap as u32 * 4;
    for i in 0..total {
        let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        let key = LimitKey::new(KeyKind::Client, 0, Some(addr.into()));
        let now = at(0.5 + f64::from(i) / f64::from(total) * 0.4);
        assert_eq!(t.take(&key, rate, now), Take::Allowed);
        n += 1;
    }
    assert!(t.len() <= cap);
    assert_eq!(n as usize, cap * 4);
    assert_eq!(t.memory_bytes(), mem, "memory is fixed at construction");
    assert!(
        t.live(at(0.9)) > cap / 2,
        "the table stays full of live entries"
    );
    assert!(
        matches!(t.take(&heavy, rate, at(0.9)), Take::Denied { .. }),
        "the heavy hitter is still limited"
    );
}

/// Entries whose bucket has refilled are worthless and go first.
#[test]
fn refilled_entries_are_evicted_before_live_ones() {
    let t = ClientTable::new(8 * 64);
    let cap = t.capacity();
    let rate = Limit {
        requests: 1,
        per: std::time::Duration::from_secs(1),
        burst: 1,
    }
    .rate()
    .unwrap();
    for i in 0..cap as u32 {
        let key = LimitKey::new(KeyKind::Client, 0, Some(std::net::Ipv4Addr::from(i).into()));
        t.take(&key, rate, at(0.0));
    }
    // Ten seconds later every old entry is refilled; new keys replace them.
    for i in 0..cap as u32 {
        let key = LimitKey::new(KeyKind::Client, 1, Some(std::net::Ipv4Addr::from(i).into()));
        t.take(&key, rate, at(10.0));
    }
    assert!(t.len() <= cap);
}

#[test]
fn one_million_clients_fit_in_256_mb() {
    // The default configuration's table, sized for a million clients with a
    // prefix key each plus strikes.
    let t = ClientTable::new(rampart_flood::MemoryLimits::default().max_keys);
    assert!(t.capacity() >= 2_000_000, "capacity {}", t.capacity());
    assert!(
        t.memory_bytes() <= 256 << 20,
        "memory {} bytes",
        t.memory_bytes()
    );
}

/// Eight threads hammer one table: shared keys must be limited exactly
/// (no lost updates), and distinct keys must all pass.
#[test]
fn stress_many_threads_one_table() {
    let t = Arc::new(ClientTable::new(200_000));
    // 100 per second with a burst of 1000: in a frozen instant exactly 1000
    // requests on the shared key may pass, whatever the interleaving.
    let rate = Limit {
        requests: 100,
        per: std::time::Duration::from_secs(1),
        burst: 1000,
    }
    .rate()
    .unwrap();
    let allowed = Arc::new(AtomicU64::new(0));
    let now = at(0.0);
    let handles: Vec<_> = (0..8u32)
        .map(|th| {
            let t = Arc::clone(&t);
            let allowed = Arc::clone(&allowed);
            thread::spawn(move || {
                let shared = LimitKey::new(KeyKind::Route, 7, None);
                for i in 0..20_000u32 {
                    if t.take(&shared, rate, now) == Take::Allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                    let own = LimitKey::new(
                        KeyKind::Client,
                        0,
                        Some(std::net::Ipv4Addr::from(th << 24 | i).into()),
                    );
                    assert_eq!(t.take(&own, rate, now), Take::Allowed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(allowed.load(Ordering::Relaxed), 1000);
    assert!(t.len() <= t.capacity());
    // Time moving on refills the shared key at the configured rate.
    let later = Time::from_nanos(now.as_nanos() + 1_000_000_000);
    let shared = LimitKey::new(KeyKind::Route, 7, None);
    let mut more = 0;
    while t.take(&shared, rate, later) == Take::Allowed {
        more += 1;
    }
    assert_eq!(more, 100);
}

/// The whole shield under concurrent admission, with a flood of spoofed
/// addresses mixed with one real client.
#[test]
fn stress_shield_concurrent_admit() {
    let s = Arc::new(shield(
        r#"
max_tracked_keys = 50000
[[sites]]
name = "party"
client = { requests = 10, per = "1s", burst = 20 }
detector = { enabled = false }
"#,
    ));
    let handles: Vec<_> = (0..4u32)
        .map(|th| {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                for i in 0..50_000u32 {
                    let addr = std::net::Ipv4Addr::from(0x0b00_0000 | th << 20 | i).to_string();
                    let _ = s.admit(&facts(&addr, RouteId::NONE, at(f64::from(i) / 50_000.0)));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let c = s.counters();
    assert_eq!(c.continued + c.limited, 200_000);
    assert!(s.state().table().len() <= s.state().table().capacity());
}

/// A route's total is what its origin can take: requests that get the
/// challenge never reach the origin, so they must not spend it, or a
/// challenged flood would lock out the visitors who cleared.
#[test]
fn challenged_requests_do_not_spend_the_route_total() {
    let s = shield(
        r#"
[[sites]]
name = "party"
client = { requests = 100, burst = 100 }
detector = { enabled = false }
[[sites.routes]]
name = "news"
always_challenge = true
total = { requests = 1, per = "1m", burst = 2 }
"#,
    );
    let news = s.route_id(rampart_flood::SiteId(0), "news").unwrap();
    for i in 0..50 {
        let client = format!("203.0.113.{}", i + 1);
        assert_eq!(kind(&s.admit(&facts(&client, news, at(0.0)))), "challenge");
    }
    // Requests that would reach the origin (here clients that solved the
    // challenge) still find the whole total, and no more.
    let site = rampart_flood::SiteId(0);
    let mut cookies = Vec::new();
    for client in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        let FloodVerdict::Challenge(c) = s.admit(&facts(client, news, at(0.0))) else {
            panic!("challenge expected")
        };
        let n = rampart_flood::token::solve(&c.token, c.difficulty);
        cookies.push(
            s.verify_solution(site, ip(client), &c.token, &n.to_string(), at(0.0))
                .unwrap()
                .cookie_value,
        );
    }
    let cleared = |i: usize, client: &'static str| {
        let mut f = facts(client, news, at(0.0));
        f.clearance_cookie = Some(cookies[i].as_str());
        s.admit(&f)
    };
    assert_eq!(kind(&cleared(0, "192.0.2.1")), "continue");
    assert_eq!(kind(&cleared(1, "192.0.2.2")), "continue");
    match cleared(2, "192.0.2.3") {
        FloodVerdict::Limited {
            scope: LimitScope::RouteTotal,
            ..
        } => {}
        v => panic!("the third passes the total of 2: {v:?}"),
    }
}
