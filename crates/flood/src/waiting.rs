//! Concurrency caps and the waiting room of one route.
//!
//! A gate counts requests in flight to the upstream. While there is room and
//! nobody is queued, requests go straight through with a `Permit`, released
//! when the gateway drops it at the end of the upstream request. Beyond the
//! cap, browsers take a numbered ticket and are let in first come, first
//! served as they refresh the waiting-room page; API clients get 503.
//!
//! A freed slot is kept for the queue, not given to newcomers, so it stays
//! idle until a ticket holder near the head refreshes. To keep that short,
//! holders within one capacity's worth of the head are told to refresh every
//! second; the rest refresh at the configured, slower interval.
//!
//! A ticket whose holder stops refreshing (closed tab) goes stale after three
//! missed refreshes and no longer holds anyone up. The queue is bounded;
//! beyond it browsers get 503 as well.
//!
//! A gate's cap may change while it runs ([`Gate::set_limits`]): the site's
//! learned capacity moves it, and may add a ceiling on requests per second
//! (a token bucket refilled continuously) for an upstream that refuses work
//! quickly rather than slowing down. A request enters only when both allow.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::table::lock;
use crate::time::Time;

#[derive(Clone, Copy, Debug)]
struct Waiter {
    ticket: u64,
    /// After this the holder counts as gone.
    deadline: Time,
    admitted: bool,
}

struct Queue {
    cap: u32,
    in_flight: u32,
    /// Of those in flight, requests whose body is still arriving: they
    /// hold no place against the cap until it has (see
    /// [`Permit::hold_for_body`]).
    uploading: u32,
    /// The most requests in flight at once since the last `take_peak`.
    peak: u32,
    /// Requests a second, if the gate has a rate ceiling.
    rate: Option<f64>,
    /// Tokens in the rate bucket and when it was last refilled.
    tokens: f64,
    refilled: Time,
    next_ticket: u64,
    waiters: VecDeque<Waiter>,
}

impl Queue {
    fn refill(&mut self, now: Time) {
        if let Some(rate) = self.rate {
            let secs = now.since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + secs * rate).min(burst(rate));
        }
        self.refilled = self.refilled.max(now);
    }

    /// Requests that may start now: room under the cap and, with a rate
    /// ceiling, whole tokens in the bucket.
    fn free(&self) -> u32 {
        let room = self.cap.saturating_sub(self.working());
        match self.rate {
            Some(_) => room.min(self.tokens.max(0.0) as u32),
            None => room,
        }
    }

    /// Requests in flight that count against the cap.
    fn working(&self) -> u32 {
        self.in_flight.saturating_sub(self.uploading)
    }

    fn enter(&mut self) {
        self.in_flight += 1;
        self.peak = self.peak.max(self.working());
        if self.rate.is_some() {
            self.tokens -= 1.0;
        }
    }
}

/// The bucket of a rate ceiling holds a tenth of a second's worth, at least
/// one: an upstream that counts its capacity per second then never sees more
/// than the ceiling and a tenth in any one second.
fn burst(rate: f64) -> f64 {
    (rate / 10.0).max(1.0)
}

/// The in-flight cap and queue of one route, or of a site's learned
/// capacity.
pub struct Gate {
    queue_cap: usize,
    refresh: Duration,
    /// Distinguishes this queue's tickets from those of an earlier process,
    /// whose numbers would mean nothing here.
    pub(crate) epoch: u64,
    queue: Mutex<Queue>,
}

/// Permission to send one request upstream; dropping it frees the slot.
/// Keep it in the request context until the upstream response is finished.
pub struct Permit {
    gate: Arc<Gate>,
    uploading: bool,
}

impl Permit {
    fn new(gate: &Arc<Gate>) -> Permit {
        Permit {
            gate: Arc::clone(gate),
            uploading: false,
        }
    }

    /// The request's body is still to come: until [`Permit::body_complete`]
    /// the request holds no place against the cap. A client dripping a body
    /// costs the upstream nothing yet, and counting it would let a few slow
    /// uploads fill the gate and turn every other visitor away.
    pub fn hold_for_body(&mut self) {
        if !self.uploading {
            self.uploading = true;
            lock(&self.gate.queue).uploading += 1;
        }
    }

