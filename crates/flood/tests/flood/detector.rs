//! The attack detector: a synthetic surge switches a site into under-attack
//! mode and back, with hysteresis; manual and scheduled switching.

use std::time::Duration;

use crate::common::{at, facts, kind, shield};
use rampart_flood::{
    Event, FloodVerdict, Metric, ModeReason, RouteId, Shield, SiteId, UpstreamOutcome,
};

const SITE: &str = r#"
[[sites]]
name = "party"
client = { requests = 0, burst = 1 }
prefix = { requests = 0, burst = 1 }
[sites.detector]
bucket = "10s"
warmup_buckets = 3
min_rate = 20.0
min_clients = 50.0
enter_buckets = 2
leave_buckets = 3
"#;

/// Sends `rps` requests a second from `clients` distinct clients for
/// `secs` seconds starting at `start`, each answered in `latency_ms`.
fn traffic(s: &Shield, start: f64, secs: u32, rps: u32, clients: u32, latency_ms: u64) {
    for sec in 0..secs {
        for i in 0..rps {
            let t = start + f64::from(sec) + f64::from(i) / f64::from(rps);
            let c = i % clients;
            let addr = format!("10.{}.{}.{}", c >> 16 & 255, c >> 8 & 255, c & 255);
            let _ = s.admit(&facts(&addr, RouteId::NONE, at(t)));
            s.observe_response(
                SiteId(0),
                Duration::from_millis(latency_ms),
                UpstreamOutcome::Served,
                at(t),
            );
        }
    }
}

fn modes(s: &Shield) -> Vec<(bool, ModeReason)> {
    let mut ev = Vec::new();
    s.drain_events(&mut ev);
    ev.into_iter()
        .filter_map(|e| match e {
            Event::ModeChanged {
                under_attack,
                reason,
                ..
            } => Some((under_attack, reason)),
            _ => None,
        })
        .collect()
}

/// The site's first mode change was a switch into under-attack mode for
/// distress of this kind.
fn switched_by_distress(s: &Shield, expected: Metric) {
    let m = modes(s);
    assert!(
        matches!(
            m.first(),
            Some((true, ModeReason::Distress { metric, .. })) if *metric == expected
        ),
        "{m:?}"
    );
}

#[test]
fn surge_switches_on_and_calm_switches_off_with_hysteresis() {
    let s = shield(SITE);
    let site = SiteId(0);
    // Ten minutes of normal traffic: 10 requests a second from 30 clients.
    traffic(&s, 0.0, 600, 10, 30, 80);
    assert!(!s.under_attack(site));
    assert!(modes(&s).is_empty());
    // One hot bucket is not enough (enter_buckets = 2).
    traffic(&s, 600.0, 10, 200, 2000, 80);
    traffic(&s, 610.0, 1, 10, 30, 80);
    assert!(!s.under_attack(site), "one hot bucket must not switch");
    // A sustained flood: 200 requests a second from 2000 clients.
    traffic(&s, 620.0, 30, 200, 2000, 80);
    assert!(s.under_attack(site));
    let m = modes(&s);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        matches!(
            m[0],
            (
                true,
                ModeReason::Surge {
                    metric: Metric::RequestRate,
                    ..
                }
            )
        ),
        "{m:?}"
    );
    // Under attack, browsers without clearance are challenged.
    assert_eq!(
        kind(&s.admit(&facts("192.0.2.1", RouteId::NONE, at(650.5)))),
        "challenge"
    );
    // The flood dips to 3x baseline for a while: above the leave threshold
    // (1.5x), so the site stays in under-attack mode (no flapping).
    traffic(&s, 651.0, 60, 30, 30, 80);
    assert!(s.under_attack(site), "3x baseline is not calm");
    // Back to normal: after three calm buckets the mode switches off once.
    traffic(&s, 711.0, 40, 10, 30, 80);
    assert!(!s.under_attack(site));
    let m = modes(&s);
    assert_eq!(m, vec![(false, ModeReason::Calm)]);
}

#[test]
fn upstream_errors_switch_within_two_seconds_even_with_a_baseline() {
    let s = shield(SITE);
    traffic(&s, 0.0, 120, 30, 30, 50);
    assert!(modes(&s).is_empty());
    for sec in 120..150 {
        for i in 0..30 {
            let t = at(f64::from(sec) + f64::from(i) / 30.0);
            let _ = s.admit(&facts("10.0.0.1", RouteId::NONE, t));
            let outcome = if i % 2 == 0 {
                UpstreamOutcome::Failed
            } else {
                UpstreamOutcome::Served
            };
            s.observe_response(SiteId(0), Duration::from_millis(50), outcome, t);
        }
        if sec == 122 {
            // Two whole seconds of errors were in when the third began.
            assert!(s.under_attack(SiteId(0)), "not switched after two seconds");
        }
    }
    switched_by_distress(&s, Metric::UpstreamErrors);
}

