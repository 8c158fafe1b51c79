//! The attack detector of one site, and the site's learned capacity.
//!
//! Counting happens with atomics on the request path; once a second one
//! caller takes the lock and closes the second. Two kinds of signal switch a
//! site into under-attack mode:
//!
//! - **Distress**, judged every second with no baseline: upstream errors,
//!   upstream latency far above its last few seconds, or requests turned
//!   away for capacity outnumbering what the upstream served. Enough
//!   seconds in a row (`fast_enter`, two seconds by default) switch the site,
//!   so a flood is met within three seconds of its start even on a gateway
//!   started during it.
//! - **Surges** against the learned baseline (request rate, distinct
//!   clients, latency, errors), judged per bucket of `bucket`, after
//!   `warmup_buckets` buckets of learning. Seconds of distress and buckets
//!   under attack are never learned.
//!
//! Leaving needs `leave_buckets` calm buckets. The same second also moves
//! the site's learned capacity (see `adjust_capacity`). What is learned can be
//! saved and restored across restarts ([`Learned`]). The mode itself is an
//! atomic flag, so reading it costs one load.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::fast::FixedState;

use crate::addr::addr_bytes;
use crate::config::{DetectorConfig, ScheduleWindow};
use crate::error::{Error, ErrorKind};
use crate::stripe::Striped;
use crate::table::lock;
use crate::time::Time;
use crate::waiting::Gate;

/// Bits in the distinct-client sketch. 4096 bits (512 bytes) count distinct
/// clients by linear counting up to about thirty thousand per bucket with a
/// few per cent error, far more resolution than switching needs.
const SKETCH_BITS: usize = 4096;
const SKETCH_WORDS: usize = SKETCH_BITS / 64;

const REQUESTS: usize = 0;
const RESPONSES: usize = 1;
const ERRORS: usize = 2;
const LATENCY: usize = 3;
const OVERLOADED: usize = 4;
const TURNED_AWAY: usize = 5;

/// One window of the fast signals: a second. Long enough to hold a few
/// dozen responses of a small site, short enough that two windows in a row
/// switch a site within three seconds of a flood's start.
const WINDOW_NANOS: u64 = 1_000_000_000;

/// Which metric left its baseline, or showed the upstream in distress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Requests per second.
    RequestRate,
    /// Distinct clients per bucket.
    DistinctClients,
    /// Mean upstream latency in milliseconds.
    UpstreamLatency,
    /// Share of upstream responses that were errors.
    UpstreamErrors,
    /// Requests turned away for the upstream's capacity in one second, above
    /// the responses the upstream gave in it: arrivals far above what the
    /// upstream is serving.
    OverCapacity,
}

/// Why a site's mode changed. In an event it is an object whose `kind` is
/// the variant's snake-case name.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    /// The upstream showed distress for `fast_enter` in a row:
    /// errors, latency far above a few seconds before, or arrivals far above
    /// what it serves. Needs no baseline.
    Distress {
        /// The signal of the last second.
        metric: Metric,
        /// Its value in that second.
        observed: f64,
        /// The threshold it exceeded.
        threshold: f64,
    },
    /// The gateway restarted during an attack and took the mode up again from
    /// its saved state.
    Restored,
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

/// The counts of one second.
#[derive(Clone, Copy, Debug, Default)]
struct Second {
    requests: u64,
    responses: u64,
    errors: u64,
    overloaded: u64,
    latency_us: u64,
    turned_away: u64,
}

impl Second {
    fn latency_ms(&self) -> f64 {
        if self.responses > 0 {
            self.latency_us as f64 / self.responses as f64 / 1000.0
        } else {
            0.0
        }
    }

