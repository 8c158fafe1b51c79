//! Hostile input never panics: random and malformed cookies, tokens and
//! solutions are refused cleanly. Deterministic: a fixed xorshift stream.

use crate::common::{at, facts, ip, shield};
use rampart_flood::{Reject, RouteId, SiteId};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A string biased towards the characters our tokens use, with the odd
    /// multi-byte character and control byte mixed in.
    fn token(&mut self) -> String {
        const ALPHABET: &[&str] = &[
            "0", "1", "9", "a", "f", "g", ".", "..", "-", "+", " ", "\u{0}", "é", "💥", "ff",
            "00000001",
        ];
        let len = (self.next() % 40) as usize;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn random_tokens_are_refused_without_panicking() {
    let s = shield(
        r#"
[[sites]]
name = "party"
detector = { enabled = false }
[[sites.routes]]
name = "donate"
always_challenge = true
max_in_flight = 1
"#,
    );
    let site = SiteId(0);
    let donate = s.route_id(site, "donate").unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..20_000 {
        let a = rng.token();
        let b = rng.token();
        let now = at(f64::from(i) * 0.001);
        assert!(s
            .verify_solution(site, ip("198.51.100.1"), &a, &b, now)
            .is_err());
        assert!(s.redeem_wait(site, ip("198.51.100.1"), &a, now).is_err());
        let mut f = facts("198.51.100.1", donate, now);
        f.clearance_cookie = Some(&a);
        f.ticket_cookie = Some(&b);
        let _ = s.admit(&f);
    }
    // Unknown sites and routes are not errors either.
    assert!(matches!(
        s.verify_solution(SiteId(9), ip("198.51.100.1"), "x", "1", at(0.0)),
        Err(Reject::Invalid)
    ));
    let mut f = facts("198.51.100.1", RouteId(77), at(0.0));
    f.site = SiteId(0);
    let _ = s.admit(&f);
    f.site = SiteId(12);
    let _ = s.admit(&f);
}

#[test]
fn extreme_times_and_limits_do_not_overflow() {
    let s = shield(
        r#"
[bans]
ladder = ["9223372036854775807s"]
[challenge]
clearance = "9223372036854775807s"
[[sites]]
name = "party"
client = { requests = 4294967295, per = "1s", burst = 4294967295 }
prefix = { requests = 1, per = "4294967295s", burst = 4294967295 }
detector = { bucket = "4294967295s" }
"#,
    );
    for t in [0u64, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX] {
        let now = rampart_flood::Time::from_nanos(t);
        let mut f = facts("198.51.100.1", RouteId::NONE, now);
        f.site = SiteId(0);
        let _ = s.admit(&f);
        let _ = s.ban(ip("198.51.100.2"), None, now);
        s.tick(now);
    }
}
