//! Concurrency caps and the waiting room.

use std::time::Duration;

use crate::common::{at, cleared, facts, kind, shield};
use rampart_flood::{Admission, FloodVerdict, Gate, SiteId};

fn ticket_of(a: &Admission) -> u64 {
    match a {
        Admission::Wait { ticket, .. } => *ticket,
        other => panic!("expected a ticket, got {other:?}"),
    }
}

#[test]
fn first_come_first_served() {
    let g = Gate::new(2, 100, Duration::from_secs(5), 1);
    let now = at(0.0);
    let Admission::Enter(p1) = g.try_enter(None, true, now) else {
        panic!()
    };
    let Admission::Enter(p2) = g.try_enter(None, true, now) else {
        panic!()
    };
    // Three browsers queue, in order.
    let a = ticket_of(&g.try_enter(None, true, at(1.0)));
    let b = ticket_of(&g.try_enter(None, true, at(2.0)));
    let c = ticket_of(&g.try_enter(None, true, at(3.0)));
    assert!(a < b && b < c);
    // Nobody enters while the route is full.
    assert!(matches!(
        g.try_enter(Some(a), true, at(4.0)),
        Admission::Wait { position: 1, .. }
    ));
    assert!(matches!(
        g.try_enter(Some(c), true, at(4.0)),
        Admission::Wait { position: 3, .. }
    ));
    // One slot frees: the last in line refreshes first but must keep waiting;
    // the first in line gets the slot.
    drop(p1);
    assert!(matches!(
        g.try_enter(Some(c), true, at(5.0)),
        Admission::Wait { position: 3, .. }
    ));
    assert!(matches!(
        g.try_enter(Some(b), true, at(5.0)),
        Admission::Wait { position: 2, .. }
    ));
    let Admission::Enter(pa) = g.try_enter(Some(a), true, at(5.5)) else {
        panic!("a goes first")
    };
    // A newcomer does not jump the queue even if a slot is free.
    drop(p2);
    assert!(matches!(
        g.try_enter(None, true, at(6.0)),
        Admission::Wait { position: 3, .. }
    ));
    // b is next.
    let Admission::Enter(_pb) = g.try_enter(Some(b), true, at(6.0)) else {
        panic!("b is next")
    };
    // A used ticket cannot be used again to enter: it rejoins at the back.
    drop(pa);
    assert!(matches!(
        g.try_enter(Some(a), true, at(6.5)),
        Admission::Wait { .. }
    ));
    assert_eq!(g.in_flight(), 1);
}

#[test]
fn stale_tickets_do_not_hold_the_queue() {
    let g = Gate::new(1, 100, Duration::from_secs(5), 1);
    let Admission::Enter(p) = g.try_enter(None, true, at(0.0)) else {
        panic!()
    };
    let gone = ticket_of(&g.try_enter(None, true, at(1.0)));
    let stays = ticket_of(&g.try_enter(None, true, at(2.0)));
    drop(p);
    let _ = gone;
    // The first holder, at the head, was told to refresh every second; it
    // closed the tab. Three missed refreshes later the second is served.
    assert!(matches!(
        g.try_enter(Some(stays), true, at(3.0)),
        Admission::Wait { position: 2, .. }
    ));
    assert!(matches!(
        g.try_enter(Some(stays), true, at(4.5)),
        Admission::Enter(_)
    ));
}

#[test]
fn queue_is_bounded_and_api_clients_get_503() {
    let g = Gate::new(1, 3, Duration::from_secs(5), 1);
    let Admission::Enter(_p) = g.try_enter(None, true, at(0.0)) else {
        panic!()
    };
    for _ in 0..3 {
        ticket_of(&g.try_enter(None, true, at(0.0)));
    }
    assert!(matches!(g.try_enter(None, true, at(0.0)), Admission::Full));
    assert!(matches!(g.try_enter(None, false, at(0.0)), Admission::Full));
    assert_eq!(g.queued(), 3);
}

#[test]
fn permit_release_frees_the_slot() {
    let g = Gate::new(1, 10, Duration::from_secs(5), 1);
    for i in 0..100 {
        let Admission::Enter(p) = g.try_enter(None, false, at(f64::from(i))) else {
            panic!("request {i}")
        };
        assert_eq!(g.in_flight(), 1);
        drop(p);
    }
    assert_eq!(g.in_flight(), 0);
}

const DONATE: &str = r#"
allow = ["192.0.2.200"]
[challenge]
min_difficulty = 6
max_difficulty = 6
[[sites]]
name = "party"
detector = { enabled = false }
[[sites.routes]]
name = "donate"
max_in_flight = 1
queue = 2
refresh = "4s"
[[sites.routes]]
name = "api"
api = true
max_in_flight = 1
"#;

