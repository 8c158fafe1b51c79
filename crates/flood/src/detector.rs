//! The attack detector of one site.
//!
//! Counting happens with atomics on the request path; once per bucket one
//! caller takes the lock, closes the bucket, compares it with the baseline and
//! runs the mode state machine. The mode itself is an atomic flag, so reading
//! it costs one load.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use foldhash::fast::FixedState;

use crate::addr::addr_bytes;
use crate::config::{DetectorConfig, ScheduleWindow};
use crate::error::{Error, ErrorKind};
use crate::stripe::Striped;
use crate::table::lock;
use crate::time::Time;

/// Bits in the distinct-client sketch. 4096 bits (512 bytes) count distinct
/// clients by linear counting up to about thirty thousand per bucket with a
/// few per cent error, far more resolution than switching needs.
const SKETCH_BITS: usize = 4096;
const SKETCH_WORDS: usize = SKETCH_BITS / 64;

const REQUESTS: usize = 0;
const RESPONSES: usize = 1;
const ERRORS: usize = 2;
const LATENCY: usize = 3;

/// Which metric left its baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Requests per second.
    RequestRate,
    /// Distinct clients per bucket.
    DistinctClients,
    /// Mean upstream latency in milliseconds.
    UpstreamLatency,
    /// Share of upstream responses that were errors.
    UpstreamErrors,
}

/// Why a site's mode changed.
#[derive(Clone, Debug, PartialEq)]
pub enum ModeReason {
    /// A metric stayed above its surge threshold for `enter_buckets` buckets.
    Surge {
        /// The metric that tripped first.
        metric: Metric,
        /// Its value in the last bucket.
        observed: f64,
        /// The threshold it exceeded.
        threshold: f64,
    },
    /// Every metric stayed calm for `leave_buckets` buckets.
    Calm,
    /// An operator switched the mode by hand.
    Manual,
    /// An operator handed control back to the detector and schedule.
    ManualCleared,
    /// A scheduled window began.
    ScheduleStart,
    /// A scheduled window ended.
    ScheduleEnd,
}

/// A schedule window in checked form.
#[derive(Clone, Copy, Debug)]
enum Window {
    Once {
        from: u64,
        until: u64,
    },
    /// Minutes after midnight UTC; `from > until` crosses midnight.
    Daily {
        from: u32,
        until: u32,
    },
}

