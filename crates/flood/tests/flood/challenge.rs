//! The proof-of-work challenge, clearance cookies, key rotation and the
//! no-script fallback.

use crate::common::{at, facts, ip, kind, shield};
use rampart_flood::token::{issue_clearance, leading_zero_bits, solve, verify_clearance};
use rampart_flood::{pages, Challenge, FloodVerdict, Keyring, Reject, RouteId, SiteId};

const SITE: &str = r#"
allow = ["66.249.64.0/19"]
[challenge]
min_difficulty = 8
max_difficulty = 12
nojs_wait = "5s"
clearance = "1h"
token = "5m"
[[sites]]
name = "party"
detector = { enabled = false }
[[sites.routes]]
name = "login"
always_challenge = true
[[sites.routes]]
name = "api"
api = true
"#;

fn challenge(v: FloodVerdict) -> Challenge {
    match v {
        FloodVerdict::Challenge(c) => c,
        v => panic!("expected a challenge, got {v:?}"),
    }
}

#[test]
fn solve_verify_and_use_clearance() {
    let s = shield(SITE);
    let site = SiteId(0);
    s.set_mode(site, Some(true), at(0.0));
    let c = challenge(s.admit(&facts("198.51.100.20", RouteId::NONE, at(1.0))));
    assert_eq!(c.difficulty, 8);
    // Solve as the browser's worker would.
    let n = solve(&c.token, c.difficulty);
    assert!(leading_zero_bits(&c.token, &n.to_string()) >= 8);
    let clearance = s
        .verify_solution(site, ip("198.51.100.20"), &c.token, &n.to_string(), at(3.0))
        .unwrap();
    assert!(clearance.set_cookie().starts_with("rampart_clearance="));
    assert!(clearance.set_cookie().contains("HttpOnly"));
    // With the cookie the client passes; a neighbour in the same /24 (a
    // phone moving between addresses of its carrier) passes too.
    for client in ["198.51.100.20", "198.51.100.77"] {
        let mut f = facts(client, RouteId::NONE, at(4.0));
        f.clearance_cookie = Some(&clearance.cookie_value);
        assert_eq!(kind(&s.admit(&f)), "continue", "{client}");
    }
    // Another network cannot use the copied cookie.
    let mut f = facts("203.0.113.5", RouteId::NONE, at(4.0));
    f.clearance_cookie = Some(&clearance.cookie_value);
    assert_eq!(kind(&s.admit(&f)), "challenge");
}

#[test]
fn wrong_solution_tampered_and_expired_tokens_are_rejected() {
    let s = shield(SITE);
    let site = SiteId(0);
    let client = ip("198.51.100.20");
    let login = s.route_id(site, "login").unwrap();
    let c = challenge(s.admit(&facts("198.51.100.20", login, at(0.0))));
    let n = solve(&c.token, c.difficulty);
    // A wrong answer.
    let wrong = (0..)
        .find(|m: &u64| leading_zero_bits(&c.token, &m.to_string()) < 8)
        .unwrap();
    assert_eq!(
        s.verify_solution(site, client, &c.token, &wrong.to_string(), at(1.0)),
        Err(Reject::WrongSolution)
    );
    assert_eq!(
        s.verify_solution(site, client, &c.token, "-1", at(1.0)),
        Err(Reject::WrongSolution)
    );
    // Lowering the difficulty inside the token breaks its signature.
    let easier = c.token.replacen(".8.", ".1.", 1);
    assert_ne!(easier, c.token);
    assert_eq!(
        s.verify_solution(site, client, &easier, &n.to_string(), at(1.0)),
        Err(Reject::Invalid)
    );
    // Solved from another network.
    assert_eq!(
        s.verify_solution(site, ip("203.0.113.9"), &c.token, &n.to_string(), at(1.0)),
        Err(Reject::Invalid)
    );
    // Garbage of every shape.
    for junk in ["", ".", "a.b.c.d.e", &"9".repeat(500), "zzzzzzzz.00.1.8.00"] {
        assert_eq!(
            s.verify_solution(site, client, junk, "1", at(1.0)),
            Err(Reject::Invalid),
            "{junk:?}"
        );
    }
    // Too late (token = "5m").
    assert_eq!(
        s.verify_solution(site, client, &c.token, &n.to_string(), at(301.0)),
        Err(Reject::Expired)
    );
    // In time, it works.
    assert!(s
        .verify_solution(site, client, &c.token, &n.to_string(), at(2.0))
        .is_ok());
    let counters = s.counters();
    assert_eq!((counters.cleared, counters.rejected), (1, 10));
}