/// An upstream that serves `capacity` requests in each second of the clock
/// and answers 503 at once beyond it, as `rampart demo-origin --capacity`
/// does; it counts what arrives each second.
struct CappedOrigin {
    capacity: u32,
    latency: Duration,
    second: u64,
    this_second: u32,
    arrivals: std::collections::BTreeMap<u64, u32>,
}

impl CappedOrigin {
    fn new(capacity: u32, latency: Duration) -> CappedOrigin {
        CappedOrigin {
            capacity,
            latency,
            second: 0,
            this_second: 0,
            arrivals: Default::default(),
        }
    }

    fn serve(&mut self, now: rampart_flood::Time) -> UpstreamOutcome {
        let sec = now.as_secs();
        if sec != self.second {
            self.second = sec;
            self.this_second = 0;
        }
        self.this_second += 1;
        *self.arrivals.entry(sec).or_default() += 1;
        if self.this_second <= self.capacity {
            UpstreamOutcome::Served
        } else {
            UpstreamOutcome::Overloaded
        }
    }

    fn seconds_over_capacity(&self) -> usize {
        self.arrivals
            .values()
            .filter(|&&n| n > self.capacity)
            .count()
    }
}

/// One second of recorded traffic: `browsers` requests from a few
/// addresses, `flood` requests from 5,000 rotating addresses, each sent to
/// the origin when the shield lets it through.
fn second_of(s: &Shield, origin: &mut CappedOrigin, sec: u32, browsers: u32, flood: u32) {
    let total = browsers + flood;
    for i in 0..total {
        let t = at(f64::from(sec) + f64::from(i) / f64::from(total.max(1)));
        let addr = if i < browsers {
            format!("192.0.2.{}", i % 5 + 1)
        } else {
            let n = (sec * flood + i) % 5000;
            format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255)
        };
        if let FloodVerdict::Continue { permit } = s.admit(&facts(&addr, RouteId::NONE, t)) {
            let outcome = origin.serve(t);
            s.observe_response(SiteId(0), origin.latency, outcome, t);
            drop(permit);
        }
    }
}

/// The defaults of a gateway started with no configuration at all.
const ZERO_CONFIG: &str = "[[sites]]\nname = \"default\"\n";

#[test]
fn a_flood_at_a_cold_start_switches_within_three_seconds_and_spares_the_upstream() {
    // The gateway starts, three seconds of ordinary browsing pass, then a
    // flood of 1,000 requests a second meets an upstream that serves 50:
    // nothing learned, no warm-up.
    let s = shield(ZERO_CONFIG);
    let mut origin = CappedOrigin::new(50, Duration::from_millis(2));
    for sec in 0..3 {
        second_of(&s, &mut origin, sec, 5, 0);
    }
    assert!(!s.under_attack(SiteId(0)));
    let mut switched_at = None;
    for sec in 3..30 {
        second_of(&s, &mut origin, sec, 5, 1000);
        if switched_at.is_none() && s.under_attack(SiteId(0)) {
            switched_at = Some(sec);
        }
    }
    let switched_at = switched_at.expect("the flood never switched the site");
    // Switched while the flood's third second was under way at the latest.
    assert!(
        switched_at <= 5,
        "switched {} s after the flood",
        switched_at - 3
    );
    let m = modes(&s);
    assert!(
        matches!(m.first(), Some((true, ModeReason::Distress { .. }))),
        "{m:?}"
    );
    // The upstream saw more than it can serve for two seconds at most.
    assert!(
        origin.seconds_over_capacity() <= 2,
        "over capacity for {} s: {:?}",
        origin.seconds_over_capacity(),
        origin.arrivals
    );
    // What was learned during the attack is not the normal: the baseline
    // was never fed a second of the flood.
    let learned = &s.learned(at(30.0))["default"];
    assert!(learned.rate < 50.0, "{learned:?}");
    assert!(learned.under_attack);
    assert!(
        learned.capacity_per_sec.is_some_and(|r| r <= 50.0),
        "{learned:?}"
    );
}

#[test]
fn an_upstream_slowing_down_switches_within_three_seconds() {
    let s = shield(ZERO_CONFIG);
    // Twenty seconds of an upstream answering in 40 ms, then the same
    // traffic answered in 1.5 s (its queue is filling).
    for sec in 0..25u32 {
        let latency = Duration::from_millis(if sec < 20 { 40 } else { 1500 });
        for i in 0..40 {
            let t = at(f64::from(sec) + f64::from(i) / 40.0);
            let _ = s.admit(&facts("192.0.2.7", RouteId::NONE, t));
            s.observe_response(SiteId(0), latency, UpstreamOutcome::Served, t);
        }
        if sec < 20 {
            assert!(!s.under_attack(SiteId(0)), "second {sec}");
        }
        if sec == 22 {
            assert!(s.under_attack(SiteId(0)), "not switched in three seconds");
        }
    }
    switched_by_distress(&s, Metric::UpstreamLatency);
}

