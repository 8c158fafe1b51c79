//! The last hour of traffic, one point per second: what the dashboard's
//! chart starts from and what the live stream sends.
//!
//! The gateway's clock already takes each site's counts once a second (for
//! the event store); it hands the same counts here. Reading never blocks
//! the clock for long: a point is a few dozen bytes and a window a copy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Points kept: one hour at one per second.
pub const POINTS_KEPT: usize = 3600;

/// Requests in one second by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub requests: u64,
    pub passed: u64,
    pub blocked: u64,
    pub challenged: u64,
    pub limited: u64,
    pub upstream_errors: u64,
}

impl Counts {
    /// From a traffic sample as the event store keeps it; `None` for any
    /// other kind of event.
    pub fn from_sample(kind: &rampart_incidents::EventKind) -> Option<Counts> {
        let rampart_incidents::EventKind::Traffic {
            requests,
            blocked,
            challenged,
            limited,
            upstream_errors,
            ..
        } = *kind
        else {
            return None;
        };
        let refused = u64::from(blocked)
            + u64::from(challenged)
            + u64::from(limited)
            + u64::from(upstream_errors);
        Some(Counts {
            requests: requests.into(),
            passed: u64::from(requests).saturating_sub(refused),
            blocked: blocked.into(),
            challenged: challenged.into(),
            limited: limited.into(),
            upstream_errors: upstream_errors.into(),
        })
    }

    fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.passed += other.passed;
        self.blocked += other.blocked;
        self.challenged += other.challenged;
        self.limited += other.limited;
        self.upstream_errors += other.upstream_errors;
    }
}

/// One second of traffic: all sites, and each site that saw any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Point {
    /// Unix milliseconds at the end of the second.
    pub at: i64,
    #[serde(flatten)]
    pub total: Counts,
    #[serde(skip)]
    pub sites: Vec<(Arc<str>, Counts)>,
}

/// The ring of recent points.
#[derive(Default)]
pub struct LiveTraffic {
    points: Mutex<VecDeque<Point>>,
}

impl LiveTraffic {
    /// Adds the second ending at `at`, from each site's counts.
    pub fn push(&self, at: i64, sites: Vec<(Arc<str>, Counts)>) {
        let mut total = Counts::default();
        for (_, c) in &sites {
            total.add(c);
        }
        let mut points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        if points.len() == POINTS_KEPT {
            points.pop_front();
        }
        points.push_back(Point { at, total, sites });
    }

    /// The points after `since` (Unix milliseconds), oldest first, summed
    /// over every site or for one.
    pub fn window(&self, since: i64, site: Option<&str>) -> Vec<Point> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        points
            .iter()
            .filter(|p| p.at > since)
            .map(|p| match site {
                None => Point {
                    at: p.at,
                    total: p.total,
                    sites: Vec::new(),
                },
                Some(name) => Point {
                    at: p.at,
                    total: p
                        .sites
                        .iter()
                        .find(|(n, _)| &**n == name)
                        .map(|(_, c)| *c)
                        .unwrap_or_default(),
                    sites: Vec::new(),
                },
            })
            .collect()
    }

    /// The newest point, if any.
    pub fn latest(&self) -> Option<Point> {
        let points = self.points.lock().unwrap_or_else(|p| p.into_inner());
        points.back().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, blocked: u64) -> Counts {
        Counts {
            requests,
            passed: requests - blocked,
            blocked,
            ..Counts::default()
        }
    }

    #[test]
    fn points_sum_the_sites_and_a_window_can_take_one_site() {
        let live = LiveTraffic::default();
        let a: Arc<str> = "campaign".into();
        let b: Arc<str> = "donate".into();
        live.push(
            1_000,
            vec![(a.clone(), counts(10, 2)), (b.clone(), counts(5, 0))],
        );
        live.push(2_000, vec![(b.clone(), counts(7, 7))]);
        let all = live.window(0, None);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].total, counts(15, 2));
        assert_eq!(live.window(1_000, None).len(), 1);
        let one = live.window(0, Some("campaign"));
        assert_eq!(one[0].total, counts(10, 2));
        assert_eq!(one[1].total, Counts::default());
        assert_eq!(live.latest().unwrap().at, 2_000);
    }

    #[test]
    fn the_ring_keeps_an_hour() {
        let live = LiveTraffic::default();
        for i in 0..(POINTS_KEPT as i64 + 10) {
            live.push(i * 1000, Vec::new());
        }
        let all = live.window(i64::MIN, None);
        assert_eq!(all.len(), POINTS_KEPT);
        assert_eq!(all[0].at, 10_000);
    }

    #[test]
    fn a_sample_splits_into_passed_and_refused() {
        let kind = rampart_incidents::EventKind::Traffic {
            window_ms: 1000,
            requests: 20,
            blocked: 3,
            challenged: 2,
            limited: 1,
            upstream_errors: 4,
        };
        let c = Counts::from_sample(&kind).unwrap();
        assert_eq!((c.requests, c.passed, c.blocked), (20, 10, 3));
        assert!(Counts::from_sample(&rampart_incidents::EventKind::Challenged).is_none());
    }
}