    /// The whole body has arrived: the request counts against the cap from
    /// now on (the gate may go over its cap by the uploads finishing at
    /// once, which is the price of not holding places for slow ones).
    pub fn body_complete(&mut self) {
        if self.uploading {
            self.uploading = false;
            let mut q = lock(&self.gate.queue);
            q.uploading = q.uploading.saturating_sub(1);
            q.peak = q.peak.max(q.working());
        }
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("cap", &lock(&self.gate.queue).cap)
            .finish()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut q = lock(&self.gate.queue);
        q.in_flight = q.in_flight.saturating_sub(1);
        if self.uploading {
            q.uploading = q.uploading.saturating_sub(1);
        }
    }
}

/// What a gate decided.
#[derive(Debug)]
pub enum Admission {
    /// Go ahead.
    Enter(Permit),
    /// Wait in the queue with this ticket, at this position (1 is next).
    Wait {
        /// The ticket number to keep in the ticket cookie.
        ticket: u64,
        /// Live tickets ahead of this one, plus one.
        position: u32,
        /// When to refresh: soon near the head of the queue, at the
        /// configured interval further back.
        refresh: Duration,
    },
    /// No room in the queue either (or an API client at capacity).
    Full,
}

impl Gate {
    /// A gate letting `cap` requests through at once, queueing up to
    /// `queue_cap` browsers that refresh every `refresh`.
    pub fn new(cap: u32, queue_cap: u32, refresh: Duration, epoch: u64) -> Arc<Gate> {
        let queue_cap = queue_cap as usize;
        Arc::new(Gate {
            queue_cap,
            refresh,
            epoch,
            queue: Mutex::new(Queue {
                cap: cap.max(1),
                in_flight: 0,
                uploading: 0,
                peak: 0,
                rate: None,
                tokens: 0.0,
                refilled: Time::from_nanos(0),
                next_ticket: 1,
                waiters: VecDeque::with_capacity(queue_cap.min(4096)),
            }),
        })
    }