#[test]
fn a_healthy_rush_or_one_bad_second_switches_nothing() {
    let s = shield(ZERO_CONFIG);
    let mut origin = CappedOrigin::new(10_000, Duration::from_millis(30));
    // A newsletter: ten times the traffic from many new visitors, which the
    // upstream serves without a sign of strain.
    for sec in 0..5 {
        second_of(&s, &mut origin, sec, 5, 0);
    }
    for sec in 5..20 {
        second_of(&s, &mut origin, sec, 5, 50);
    }
    // A deploy: one second of 503s, then healthy again.
    for i in 0..60 {
        let t = at(20.0 + f64::from(i) / 60.0);
        let _ = s.admit(&facts("192.0.2.9", RouteId::NONE, t));
        s.observe_response(
            SiteId(0),
            Duration::from_millis(5),
            UpstreamOutcome::Overloaded,
            t,
        );
    }
    for sec in 21..25 {
        second_of(&s, &mut origin, sec, 5, 50);
    }
    assert!(!s.under_attack(SiteId(0)));
    assert!(modes(&s).is_empty());
}

#[test]
fn a_restart_mid_flood_keeps_the_mode_and_the_capacity() {
    let s = shield(ZERO_CONFIG);
    let mut origin = CappedOrigin::new(50, Duration::from_millis(2));
    for sec in 0..20 {
        second_of(&s, &mut origin, sec, 5, 1000);
    }
    assert!(s.under_attack(SiteId(0)));
    let saved = s.learned(at(20.0));
    drop(s);
    // The new process starts two seconds later, the flood still on.
    let after = shield(ZERO_CONFIG);
    after.restore(&saved, at(22.0));
    assert!(after.under_attack(SiteId(0)));
    assert_eq!(modes(&after), vec![(true, ModeReason::Restored)]);
    let mut origin = CappedOrigin::new(50, Duration::from_millis(2));
    for sec in 22..40 {
        second_of(&after, &mut origin, sec, 5, 1000);
    }
    assert_eq!(origin.seconds_over_capacity(), 0, "{:?}", origin.arrivals);
    // A state saved long ago gives the baseline but not the mode.
    let later = shield(ZERO_CONFIG);
    later.restore(&saved, at(20.0 + 3600.0));
    assert!(!later.under_attack(SiteId(0)));
    assert_eq!(
        later.learned(at(3621.0))["default"].capacity_per_sec,
        saved["default"].capacity_per_sec
    );
}

#[test]
fn idle_site_leaves_attack_mode_on_tick() {
    let s = shield(SITE);
    traffic(&s, 0.0, 60, 10, 30, 80);
    traffic(&s, 60.0, 30, 500, 1000, 80);
    assert!(s.under_attack(SiteId(0)));
    // The flood stops dead; no requests at all. The gateway's tick closes
    // the empty buckets.
    s.tick(at(100.0));
    s.tick(at(200.0));
    assert!(!s.under_attack(SiteId(0)));
}

#[test]
fn manual_switch_overrides_and_hands_back() {
    let s = shield(SITE);
    let site = SiteId(0);
    s.set_mode(site, Some(true), at(1.0));
    assert!(s.under_attack(site));
    s.set_mode(site, None, at(2.0));
    assert!(!s.under_attack(site));
    assert_eq!(
        modes(&s),
        vec![
            (true, ModeReason::Manual),
            (false, ModeReason::ManualCleared)
        ]
    );
}

#[test]
fn schedule_windows_switch_the_mode() {
    // The debate: 2026-11-29 20:00 to 22:00 UTC, plus every night 23:00-01:00.
    let from = crate::common::T0 + 12 * 3600;
    let s = shield(&format!(
        r#"
[[sites]]
name = "party"
[[sites.schedule]]
from_unix = {from}
until_unix = {until}
[[sites.schedule]]
daily_utc = "23:00-01:00"
"#,
        until = from + 7200
    ));
    let site = SiteId(0);
    s.tick(at(11.0 * 3600.0));
    assert!(!s.under_attack(site));
    s.tick(at(12.0 * 3600.0 + 1.0));
    assert!(s.under_attack(site));
    s.tick(at(14.0 * 3600.0 + 1.0));
    assert!(!s.under_attack(site));
    s.tick(at(15.0 * 3600.0 + 1.0)); // 23:00 UTC
    assert!(s.under_attack(site));
    s.tick(at(16.5 * 3600.0)); // 00:30 UTC
    assert!(s.under_attack(site));
    s.tick(at(17.0 * 3600.0 + 60.0)); // 01:01 UTC
    assert!(!s.under_attack(site));
    let m = modes(&s);
    assert_eq!(
        m,
        vec![
            (true, ModeReason::ScheduleStart),
            (false, ModeReason::ScheduleEnd),
            (true, ModeReason::ScheduleStart),
            (false, ModeReason::ScheduleEnd)
        ]
    );
}