#[test]
fn replayed_solution_is_rejected() {
    let s = shield(SITE);
    let site = SiteId(0);
    let login = s.route_id(site, "login").unwrap();
    let c = challenge(s.admit(&facts("198.51.100.20", login, at(0.0))));
    let n = solve(&c.token, c.difficulty).to_string();
    assert!(s
        .verify_solution(site, ip("198.51.100.20"), &c.token, &n, at(1.0))
        .is_ok());
    assert_eq!(
        s.verify_solution(site, ip("198.51.100.20"), &c.token, &n, at(1.5)),
        Err(Reject::Replayed)
    );
    // A neighbour in the same prefix cannot replay it either.
    assert_eq!(
        s.verify_solution(site, ip("198.51.100.21"), &c.token, &n, at(1.5)),
        Err(Reject::Replayed)
    );
}

#[test]
fn tampered_and_expired_clearance_is_rejected() {
    let keys = Keyring::generate([1; 32]);
    let prefix = ip("198.51.100.0");
    let cookie = issue_clearance(&keys, "party", prefix, at(3600.0));
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &cookie, at(10.0)),
        Ok(())
    );
    // Every single-character change is caught.
    for i in 0..cookie.len() {
        let mut b = cookie.clone().into_bytes();
        b[i] = if b[i] == b'1' { b'2' } else { b'1' };
        let t = String::from_utf8(b).unwrap();
        assert!(
            verify_clearance(&keys, "party", prefix, &t, at(10.0)).is_err(),
            "{t}"
        );
    }
    // Extending the expiry breaks the signature.
    let (head, tag) = cookie.rsplit_once('.').unwrap();
    let (kid, exp) = head.split_once('.').unwrap();
    let later = format!("{kid}.{}.{tag}", exp.parse::<u64>().unwrap() + 86_400);
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &later, at(10.0)),
        Err(Reject::Invalid)
    );
    // Another site's cookie is not valid here.
    assert_eq!(
        verify_clearance(&keys, "charity", prefix, &cookie, at(10.0)),
        Err(Reject::Invalid)
    );
    // Expired.
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &cookie, at(3600.0)),
        Err(Reject::Expired)
    );
    // Another key's cookie.
    let other = Keyring::generate([2; 32]);
    assert_eq!(
        verify_clearance(&other, "party", prefix, &cookie, at(10.0)),
        Err(Reject::Invalid)
    );
}

#[test]
fn key_rotation_accepts_current_and_previous_only() {
    let mut keys = Keyring::generate([1; 32]);
    let prefix = ip("2001:db8:1:2::");
    let old = issue_clearance(&keys, "party", prefix, at(3600.0));
    keys.rotate([2; 32]);
    let mid = issue_clearance(&keys, "party", prefix, at(3600.0));
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &old, at(1.0)),
        Ok(())
    );
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &mid, at(1.0)),
        Ok(())
    );
    keys.rotate([3; 32]);
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &old, at(1.0)),
        Err(Reject::Invalid)
    );
    assert_eq!(
        verify_clearance(&keys, "party", prefix, &mid, at(1.0)),
        Ok(())
    );
    // Key material round-trips, and corrupt material is refused.
    let bytes = keys.to_bytes();
    let back = Keyring::from_bytes(&bytes).unwrap();
    assert_eq!(back, keys);
    assert_eq!(
        verify_clearance(&back, "party", prefix, &mid, at(1.0)),
        Ok(())
    );
    assert!(Keyring::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(Keyring::from_bytes(b"nope").is_err());
    assert!(
        !format!("{keys:?}").contains("3, 3"),
        "Debug must not show secrets"
    );
    let fresh = Keyring::generate([9; 32]);
    assert_eq!(Keyring::from_bytes(&fresh.to_bytes()).unwrap(), fresh);
}