    /// Seconds between waiting-room refreshes.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> u32 {
        lock(&self.queue).in_flight
    }

    /// The concurrency cap and the rate ceiling (requests a second), if any.
    pub fn limits(&self) -> (u32, Option<f64>) {
        let q = lock(&self.queue);
        (q.cap, q.rate)
    }

    /// Moves the cap and the rate ceiling. A new ceiling starts with a full
    /// bucket; requests already in flight are not affected.
    pub fn set_limits(&self, cap: u32, rate: Option<f64>, now: Time) {
        let mut q = lock(&self.queue);
        q.refill(now);
        q.cap = cap.max(1);
        let rate = rate.filter(|r| r.is_finite() && *r > 0.0);
        if q.rate.is_none() && rate.is_some() {
            q.tokens = rate.map_or(0.0, burst);
            q.refilled = now;
        }
        q.rate = rate;
        if let Some(r) = rate {
            q.tokens = q.tokens.min(burst(r));
        }
    }

    /// The most requests in flight at once since the last call.
    pub fn take_peak(&self) -> u32 {
        let mut q = lock(&self.queue);
        let peak = q.peak.max(q.working());
        q.peak = q.working();
        peak
    }

    /// Whether a client without clearance must be turned away (challenged)
    /// rather than let in: live tickets are waiting, or what is free is
    /// within the share kept for cleared clients (a quarter of the cap, and
    /// half the rate bucket when it holds two or more). Without that share a
    /// flood of new addresses would take every slot and token the moment it
    /// freed, and cleared visitors would queue behind it.
    pub fn busy(&self, now: Time) -> bool {
        let mut q = lock(&self.queue);
        q.refill(now);
        let room = q.cap.saturating_sub(q.working());
        let tokens_short = q.rate.is_some_and(|r| {
            let b = burst(r);
            let kept = if b >= 2.0 { b / 2.0 } else { 0.0 };
            q.tokens < 1.0 + kept
        });
        room <= q.cap / 4
            || tokens_short
            || q.waiters.iter().any(|w| !w.admitted && now <= w.deadline)
    }

    /// Tickets in the queue now, stale ones included until pruned.
    pub fn queued(&self) -> usize {
        lock(&self.queue).waiters.len()
    }

    /// A permit regardless of the cap, for allowlisted clients: they must
    /// never wait, but their requests still count against the cap so that
    /// everyone else's view of the upstream's load stays true.
    pub fn force(self: &Arc<Gate>) -> Permit {
        lock(&self.queue).enter();
        Permit::new(self)
    }

    /// Asks to enter. `ticket` is the client's ticket from an earlier visit;
    /// `browser` says whether it can wait in the queue at all.
    pub fn try_enter(self: &Arc<Gate>, ticket: Option<u64>, browser: bool, now: Time) -> Admission {
        let mut q = lock(&self.queue);
        q.refill(now);
        let stale = |w: &Waiter| now > w.deadline;
        while q.waiters.front().is_some_and(|w| w.admitted || stale(w)) {
            q.waiters.pop_front();
        }
        let free = q.free();
        let cap = q.cap;

        if let Some(t) = ticket {
            if let Ok(idx) = q.waiters.binary_search_by_key(&t, |w| w.ticket) {
                if !q.waiters[idx].admitted {
                    let ahead = q
                        .waiters
                        .iter()
                        .take(idx)
                        .filter(|w| !w.admitted && !stale(w))
                        .count() as u32;
                    if ahead < free {
                        q.waiters[idx].admitted = true;
                        q.enter();
                        return Admission::Enter(Permit::new(self));
                    }
                    let refresh = self.refresh_for(ahead + 1, cap);
                    q.waiters[idx].deadline = deadline(now, refresh);
                    return Admission::Wait {
                        ticket: t,
                        position: ahead + 1,
                        refresh,
                    };
                }
            }
            // An unknown ticket (stale and pruned, or already used) joins at
            // the back like a newcomer.
        }

        if q.waiters.is_empty() && free > 0 {
            q.enter();
            return Admission::Enter(Permit::new(self));
        }
        if !browser {
            return Admission::Full;
        }
        if q.waiters.len() >= self.queue_cap {
            q.waiters.retain(|w| !w.admitted && !stale(w));
            if q.waiters.len() >= self.queue_cap {
                return Admission::Full;
            }
        }
        let t = q.next_ticket;
        q.next_ticket += 1;
        let position = q
            .waiters
            .iter()
            .filter(|w| !w.admitted && !stale(w))
            .count() as u32
            + 1;
        let refresh = self.refresh_for(position, cap);
        q.waiters.push_back(Waiter {
            ticket: t,
            deadline: deadline(now, refresh),
            admitted: false,
        });
        Admission::Wait {
            ticket: t,
            position,
            refresh,
        }
    }

    /// Holders within one capacity's worth of the head refresh every second,
    /// so a freed slot is claimed within about a second.
    fn refresh_for(&self, position: u32, cap: u32) -> Duration {
        if position <= cap {
            self.refresh.min(Duration::from_secs(1))
        } else {
            self.refresh
        }
    }
}

/// Three missed refreshes: a slow phone on a train may miss one or two, a
/// closed tab misses them all.
fn deadline(now: Time, refresh: Duration) -> Time {
    now.plus(refresh.saturating_mul(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_still_arriving_hold_no_place() {
        let g = Gate::new(2, 100, Duration::from_secs(5), 1);
        let t0 = Time::from_secs(1000);
        let mut uploads: Vec<Permit> = (0..5)
            .map(|_| {
                let Admission::Enter(mut p) = g.try_enter(None, true, t0) else {
                    panic!("an upload that has not started its body is let in");
                };
                p.hold_for_body();
                p
            })
            .collect();
        // Five slow uploads, and the gate still has room for others.
        assert!(!g.busy(t0));
        let Admission::Enter(_reader) = g.try_enter(None, true, t0) else {
            panic!("a page request waits behind uploads");
        };
        // Bodies that have arrived count: the gate is now over its cap.
        for p in &mut uploads {
            p.body_complete();
        }
        assert!(g.busy(t0));
        assert!(matches!(
            g.try_enter(None, true, t0),
            Admission::Wait { .. }
        ));
        drop(uploads);
        assert_eq!(g.in_flight(), 1);
    }

    #[test]
    fn head_of_queue_refreshes_faster() {
        let g = Gate::new(2, 100, Duration::from_secs(5), 1);
        let t0 = Time::from_secs(1000);
        let _a = g.try_enter(None, true, t0);
        let _b = g.try_enter(None, true, t0);
        let refreshes: Vec<u64> = (0..4)
            .map(|_| match g.try_enter(None, true, t0) {
                Admission::Wait { refresh, .. } => refresh.as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(refreshes, vec![1, 1, 5, 5]);
    }
}
