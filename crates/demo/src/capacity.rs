//! A fixed capacity for the demo site, for flood benchmarks: at most `C` requests are served in
//! any one wall-clock second and the rest get a quick 503, the way a small origin behind a
//! gateway falls over. The site counts what arrived per second so a benchmark can check that the
//! gateway in front never let more than `C` through.
//!
//! The counts are served as JSON at [`STATS_PATH`], which is not itself counted.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a site started with a capacity serves its counts.
pub const STATS_PATH: &str = "/.demo/stats";

/// Seconds of per-second history kept for [`STATS_PATH`]: ten minutes covers a benchmark run of
/// a few drills of a minute each, and costs 10 KiB.
const HISTORY_SECS: usize = 600;

/// The counter behind the capacity: one mutex, taken once per request. The demo site serves at
/// most a few thousand requests a second, where an uncontended lock costs nothing worth measuring.
pub(crate) struct Capacity {
    per_sec: u32,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// The Unix second being counted, and what arrived and was served in it.
    second: u64,
    arrived: u32,
    served: u32,
    total_arrived: u64,
    total_served: u64,
    max_arrived: u32,
    seconds_over: u64,
    /// Closed seconds, oldest first: (Unix second, arrived, served).
    history: VecDeque<(u64, u32, u32)>,
}

impl Counts {
    /// Moves the window to `now`, closing the second that was being counted.
    fn roll(&mut self, now: u64, per_sec: u32) {
        if now == self.second {
            return;
        }
        if self.arrived > 0 {
            if self.history.len() == HISTORY_SECS {
                self.history.pop_front();
            }
            self.history
                .push_back((self.second, self.arrived, self.served));
            if self.arrived > per_sec {
                self.seconds_over += 1;
            }
        }
        self.second = now;
        self.arrived = 0;
        self.served = 0;
    }
}

impl Capacity {
    pub(crate) fn new(per_sec: u32) -> Capacity {
        Capacity {
            per_sec,
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Counts one arriving request; true if it is within this second's capacity.
    pub(crate) fn admit(&self) -> bool {
        self.admit_at(unix_secs())
    }

    fn admit_at(&self, now: u64) -> bool {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.roll(now, self.per_sec);
        c.arrived += 1;
        c.total_arrived += 1;
        c.max_arrived = c.max_arrived.max(c.arrived);
        let within = c.arrived <= self.per_sec;
        if within {
            c.served += 1;
            c.total_served += 1;
        }
        within
    }

    /// The counts as JSON: totals, the busiest second, how many seconds had more arrivals than
    /// the capacity, and the per-second history (`[unix_second, arrived, served]`, the current
    /// second last).
    pub(crate) fn stats_json(&self) -> String {
        self.stats_json_at(unix_secs())
    }

    fn stats_json_at(&self, now: u64) -> String {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.roll(now, self.per_sec);
        let mut s = String::with_capacity(64 + c.history.len() * 24);
        let _ = write!(
            s,
            "{{\"capacity_per_sec\":{},\"arrived\":{},\"served\":{},\"refused\":{},\"max_arrived_in_a_second\":{},\"seconds_over_capacity\":{},\"now\":{},\"seconds\":[",
            self.per_sec,
            c.total_arrived,
            c.total_served,
            c.total_arrived - c.total_served,
            c.max_arrived,
            c.seconds_over + u64::from(c.arrived > self.per_sec),
            now,
        );
        let current = (c.arrived > 0).then_some((c.second, c.arrived, c.served));
        for (i, (sec, arrived, served)) in c.history.iter().chain(current.iter()).enumerate() {
            let comma = if i == 0 { "" } else { "," };
            let _ = write!(s, "{comma}[{sec},{arrived},{served}]");
        }
        s.push_str("]}");
        s
    }
}

/// The page for a request beyond the capacity.
pub(crate) const OVER_CAPACITY_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Overloaded</title></head>\
<body><h1>The server is overloaded</h1><p>Please try again in a moment.</p></body></html>\n";

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_capacity_per_second_and_counts_the_rest() {
        let cap = Capacity::new(3);
        let first: Vec<bool> = (0..5).map(|_| cap.admit_at(100)).collect();
        assert_eq!(first, [true, true, true, false, false]);
        assert!(cap.admit_at(101), "a new second has new capacity");
        let stats: serde_json::Value = serde_json::from_str(&cap.stats_json_at(102)).unwrap();
        assert_eq!(stats["arrived"], 6);
        assert_eq!(stats["served"], 4);
        assert_eq!(stats["refused"], 2);
        assert_eq!(stats["max_arrived_in_a_second"], 5);
        assert_eq!(stats["seconds_over_capacity"], 1);
        assert_eq!(
            stats["seconds"],
            serde_json::json!([[100, 5, 3], [101, 1, 1]])
        );
    }

    #[test]
    fn history_is_bounded() {
        let cap = Capacity::new(1);
        for sec in 0..(HISTORY_SECS as u64 + 50) {
            cap.admit_at(sec);
        }
        let stats: serde_json::Value = serde_json::from_str(&cap.stats_json_at(10_000)).unwrap();
        assert_eq!(stats["seconds"].as_array().unwrap().len(), HISTORY_SECS);
        assert_eq!(stats["seconds_over_capacity"], 0);
    }
}