impl Window {
    fn contains(&self, now: Time) -> bool {
        let secs = now.as_secs();
        match *self {
            Window::Once { from, until } => from <= secs && secs < until,
            Window::Daily { from, until } => {
                let minute = ((secs % 86_400) / 60) as u32;
                if from <= until {
                    from <= minute && minute < until
                } else {
                    minute >= from || minute < until
                }
            }
        }
    }
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn parse_window(w: &ScheduleWindow, site: &str) -> Result<Window, Error> {
    let bad = |why: String| {
        Error::new(
            ErrorKind::BadConfig,
            format!("site {site:?}: schedule window {w:?}: {why}"),
        )
    };
    match (w.from_unix, w.until_unix, &w.daily_utc) {
        (Some(from), Some(until), None) if from < until => Ok(Window::Once { from, until }),
        (Some(_), Some(_), None) => Err(bad("from_unix must be before until_unix".into())),
        (None, None, Some(d)) => {
            let (a, b) = d
                .split_once('-')
                .ok_or_else(|| bad("daily_utc must be \"HH:MM-HH:MM\"".into()))?;
            match (parse_hhmm(a), parse_hhmm(b)) {
                (Some(from), Some(until)) if from != until => Ok(Window::Daily { from, until }),
                _ => Err(bad(
                    "daily_utc must be \"HH:MM-HH:MM\" with two different times".into(),
                )),
            }
        }
        _ => Err(bad(
            "give either from_unix and until_unix, or daily_utc".into()
        )),
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rate: f64,
    clients: f64,
    latency_ms: f64,
    error_ratio: f64,
    responses: u64,
}

struct Machine {
    bucket: u64,
    baseline: Sample,
    learned: u32,
    hot_streak: u32,
    calm_streak: u32,
    auto: bool,
    scheduled: bool,
    manual: Option<bool>,
}

/// A mode change to report, produced by the detector.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeChange {
    /// Whether the site is now in under-attack mode.
    pub under_attack: bool,
    /// Why.
    pub reason: ModeReason,
}

pub(crate) struct Detector {
    cfg: DetectorConfig,
    bucket_nanos: u64,
    windows: Vec<Window>,
    bucket: AtomicU64,
    /// Requests, responses, upstream errors, latency in microseconds.
    counts: Striped<4>,
    sketch: [AtomicU64; SKETCH_WORDS],
    under_attack: AtomicBool,
    /// Last bucket's request rate over its threshold base, as `f32` bits; it
    /// drives the challenge difficulty.
    load: AtomicU32,
    machine: Mutex<Machine>,
}

impl Detector {
    pub(crate) fn new(
        cfg: &DetectorConfig,
        schedule: &[ScheduleWindow],
        site: &str,
    ) -> Result<Detector, Vec<Error>> {
        let mut errors = Vec::new();
        let bad = |why: &str| {
            Error::new(
                ErrorKind::BadConfig,
                format!("site {site:?}: detector: {why}"),
            )
        };
        if cfg.bucket_secs == 0 {
            errors.push(bad("bucket_secs must be at least 1"));
        }
        if !(cfg.baseline_weight > 0.0 && cfg.baseline_weight <= 1.0) {
            errors.push(bad("baseline_weight must be in (0, 1]"));
        }
        if cfg.leave_factor
            > cfg
                .rate_factor
                .min(cfg.clients_factor)
                .min(cfg.latency_factor)
        {
            errors.push(bad(
                "leave_factor must not exceed the surge factors, or the mode would flap",
            ));
        }
        if cfg.enter_buckets == 0 || cfg.leave_buckets == 0 {
            errors.push(bad("enter_buckets and leave_buckets must be at least 1"));
        }
        let mut windows = Vec::with_capacity(schedule.len());
        for w in schedule {
            match parse_window(w, site) {
                Ok(w) => windows.push(w),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Detector {
            cfg: cfg.clone(),
            bucket_nanos: u64::from(cfg.bucket_secs) * 1_000_000_000,
            windows,
            bucket: AtomicU64::new(0),
            counts: Striped::default(),
            sketch: [const { AtomicU64::new(0) }; SKETCH_WORDS],
            under_attack: AtomicBool::new(false),
            load: AtomicU32::new(0f32.to_bits()),
            machine: Mutex::new(Machine {
                bucket: 0,
                baseline: Sample::default(),
                learned: 0,
                hot_streak: 0,
                calm_streak: 0,
                auto: false,
                scheduled: false,
                manual: None,
            }),
        })
    }

    /// Whether the site is in under-attack mode now.
    #[inline]
    pub(crate) fn under_attack(&self) -> bool {
        self.under_attack.load(Ordering::Relaxed)
    }

    /// Last bucket's load: request rate over the surge threshold's base (the
    /// larger of baseline and `min_rate`). 1.0 is "as busy as ever".
    pub(crate) fn load(&self) -> f32 {
        f32::from_bits(self.load.load(Ordering::Relaxed))
    }

    /// Counts one request. Returns mode changes if this call closed a bucket.
    #[inline]
    pub(crate) fn record_request(
        &self,
        client: IpAddr,
        now: Time,
        out: &mut impl FnMut(ModeChange),
    ) {
        self.roll(now, out);
        self.counts.add(REQUESTS, 1);
        let h = FixedState::with_seed(0x5eed).hash_one(addr_bytes(client));
        let bit = (h as usize) % SKETCH_BITS;
        let word = &self.sketch[bit / 64];
        let mask = 1 << (bit % 64);
        // Read before writing: once a bit is set, later requests from the
        // same client only read the line, which cores can share.
        if word.load(Ordering::Relaxed) & mask == 0 {
            word.fetch_or(mask, Ordering::Relaxed);
        }
    }

    /// Counts one upstream response.
    pub(crate) fn record_response(
        &self,
        latency: Duration,
        upstream_error: bool,
        now: Time,
        out: &mut impl FnMut(ModeChange),
    ) {
        self.roll(now, out);
        self.counts.add(RESPONSES, 1);
        if upstream_error {
            self.counts.add(ERRORS, 1);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts.add(LATENCY, micros);
    }

    /// Closes finished buckets and applies the schedule; the gateway calls it
    /// about once a second through `Shield::tick` so a site whose traffic
    /// stopped still leaves under-attack mode.
    pub(crate) fn roll(&self, now: Time, out: &mut impl FnMut(ModeChange)) {
        let idx = now.as_nanos() / self.bucket_nanos;
        if self.bucket.load(Ordering::Relaxed) == idx {
            return;
        }
        let mut m = lock(&self.machine);
        let prev = self.bucket.load(Ordering::Relaxed);
        if prev == idx {
            return;
        }
        // Take the closed bucket's counters. Requests counted by other threads
        // between this swap and the bucket store land in the next bucket,
        // which is harmless for statistics.
        let requests = self.counts.take(REQUESTS);
        let responses = self.counts.take(RESPONSES);
        let errors = self.counts.take(ERRORS);
        let latency = self.counts.take(LATENCY);
        let mut zeros = 0u32;
        for w in &self.sketch {
            zeros += w.swap(0, Ordering::Relaxed).count_zeros();
        }
        self.bucket.store(idx, Ordering::Relaxed);
        let before = self.effective(&m);
        if prev != 0 && idx > prev {
            let secs = f64::from(self.cfg.bucket_secs);
            let closed = Sample {
                rate: requests as f64 / secs,
                clients: distinct(zeros),
                latency_ms: if responses > 0 {
                    latency as f64 / responses as f64 / 1000.0
                } else {
                    0.0
                },
                error_ratio: if responses > 0 {
                    errors as f64 / responses as f64
                } else {
                    0.0
                },
                responses,
            };
            let mut reason = self.judge(&mut m, closed);
            // Buckets with no traffic at all count as calm, up to the number
            // needed to leave under-attack mode; more would change nothing.
            let idle = (idx - prev - 1).min(u64::from(self.cfg.leave_buckets));
            for _ in 0..idle {
                if let Some(r) = self.judge(&mut m, Sample::default()) {
                    reason = Some(r);
                }
            }
            m.bucket = idx;
            self.finish(&mut m, before, reason, now, out);
        } else {
            m.bucket = idx;
            self.finish(&mut m, before, None, now, out);
        }
    }

    fn finish(
        &self,
        m: &mut Machine,
        before: bool,
        reason: Option<ModeReason>,
        now: Time,
        out: &mut impl FnMut(ModeChange),
    ) {
        let scheduled = self.windows.iter().any(|w| w.contains(now));
        let schedule_changed = scheduled != m.scheduled;
        m.scheduled = scheduled;
        let after = self.effective(m);
        self.under_attack.store(after, Ordering::Relaxed);
        if after != before {
            let reason = if schedule_changed {
                if scheduled {
                    ModeReason::ScheduleStart
                } else {
                    ModeReason::ScheduleEnd
                }
            } else {
                reason.unwrap_or(ModeReason::Calm)
            };
            out(ModeChange {
                under_attack: after,
                reason,
            });
        }
    }

    fn effective(&self, m: &Machine) -> bool {
        m.manual.unwrap_or(m.auto || m.scheduled)
    }

    /// Runs one closed bucket through the state machine; returns the reason
    /// if the automatic mode changed.
    fn judge(&self, m: &mut Machine, s: Sample) -> Option<ModeReason> {
        let c = &self.cfg;
        let b = m.baseline;
        let rate_base = b.rate.max(c.min_rate / c.rate_factor);
        self.load.store(
            ((s.rate / rate_base.max(f64::MIN_POSITIVE)) as f32).to_bits(),
            Ordering::Relaxed,
        );
        if !c.enabled {
            return None;
        }
        if m.learned < c.warmup_buckets {
            m.learned += 1;
            self.learn(m, s, 1.0 / f64::from(m.learned));
            return None;
        }
        let thresholds = [
            (
                Metric::RequestRate,
                s.rate,
                (b.rate * c.rate_factor).max(c.min_rate),
                true,
            ),
            (
                Metric::DistinctClients,
                s.clients,
                (b.clients * c.clients_factor).max(c.min_clients),
                true,
            ),
            (
                Metric::UpstreamLatency,
                s.latency_ms,
                (b.latency_ms * c.latency_factor).max(c.min_latency_ms),
                s.responses >= c.min_responses,
            ),
            (
                Metric::UpstreamErrors,
                s.error_ratio,
                c.error_ratio,
                s.responses >= c.min_responses,
            ),
        ];
        let surge = thresholds.iter().find(|(_, v, t, counts)| *counts && v > t);
        if !m.auto {
            match surge {
                Some(&(metric, observed, threshold, _)) => {
                    m.hot_streak += 1;
                    if m.hot_streak >= c.enter_buckets {
                        m.auto = true;
                        m.hot_streak = 0;
                        m.calm_streak = 0;
                        return Some(ModeReason::Surge {
                            metric,
                            observed,
                            threshold,
                        });
                    }
                }
                None => {
                    m.hot_streak = 0;
                    self.learn(m, s, c.baseline_weight);
                }
            }
            return None;
        }
        let calm = s.rate <= (b.rate * c.leave_factor).max(c.min_rate)
            && s.clients <= (b.clients * c.leave_factor).max(c.min_clients)
            && (s.responses < c.min_responses
                || (s.latency_ms <= (b.latency_ms * c.leave_factor).max(c.min_latency_ms)
                    && s.error_ratio <= c.error_ratio / 2.0));
        if calm {
            m.calm_streak += 1;
            if m.calm_streak >= c.leave_buckets {
                m.auto = false;
                m.calm_streak = 0;
                return Some(ModeReason::Calm);
            }
        } else {
            m.calm_streak = 0;
        }
        None
    }

    fn learn(&self, m: &mut Machine, s: Sample, w: f64) {
        let b = &mut m.baseline;
        b.rate += w * (s.rate - b.rate);
        b.clients += w * (s.clients - b.clients);
        if s.responses > 0 {
            b.latency_ms += w * (s.latency_ms - b.latency_ms);
            b.error_ratio += w * (s.error_ratio - b.error_ratio);
        }
    }

    /// Sets or clears the manual override; returns the change, if any.
    pub(crate) fn set_manual(
        &self,
        manual: Option<bool>,
        now: Time,
        out: &mut impl FnMut(ModeChange),
    ) {
        let mut m = lock(&self.machine);
        let before = self.effective(&m);
        m.manual = manual;
        let reason = if manual.is_some() {
            ModeReason::Manual
        } else {
            ModeReason::ManualCleared
        };
        let scheduled = self.windows.iter().any(|w| w.contains(now));
        m.scheduled = scheduled;
        let after = self.effective(&m);
        self.under_attack.store(after, Ordering::Relaxed);
        if before != after {
            out(ModeChange {
                under_attack: after,
                reason,
            });
        }
    }
}

/// Linear-counting estimate of distinct items from the number of zero bits.
fn distinct(zeros: u32) -> f64 {
    let m = SKETCH_BITS as f64;
    let z = f64::from(zeros.max(1));
    m * (m / z).ln()
}