#[test]
fn shield_rotation_keeps_visitors_cleared() {
    let s = shield(SITE);
    let site = SiteId(0);
    let login = s.route_id(site, "login").unwrap();
    let c = challenge(s.admit(&facts("198.51.100.20", login, at(0.0))));
    let n = solve(&c.token, c.difficulty).to_string();
    let clearance = s
        .verify_solution(site, ip("198.51.100.20"), &c.token, &n, at(1.0))
        .unwrap();
    let bytes = s.rotate_keys([42; 32]);
    assert_eq!(rampart_flood::State::key_material(s.state()), Some(bytes));
    let mut f = facts("198.51.100.20", login, at(2.0));
    f.clearance_cookie = Some(&clearance.cookie_value);
    assert_eq!(kind(&s.admit(&f)), "continue");
    s.rotate_keys([43; 32]);
    assert_eq!(kind(&s.admit(&f)), "challenge");
}

#[test]
fn nojs_token_is_valid_only_after_the_wait_and_once() {
    let s = shield(SITE);
    let site = SiteId(0);
    let client = ip("198.51.100.20");
    let login = s.route_id(site, "login").unwrap();
    let c = challenge(s.admit(&facts("198.51.100.20", login, at(100.0))));
    assert_eq!(c.wait_secs, 5);
    match s.redeem_wait(site, client, &c.wait_token, at(102.0)) {
        Err(Reject::TooEarly { remaining }) => assert_eq!(remaining.as_secs(), 3),
        v => panic!("{v:?}"),
    }
    let clearance = s
        .redeem_wait(site, client, &c.wait_token, at(105.0))
        .unwrap();
    let mut f = facts("198.51.100.20", login, at(106.0));
    f.clearance_cookie = Some(&clearance.cookie_value);
    assert_eq!(kind(&s.admit(&f)), "continue");
    assert_eq!(
        s.redeem_wait(site, client, &c.wait_token, at(106.0)),
        Err(Reject::Replayed)
    );
    // Another network cannot redeem it, and a stale one is expired.
    let c = challenge(s.admit(&facts("198.51.100.20", login, at(200.0))));
    assert_eq!(
        s.redeem_wait(site, ip("192.0.2.1"), &c.wait_token, at(206.0)),
        Err(Reject::Invalid)
    );
    assert_eq!(
        s.redeem_wait(site, client, &c.wait_token, at(900.0)),
        Err(Reject::Expired)
    );
}