    fn add(&mut self, o: &Second) {
        self.requests += o.requests;
        self.responses += o.responses;
        self.errors += o.errors;
        self.overloaded += o.overloaded;
        self.latency_us += o.latency_us;
        self.turned_away += o.turned_away;
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    rate: f64,
    clients: f64,
    latency_ms: f64,
    error_ratio: f64,
    responses: u64,
    turned_away: u64,
    requests: u64,
}

/// What the detector has learned of a site, to keep across restarts: the
/// baseline, the recent latency, the upstream's capacity and whether the
/// site was under attack.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Learned {
    /// Baseline requests per second.
    pub rate: f64,
    /// Baseline distinct clients per bucket.
    pub clients: f64,
    /// Baseline mean upstream latency, milliseconds.
    pub latency_ms: f64,
    /// Baseline share of upstream errors.
    pub error_ratio: f64,
    /// Buckets learned; switching on the baseline starts at `warmup_buckets`.
    pub buckets: u32,
    /// The upstream's recent latency in milliseconds (seconds-long memory).
    pub recent_latency_ms: f64,
    /// The learned concurrency limit.
    pub capacity_in_flight: f64,
    /// The learned ceiling on requests per second, once the upstream has
    /// shown where it overloads.
    pub capacity_per_sec: Option<f64>,
    /// The upstream's latency without queueing, the limit's reference.
    pub capacity_latency_ms: f64,
    /// Whether the site was in automatic under-attack mode.
    pub under_attack: bool,
    /// When this was taken, seconds since the Unix epoch.
    pub saved_at: u64,
}

/// A site taken up again in under-attack mode at start only if its state
/// was saved this recently: a restart in the middle of an attack, not a
/// start the next morning.
const RESUME_WITHIN_SECS: u64 = 120;

/// The learned concurrency limit never goes below this (a slow upstream
/// still serves a few visitors at once) or above [`MAX_IN_FLIGHT`].
const MIN_IN_FLIGHT: f64 = 4.0;
const MAX_IN_FLIGHT: f64 = 10_000.0;

/// The concurrency limit before anything is learned: enough for a small
/// site's busiest minute, and it grows when used.
pub const INITIAL_IN_FLIGHT: f64 = 64.0;

/// The upstream's latency may double before the limit shrinks: the gradient
/// of a gradient limiter, with room for ordinary jitter.
const LATENCY_TOLERANCE: f64 = 2.0;

/// Seconds after an overload before the capacity is probed upwards again.
const HOLD_AFTER_OVERLOAD: u32 = 5;

/// The upstream's capacity as the detector learns it, and where it sends
/// the result.
struct Capacity {
    gate: Arc<Gate>,
    in_flight: f64,
    per_sec: Option<f64>,
    latency_ms: f64,
    hold: u32,
    /// Requests a second the upstream served in recent healthy seconds.
    served: f64,
}

struct Machine {
    window: u64,
    /// The seconds of the slow bucket being filled, and how many.
    bucket: Second,
    bucket_windows: u32,
    /// A second of the bucket showed distress; the bucket is then never
    /// learned and never calm.
    bucket_distress: bool,
    baseline: Learned,
    hot_streak: u32,
    calm_streak: u32,
    distress_streak: u32,
    auto: bool,
    scheduled: bool,
    manual: Option<bool>,
    capacity: Option<Capacity>,
}

/// A mode change to report, produced by the detector.
#[derive(Clone, Debug, PartialEq)]
pub struct ModeChange {
    /// Whether the site is now in under-attack mode.
    pub under_attack: bool,
    /// Why.
    pub reason: ModeReason,
}

/// What the gateway saw of one upstream response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// An answer that is not a server error.
    Served,
    /// A server error that says nothing of load (500, 501…): a broken page.
    Failed,
    /// The upstream could not take the request: 502, 503, 504, 429, or no
    /// connection or answer in time. The capacity learns from these.
    Overloaded,
}

impl UpstreamOutcome {
    /// The outcome of an upstream status (`0` when no response came).
    pub fn of_status(status: u16) -> UpstreamOutcome {
        match status {
            0 | 429 | 502 | 503 | 504 => UpstreamOutcome::Overloaded,
            500..=599 => UpstreamOutcome::Failed,
            _ => UpstreamOutcome::Served,
        }
    }
}

pub(crate) struct Detector {
    cfg: DetectorConfig,
    bucket_windows: u32,
    windows: Vec<Window>,
    window: AtomicU64,
    counts: Striped<6>,
    sketch: [AtomicU64; SKETCH_WORDS],
    under_attack: AtomicBool,
    /// Last second's arrivals over what the site normally serves, as `f32`
    /// bits; it drives the challenge difficulty.
    load: AtomicU32,
    machine: Mutex<Machine>,
}

