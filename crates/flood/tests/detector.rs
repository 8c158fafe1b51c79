//! The attack detector: a synthetic surge switches a site into under-attack
//! mode and back, with hysteresis; manual and scheduled switching.

mod common;

use std::time::Duration;

use common::{at, facts, kind, shield};
use rampart_flood::{Event, Metric, ModeReason, RouteId, Shield, SiteId};

const SITE: &str = r#"
[[sites]]
name = "party"
client = { requests = 0, burst = 1 }
prefix = { requests = 0, burst = 1 }
[sites.detector]
bucket_secs = 10
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
            s.observe_response(SiteId(0), Duration::from_millis(latency_ms), false, at(t));
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
fn upstream_errors_count_as_a_surge() {
    let s = shield(SITE);
    traffic(&s, 0.0, 120, 30, 30, 50);
    for sec in 120..150 {
        for i in 0..30 {
            let t = at(f64::from(sec) + f64::from(i) / 30.0);
            let _ = s.admit(&facts("10.0.0.1", RouteId::NONE, t));
            s.observe_response(SiteId(0), Duration::from_millis(50), i % 2 == 0, t);
        }
    }
    s.tick(at(150.0));
    let m = modes(&s);
    assert!(
        matches!(
            m.first(),
            Some((
                true,
                ModeReason::Surge {
                    metric: Metric::UpstreamErrors,
                    ..
                }
            ))
        ),
        "{m:?}"
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
    let from = common::T0 + 12 * 3600;
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