#[test]
fn shield_sends_browsers_to_the_waiting_room_with_a_signed_ticket() {
    let s = shield(DONATE);
    let donate = s.route_id(SiteId(0), "donate").unwrap();
    let FloodVerdict::Continue { permit: Some(p) } =
        s.admit(&facts("198.51.100.1", donate, at(0.0)))
    else {
        panic!()
    };
    // At capacity, a visitor without clearance is challenged, never queued.
    let v = s.admit(&facts("198.51.100.2", donate, at(0.0)));
    let cookie = cleared(&s, "198.51.100.2", v, at(0.0));
    let with_clearance = |client: &'static str, t: f64| {
        let mut f = facts(client, donate, at(t));
        f.clearance_cookie = Some(cookie.as_str());
        f
    };
    let v = s.admit(&with_clearance("198.51.100.2", 0.0));
    let FloodVerdict::WaitingRoom {
        position,
        refresh_secs,
        ticket_cookie,
    } = v
    else {
        panic!("{v:?}")
    };
    // At the head of the queue: refresh every second to claim a freed slot
    // quickly.
    assert_eq!((position, refresh_secs), (1, 1));
    // A forged ticket is ignored (the forger joins at the back).
    let mut f = with_clearance("198.51.100.3", 1.0);
    let forged = format!("00000001.1.{}", "0".repeat(32));
    f.ticket_cookie = Some(&forged);
    // Further back: the configured interval.
    assert!(matches!(
        s.admit(&f),
        FloodVerdict::WaitingRoom {
            position: 2,
            refresh_secs: 4,
            ..
        }
    ));
    // The queue (2) is full now: the next cleared browser gets 503.
    assert_eq!(
        kind(&s.admit(&with_clearance("198.51.100.4", 1.0))),
        "unavailable"
    );
    // The ticket (and clearance) from another prefix is not valid: that
    // visitor is challenged.
    let mut f = with_clearance("203.0.113.2", 1.0);
    f.ticket_cookie = Some(&ticket_cookie);
    assert_eq!(kind(&s.admit(&f)), "challenge");
    // The slot frees; the holder of the first ticket enters.
    drop(p);
    let mut f = with_clearance("198.51.100.2", 2.5);
    f.ticket_cookie = Some(&ticket_cookie);
    assert!(matches!(
        s.admit(&f),
        FloodVerdict::Continue { permit: Some(_) }
    ));
    // The allowlisted monitor never waits.
    assert!(matches!(
        s.admit(&facts("192.0.2.200", donate, at(4.0))),
        FloodVerdict::Continue { permit: Some(_) }
    ));
}

#[test]
fn api_routes_answer_503_with_retry_after() {
    let s = shield(DONATE);
    let api = s.route_id(SiteId(0), "api").unwrap();
    let mut f = facts("198.51.100.1", api, at(0.0));
    f.is_browser = false;
    let FloodVerdict::Continue { permit: Some(_p) } = s.admit(&f) else {
        panic!()
    };
    let mut f = facts("198.51.100.2", api, at(0.0));
    f.is_browser = true; // even a browser on an API route is not queued
    let cookie = cleared(&s, "198.51.100.2", s.admit(&f), at(0.0));
    f.clearance_cookie = Some(&cookie);
    match s.admit(&f) {
        FloodVerdict::Unavailable { retry_after_secs } => assert_eq!(retry_after_secs, 5),
        v => panic!("{v:?}"),
    }
}

/// Many threads enter and leave one gate: the cap is never exceeded and
/// every permit is returned.
#[test]
fn stress_gate_never_exceeds_its_cap() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    let g = Gate::new(3, 1000, Duration::from_secs(5), 1);
    let inside = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let hs: Vec<_> = (0..6)
        .map(|th| {
            let g = Arc::clone(&g);
            let inside = Arc::clone(&inside);
            let peak = Arc::clone(&peak);
            std::thread::spawn(move || {
                let mut ticket = None;
                let mut entered = 0;
                for i in 0..20_000u32 {
                    match g.try_enter(ticket, th % 2 == 0, at(f64::from(i) * 0.0001)) {
                        Admission::Enter(p) => {
                            let now_inside = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(now_inside, Ordering::SeqCst);
                            std::hint::spin_loop();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            drop(p);
                            ticket = None;
                            entered += 1;
                        }
                        Admission::Wait { ticket: t, .. } => ticket = Some(t),
                        Admission::Full => {}
                    }
                }
                entered
            })
        })
        .collect();
    let entered: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(entered > 0);
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert_eq!(g.in_flight(), 0);
}