impl Detector {
    /// A detector; `capacity` is the site's learned-capacity gate, which
    /// the detector moves every second (none when the limit is configured).
    pub(crate) fn new(
        cfg: &DetectorConfig,
        schedule: &[ScheduleWindow],
        site: &str,
        capacity: Option<Arc<Gate>>,
    ) -> Result<Detector, Vec<Error>> {
        let mut errors = Vec::new();
        let bad = |why: &str| {
            Error::new(
                ErrorKind::BadConfig,
                format!("site {site:?}: detector: {why}"),
            )
        };
        // Buckets are made of the clock's one-second windows.
        let bucket_windows = u32::try_from(cfg.bucket.as_secs()).unwrap_or(u32::MAX);
        if bucket_windows == 0 || cfg.bucket.subsec_nanos() != 0 {
            errors.push(bad(
                "bucket must be a whole number of seconds, at least \"1s\"",
            ));
        }
        if cfg.fast_enter.subsec_nanos() != 0 {
            errors.push(bad("fast_enter must be a whole number of seconds"));
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
            bucket_windows,
            windows,
            window: AtomicU64::new(0),
            counts: Striped::default(),
            sketch: [const { AtomicU64::new(0) }; SKETCH_WORDS],
            under_attack: AtomicBool::new(false),
            load: AtomicU32::new(0f32.to_bits()),
            machine: Mutex::new(Machine {
                window: 0,
                bucket: Second::default(),
                bucket_windows: 0,
                bucket_distress: false,
                baseline: Learned::default(),
                hot_streak: 0,
                calm_streak: 0,
                distress_streak: 0,
                auto: false,
                scheduled: false,
                manual: None,
                capacity: capacity.map(|gate| Capacity {
                    gate,
                    in_flight: INITIAL_IN_FLIGHT,
                    per_sec: None,
                    latency_ms: 0.0,
                    hold: 0,
                    served: 0.0,
                }),
            }),
        })
    }

    /// Whether the site is in under-attack mode now.
    #[inline]
    pub(crate) fn under_attack(&self) -> bool {
        self.under_attack.load(Ordering::Relaxed)
    }

    /// Last second's load: arrivals over what the site normally serves (the
    /// largest of the learned capacity per second, the baseline rate and
    /// `min_rate / rate_factor`). 1.0 is "as busy as ever".
    pub(crate) fn load(&self) -> f32 {
        f32::from_bits(self.load.load(Ordering::Relaxed))
    }

    /// Counts one request. Returns mode changes if this call closed a window.
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

    /// Counts a request turned away for the site's capacity.
    pub(crate) fn record_turned_away(&self) {
        self.counts.add(TURNED_AWAY, 1);
    }

    /// Counts one upstream response.
    pub(crate) fn record_response(
        &self,
        latency: Duration,
        outcome: UpstreamOutcome,
        now: Time,
        out: &mut impl FnMut(ModeChange),
    ) {
        self.roll(now, out);
        self.counts.add(RESPONSES, 1);
        match outcome {
            UpstreamOutcome::Served => {}
            UpstreamOutcome::Failed => self.counts.add(ERRORS, 1),
            UpstreamOutcome::Overloaded => {
                self.counts.add(ERRORS, 1);
                self.counts.add(OVERLOADED, 1);
            }
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.counts.add(LATENCY, micros);
    }

    /// Closes finished seconds (and buckets) and applies the schedule; the
    /// gateway calls it about once a second through `Shield::tick` so a
    /// site whose traffic stopped still leaves under-attack mode.
    pub(crate) fn roll(&self, now: Time, out: &mut impl FnMut(ModeChange)) {
        let idx = now.as_nanos() / WINDOW_NANOS;
        if self.window.load(Ordering::Relaxed) == idx {
            return;
        }
        let mut m = lock(&self.machine);
        let prev = self.window.load(Ordering::Relaxed);
        if prev == idx {
            return;
        }
        // Take the closed second's counters. Requests counted by other
        // threads between these swaps and the store land in the next
        // second, which is harmless for statistics.
        let closed = Second {
            requests: self.counts.take(REQUESTS),
            responses: self.counts.take(RESPONSES),
            errors: self.counts.take(ERRORS),
            overloaded: self.counts.take(OVERLOADED),
            latency_us: self.counts.take(LATENCY),
            turned_away: self.counts.take(TURNED_AWAY),
        };
        self.window.store(idx, Ordering::Relaxed);
        let before = self.effective(&m);
        let mut reason = None;
        if prev != 0 && idx > prev {
            reason = self.close_second(&mut m, prev, &closed, now);
            if let Some(r) = self.close_idle(&mut m, prev + 1, idx, now) {
                reason = Some(r);
            }
        }
        m.window = idx;
        self.finish(&mut m, before, reason, now, out);
    }

    /// Closes the seconds `from..to` in which nothing at all happened. The
    /// first is closed like any other; after it an empty second changes
    /// nothing but the count of its bucket, so the rest are counted in one
    /// step and only the buckets' last seconds are closed, and no more
    /// buckets than leaving under-attack mode needs. However long the
    /// silence and however long the buckets, that is a handful of steps.
    fn close_idle(&self, m: &mut Machine, from: u64, to: u64, now: Time) -> Option<ModeReason> {
        if from >= to {
            return None;
        }
        let empty = Second::default();
        let mut reason = self.close_second(m, from, &empty, now);
        let per_bucket = u64::from(self.bucket_windows);
        let mut next = from + 1;
        for _ in 0..=self.cfg.leave_buckets {
            // The last second of the bucket `next` falls in.
            let last = next - next % per_bucket + per_bucket - 1;
            if last >= to {
                break;
            }
            let skipped = last - next;
            m.bucket_windows = m
                .bucket_windows
                .saturating_add(u32::try_from(skipped).unwrap_or(u32::MAX));
            if let Some(c) = m.capacity.as_mut() {
                c.hold = c
                    .hold
                    .saturating_sub(u32::try_from(skipped).unwrap_or(u32::MAX));
            }
            if let Some(r) = self.close_second(m, last, &empty, now) {
                reason = Some(r);
            }
            next = last + 1;
        }
        reason
    }

    /// One second is over: move the capacity, judge the fast signals, and
    /// add the second to its bucket, judging the bucket when it is full.
    fn close_second(
        &self,
        m: &mut Machine,
        index: u64,
        s: &Second,
        now: Time,
    ) -> Option<ModeReason> {
        self.adjust_capacity(m, s, now);
        let normal = m
            .capacity
            .as_ref()
            .and_then(|c| c.per_sec)
            .unwrap_or(0.0)
            .max(m.baseline.rate)
            .max(self.cfg.min_rate / self.cfg.rate_factor);
        self.load.store(
            ((s.requests as f64 / normal.max(f64::MIN_POSITIVE)) as f32).to_bits(),
            Ordering::Relaxed,
        );
        let mut reason = self.judge_second(m, s);
        m.bucket.add(s);
        m.bucket_windows += 1;
        if (index + 1).is_multiple_of(u64::from(self.bucket_windows)) {
            let mut zeros = 0u32;
            for w in &self.sketch {
                zeros += w.swap(0, Ordering::Relaxed).count_zeros();
            }
            let b = m.bucket;
            let secs = f64::from(m.bucket_windows.max(1));
            let sample = Sample {
                rate: b.requests as f64 / secs,
                clients: distinct(zeros),
                latency_ms: b.latency_ms(),
                error_ratio: if b.responses > 0 {
                    b.errors as f64 / b.responses as f64
                } else {
                    0.0
                },
                responses: b.responses,
                turned_away: b.turned_away,
                requests: b.requests,
            };
            // A bucket cut short (the gateway started within it) is not a
            // fair sample of a rate; judge only full ones.
            if m.bucket_windows == self.bucket_windows {
                if let Some(r) = self.judge(m, sample) {
                    reason = Some(r);
                }
            }
            m.bucket = Second::default();
            m.bucket_windows = 0;
            m.bucket_distress = false;
        }
        reason
    }

    /// The fast signals of one second, which need no baseline.
    fn distress(&self, m: &Machine, s: &Second) -> Option<(Metric, f64, f64)> {
        let c = &self.cfg;
        if s.responses >= c.fast_min_responses {
            let errors = s.errors as f64 / s.responses as f64;
            if errors > c.error_ratio {
                return Some((Metric::UpstreamErrors, errors, c.error_ratio));
            }
            let recent = m.baseline.recent_latency_ms;
            let threshold = if recent > 0.0 {
                (recent * c.latency_factor).max(millis(c.fast_latency_floor))
            } else {
                millis(c.min_latency)
            };
            if s.latency_ms() > threshold {
                return Some((Metric::UpstreamLatency, s.latency_ms(), threshold));
            }
        }
        if s.turned_away >= c.fast_min_responses && s.turned_away > s.responses {
            return Some((
                Metric::OverCapacity,
                s.turned_away as f64,
                s.responses as f64,
            ));
        }
        None
    }

    fn judge_second(&self, m: &mut Machine, s: &Second) -> Option<ModeReason> {
        let c = &self.cfg;
        if !c.enabled {
            return None;
        }
        let distress = self.distress(m, s);
        if distress.is_some() {
            m.bucket_distress = true;
        } else if s.responses >= c.fast_min_responses {
            // The recent latency follows calm seconds only, with a memory of
            // about ten seconds: "far above what it was a few seconds ago".
            let recent = &mut m.baseline.recent_latency_ms;
            if *recent <= 0.0 {
                *recent = s.latency_ms();
            } else {
                *recent += 0.1 * (s.latency_ms() - *recent);
            }
        }
        if m.auto || c.fast_enter.is_zero() {
            m.distress_streak = 0;
            return None;
        }
        let Some((metric, observed, threshold)) = distress else {
            m.distress_streak = 0;
            return None;
        };
        m.distress_streak += 1;
        if u64::from(m.distress_streak) < c.fast_enter.as_secs() {
            return None;
        }
        m.auto = true;
        m.distress_streak = 0;
        m.hot_streak = 0;
        m.calm_streak = 0;
        Some(ModeReason::Distress {
            metric,
            observed,
            threshold,
        })
    }

    /// Moves the learned capacity after one second: down at once when the
    /// upstream overloads (multiplicatively, and a ceiling on requests a
    /// second at what it did serve) or its latency climbs (by the gradient
    /// of latency over its unloaded latency), up slowly only while cleared
    /// clients are kept waiting and the upstream is healthy.
    fn adjust_capacity(&self, m: &mut Machine, s: &Second, now: Time) {
        let Some(c) = m.capacity.as_mut() else {
            return;
        };
        let peak = c.gate.take_peak();
        let served = (s.responses - s.overloaded) as f64;
        if s.responses >= 3 && s.overloaded >= 3 && s.overloaded * 10 >= s.responses {
            // An upstream that keeps serving at least what it served lately
            // while it refuses the rest is saturated: what it served in this
            // second is what it can serve, and nine tenths of it leaves room
            // for the edge of the second. One that serves far less than
            // lately is failing (a restart, a deploy), which says nothing of
            // its capacity: only the concurrency comes down.
            if served >= 1.0 && served >= 0.8 * c.served {
                let ceiling = (served * 0.9).max(1.0);
                c.per_sec = Some(c.per_sec.map_or(ceiling, |r| r.min(ceiling)));
            }
            c.in_flight = (c.in_flight * 0.7).max(MIN_IN_FLIGHT);
            c.hold = HOLD_AFTER_OVERLOAD;
        } else if s.responses >= 3 {
            c.served += 0.2 * (served - c.served);
            let latency = s.latency_ms().max(0.001);
            if c.latency_ms <= 0.0 {
                c.latency_ms = latency;
            }
            let gradient = (LATENCY_TOLERANCE * c.latency_ms / latency).clamp(0.5, 1.0);
            if gradient < 1.0 {
                c.in_flight = (c.in_flight * gradient).max(MIN_IN_FLIGHT);
            } else {
                // The unloaded latency follows healthy seconds slowly.
                c.latency_ms += 0.05 * (latency - c.latency_ms);
                let saturated = f64::from(peak) >= 0.9 * c.in_flight || s.turned_away > 0;
                if saturated && c.hold == 0 {
                    c.in_flight = (c.in_flight + c.in_flight.sqrt()).min(MAX_IN_FLIGHT);
                    if s.turned_away > 0 {
                        c.per_sec = c.per_sec.map(|r| r * 1.1 + 1.0);
                    }
                }
            }
        }
        c.hold = c.hold.saturating_sub(1);
        c.gate
            .set_limits(c.in_flight.round() as u32, c.per_sec, now);
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

    /// Runs one closed bucket through the baseline state machine; returns
    /// the reason if the automatic mode changed.
    fn judge(&self, m: &mut Machine, s: Sample) -> Option<ModeReason> {
        let c = &self.cfg;
        if !c.enabled {
            return None;
        }
        let distress = m.bucket_distress;
        if m.baseline.buckets < c.warmup_buckets {
            // Warming up: learn, but never from a bucket in which the
            // upstream was in distress or the site under attack, so an
            // attack under way at the start never becomes the normal.
            if !distress && !m.auto {
                m.baseline.buckets += 1;
                let w = 1.0 / f64::from(m.baseline.buckets);
                self.learn(m, s, w);
            }
            if !m.auto {
                return None;
            }
        }
        let b = m.baseline.clone();
        let warm = b.buckets >= c.warmup_buckets;
        let thresholds = [
            (
                Metric::RequestRate,
                s.rate,
                (b.rate * c.rate_factor).max(c.min_rate),
                warm,
            ),
            (
                Metric::DistinctClients,
                s.clients,
                (b.clients * c.clients_factor).max(c.min_clients),
                warm,
            ),
            (
                Metric::UpstreamLatency,
                s.latency_ms,
                (b.latency_ms * c.latency_factor).max(millis(c.min_latency)),
                warm && s.responses >= c.min_responses,
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
                    if !distress {
                        self.learn(m, s, c.baseline_weight);
                    }
                }
            }
            return None;
        }
        // Calm: every metric near the baseline (or under the floors when
        // there is none yet), no second of distress, and next to nobody
        // turned away for capacity.
        let calm = !distress
            && s.turned_away * 20 <= s.requests
            && s.rate <= (b.rate * c.leave_factor).max(c.min_rate)
            && s.clients <= (b.clients * c.leave_factor).max(c.min_clients)
            && (s.responses < c.min_responses
                || (s.latency_ms <= (b.latency_ms * c.leave_factor).max(millis(c.min_latency))
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

    /// What the detector has learned, to save.
    pub(crate) fn learned(&self, now: Time) -> Learned {
        let m = lock(&self.machine);
        let mut l = m.baseline.clone();
        if let Some(c) = &m.capacity {
            l.capacity_in_flight = c.in_flight;
            l.capacity_per_sec = c.per_sec;
            l.capacity_latency_ms = c.latency_ms;
        }
        l.under_attack = m.auto;
        l.saved_at = now.as_secs();
        l
    }

    /// Takes up what an earlier run learned. Values that make no sense
    /// (negative, not finite) are ignored one by one, never trusted. A site
    /// saved in under-attack mode moments ago starts in it again.
    pub(crate) fn restore(&self, l: &Learned, now: Time, out: &mut impl FnMut(ModeChange)) {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        let mut m = lock(&self.machine);
        let before = self.effective(&m);
        if [l.rate, l.clients, l.latency_ms, l.error_ratio]
            .into_iter()
            .all(ok)
        {
            let b = &mut m.baseline;
            b.rate = l.rate;
            b.clients = l.clients;
            b.latency_ms = l.latency_ms;
            b.error_ratio = l.error_ratio.min(1.0);
            b.buckets = l.buckets;
        }
        if ok(l.recent_latency_ms) {
            m.baseline.recent_latency_ms = l.recent_latency_ms;
        }
        if let Some(c) = m.capacity.as_mut() {
            if ok(l.capacity_in_flight) && l.capacity_in_flight >= 1.0 {
                c.in_flight = l.capacity_in_flight.clamp(MIN_IN_FLIGHT, MAX_IN_FLIGHT);
            }
            c.per_sec = l.capacity_per_sec.filter(|r| ok(*r) && *r >= 1.0);
            if ok(l.capacity_latency_ms) {
                c.latency_ms = l.capacity_latency_ms;
            }
            c.gate
                .set_limits(c.in_flight.round() as u32, c.per_sec, now);
        }
        let recent = now.as_secs().saturating_sub(l.saved_at) <= RESUME_WITHIN_SECS
            && l.saved_at <= now.as_secs();
        if l.under_attack && recent && self.cfg.enabled {
            m.auto = true;
        }
        let after = self.effective(&m);
        self.under_attack.store(after, Ordering::Relaxed);
        if after != before {
            out(ModeChange {
                under_attack: after,
                reason: ModeReason::Restored,
            });
        }
    }

    /// The manual override: `Some(true)` under attack, `Some(false)`
    /// normal, `None` when the detector decides.
    pub(crate) fn manual(&self) -> Option<bool> {
        lock(&self.machine).manual
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

/// A duration in milliseconds, the unit the detector's latencies are kept in.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