/// Waiting costs a flood tool nothing but time, so the no-script path gives
/// one prefix only a few clearances a minute, and asks for a longer wait
/// when the site is loaded.
#[test]
fn nojs_clearances_are_capped_per_prefix_and_the_wait_grows_with_load() {
    let s = shield(SITE);
    let site = SiteId(0);
    let login = s.route_id(site, "login").unwrap();
    let mut redeemed = 0;
    let mut capped = 0;
    for i in 0..8 {
        let client = format!("198.51.100.{}", 10 + i);
        let c = challenge(s.admit(&facts(&client, login, at(100.0))));
        match s.redeem_wait(site, ip(&client), &c.wait_token, at(105.0)) {
            Ok(_) => redeemed += 1,
            Err(Reject::PrefixCapped) => capped += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((redeemed, capped), (5, 3));
    // Another prefix is not affected, and the prefix recovers with time.
    let c = challenge(s.admit(&facts("203.0.113.9", login, at(100.0))));
    assert!(s
        .redeem_wait(site, ip("203.0.113.9"), &c.wait_token, at(105.0))
        .is_ok());
    let c = challenge(s.admit(&facts("198.51.100.99", login, at(120.0))));
    assert!(s
        .redeem_wait(site, ip("198.51.100.99"), &c.wait_token, at(125.0))
        .is_ok());

    use rampart_flood::nojs_wait_for_load;
    use std::time::Duration;
    let base = Duration::from_secs(5);
    assert_eq!(nojs_wait_for_load(base, 0.5), base);
    assert_eq!(nojs_wait_for_load(base, 1.0), base);
    assert_eq!(nojs_wait_for_load(base, 4.0), Duration::from_secs(20));
    assert_eq!(nojs_wait_for_load(base, 1e9), Duration::from_secs(60));
    assert_eq!(nojs_wait_for_load(base, f64::NAN), base);
}

#[test]
fn challenge_page_works_without_script_and_has_no_external_assets() {
    let s = shield(SITE);
    let login = s.route_id(SiteId(0), "login").unwrap();
    let c = challenge(s.admit(&facts("198.51.100.20", login, at(0.0))));
    let page = c.page("/donate?amount=10&\"x\"=<y>");
    assert!(page.contains(
        "<noscript><meta http-equiv=\"refresh\" content=\"5;url=/.rampart/challenge/wait?t="
    ));
    assert!(page.contains(&c.token));
    assert!(page.contains("crypto.subtle.digest('SHA-256'"));
    assert!(page.contains("new Worker("));
    assert!(page.contains("role=\"status\""));
    assert!(page.contains("<html lang=\"en\">"));
    assert!(!page.contains("<y>"), "return path must be escaped");
    assert!(
        !page.contains("http://") && !page.contains("https://") && !page.contains("src=\""),
        "no external assets"
    );
    // The CSP allows exactly the page's inline script.
    let csp = pages::challenge_csp();
    assert!(csp.contains("script-src 'sha256-"));
    assert!(pages::waiting_room_page(3, 5).contains("<meta http-equiv=\"refresh\" content=\"5\">"));
    assert!(pages::wait_page(&c.wait_token, "//evil.example", 3).contains("r=/\""));
}

#[test]
fn api_routes_are_challenged_too_and_allowlist_passes() {
    let s = shield(SITE);
    let site = SiteId(0);
    s.set_mode(site, Some(true), at(0.0));
    // No route or header is a free pass under attack: an API client without
    // clearance gets a challenge (the gateway writes it as JSON), and one
    // that solved it passes.
    let api = s.route_id(site, "api").unwrap();
    let c = challenge(s.admit(&facts("198.51.100.20", api, at(1.0))));
    let mut f = facts("198.51.100.20", RouteId::NONE, at(1.0));
    f.is_api = true;
    assert_eq!(kind(&s.admit(&f)), "challenge");
    let n = solve(&c.token, c.difficulty);
    let clearance = s
        .verify_solution(site, ip("198.51.100.20"), &c.token, &n.to_string(), at(2.0))
        .unwrap();
    let mut f = facts("198.51.100.20", api, at(3.0));
    f.clearance_cookie = Some(&clearance.cookie_value);
    assert_eq!(kind(&s.admit(&f)), "continue");
    // A verified crawler's range (configured CIDR) is never challenged.
    assert_eq!(
        kind(&s.admit(&facts("66.249.66.1", RouteId::NONE, at(1.0)))),
        "continue"
    );
    assert_eq!(
        kind(&s.admit(&facts("66.249.96.1", RouteId::NONE, at(1.0)))),
        "challenge"
    );
}

#[test]
fn difficulty_rises_with_load() {
    let s = shield(
        r#"
[challenge]
min_difficulty = 10
max_difficulty = 14
[[sites]]
name = "party"
client = { requests = 0, burst = 1 }
prefix = { requests = 0, burst = 1 }
[sites.detector]
warmup_buckets = 2
min_rate = 10.0
"#,
    );
    let site = SiteId(0);
    s.set_mode(site, Some(true), at(0.0));
    // Quiet: 1 request a second for a minute.
    for i in 0..60 {
        let _ = s.admit(&facts("10.0.0.1", RouteId::NONE, at(f64::from(i))));
    }
    let quiet = challenge(s.admit(&facts("10.0.0.1", RouteId::NONE, at(60.0)))).difficulty;
    assert_eq!(quiet, 10);
    // A bucket at 100 requests a second: load far above baseline.
    for i in 0..1000 {
        let _ = s.admit(&facts(
            "10.0.0.1",
            RouteId::NONE,
            at(70.0 + f64::from(i) / 100.0),
        ));
    }
    let busy = challenge(s.admit(&facts("10.0.0.1", RouteId::NONE, at(80.5)))).difficulty;
    assert!(busy > quiet && busy <= 14, "{busy}");
}
