//! What a drill measured, and how it is shown: a table for people, JSON for
//! benchmark scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{json, Value};

/// What happened to one attack request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttackOutcome {
    /// 2xx or 3xx: the gateway let it through.
    Passed,
    /// 403 with the proof-of-work page.
    Challenged,
    /// Any other 403 (ban, WAF, a challenge without a page).
    Blocked,
    /// 429.
    Limited,
    /// 503 with the waiting-room page.
    Queued,
    /// Any other 503.
    Unavailable,
    /// Any other status.
    Other,
    /// The connection failed or the response was unreadable.
    Error,
    /// No response within the timeout.
    Timeout,
}

/// Attack counters, shared by every attack request.
#[derive(Debug, Default)]
pub struct AttackTally {
    pub sent: AtomicU64,
    pub passed: AtomicU64,
    pub challenged: AtomicU64,
    pub blocked: AtomicU64,
    pub limited: AtomicU64,
    pub queued: AtomicU64,
    pub unavailable: AtomicU64,
    pub other: AtomicU64,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    /// TCP connections opened.
    pub connections: AtomicU64,
    /// Requests the schedule called for but the drill did not send because
    /// it had as many open as it may (its file-descriptor budget).
    pub not_sent: AtomicU64,
}

impl AttackTally {
    pub fn count(&self, outcome: AttackOutcome) {
        let c = match outcome {
            AttackOutcome::Passed => &self.passed,
            AttackOutcome::Challenged => &self.challenged,
            AttackOutcome::Blocked => &self.blocked,
            AttackOutcome::Limited => &self.limited,
            AttackOutcome::Queued => &self.queued,
            AttackOutcome::Unavailable => &self.unavailable,
            AttackOutcome::Other => &self.other,
            AttackOutcome::Error => &self.errors,
            AttackOutcome::Timeout => &self.timeouts,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the legitimate visitors experienced.
#[derive(Clone, Debug, Default)]
pub struct BrowserTally {
    /// Page views started during the attack and finished before the end.
    pub page_views: u64,
    /// Of those, the ones that got the real page (after at most one challenge).
    pub succeeded: u64,
    /// Failed page views by reason.
    pub failures: BTreeMap<String, u64>,
    /// Challenges solved.
    pub challenges: u64,
    /// Waiting-room pages seen.
    pub waits: u64,
    /// Every HTTP request's time to a whole response, in microseconds.
    pub request_us: Vec<u32>,
    /// Every page view's time from the first request to the real page (or
    /// to giving up), challenge solving and waiting included.
    pub view_us: Vec<u32>,
    /// Time spent solving each challenge.
    pub solve_us: Vec<u32>,
    /// The time of each page view begun after its visitor had cleared a
    /// challenge: what a person sees once past the first challenge.
    pub after_challenge_us: Vec<u32>,
    /// Visitors with at least one counted page view.
    pub visitors: u64,
    /// Page views that overlapped a restart of the gateway (from its stop
    /// signal until it accepted again): kept apart, not in the counts above.
    pub restart_steps: u64,
    /// Of those, the ones that failed, by reason.
    pub restart_failures: BTreeMap<String, u64>,
}

impl BrowserTally {
    pub fn merge(&mut self, other: BrowserTally) {
        self.page_views += other.page_views;
        self.succeeded += other.succeeded;
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        self.challenges += other.challenges;
        self.waits += other.waits;
        self.request_us.extend(other.request_us);
        self.view_us.extend(other.view_us);
        self.solve_us.extend(other.solve_us);
        self.after_challenge_us.extend(other.after_challenge_us);
        self.visitors += other.visitors;
        self.restart_steps += other.restart_steps;
        for (k, v) in other.restart_failures {
            *self.restart_failures.entry(k).or_default() += v;
        }
    }
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `micros`.
    pub fn of(micros: &[u32]) -> Percentiles {
        if micros.is_empty() {
            return Percentiles::default();
        }
        let mut v = micros.to_vec();
        v.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            f64::from(v[i]) / 1000.0
        };
        Percentiles {
            count: v.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: rank(1.0),
        }
    }

    fn to_json(self) -> Value {
        json!({ "count": self.count, "p50": round(self.p50), "p95": round(self.p95), "p99": round(self.p99), "max": round(self.max) })
    }
}

/// The capped origin's counts over the attack.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct UpstreamFigures {
    pub capacity_per_sec: u64,
    /// Requests that reached the origin per second, on average over the attack.
    #[serde(serialize_with = "rounded")]
    pub arrived_per_sec: f64,
    /// Of those, served within capacity, per second.
    #[serde(serialize_with = "rounded")]
    pub served_per_sec: f64,
    /// The most that reached it in any one wall-clock second of the attack.
    pub max_arrived_in_a_second: u64,
    /// Seconds of the drill (from the first counted page view, or the
    /// attack, to the end of the drain) in which more than the capacity arrived.
    pub seconds_over_capacity: u64,
    /// Wall-clock seconds those were counted over.
    pub window_secs: u64,
}

/// A gateway the drill started itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayFigures {
    /// Its command line.
    pub command: String,
    /// Where its standard error went.
    pub log: String,
    /// From its start to accepting connections, in seconds.
    pub ready_secs: f64,
    /// From its start to the flood's first request.
    pub flood_started_secs: f64,
    pub restarts: Vec<RestartFigures>,
    /// How the final stop went: seconds from SIGTERM to exit, and whether
    /// it had to be killed.
    pub stopped_secs: f64,
    pub stop_killed: bool,
}

/// One restart, its times counted from the gateway's first start.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RestartFigures {
    /// When SIGTERM was sent.
    #[serde(serialize_with = "rounded")]
    pub at_secs: f64,
    /// From SIGTERM to exit.
    #[serde(serialize_with = "rounded")]
    pub stopped_secs: f64,
    /// Whether it had to be killed after the bounded wait.
    pub killed: bool,
    /// When the new process accepted connections.
    #[serde(serialize_with = "rounded")]
    pub accepting_again_secs: f64,
}

/// The watched processes' memory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemoryFigures {
    /// The highest sum of resident memory seen in one sample.
    pub peak_rss_kb: u64,
    /// The sum of each process's own high-water mark (`VmHWM`).
    pub hwm_kb: u64,
    /// Processes watched (children included).
    pub processes: usize,
}

/// A drill's result.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub label: Option<String>,
    pub target: String,
    pub host: String,
    pub duration_secs: f64,
    pub warmup_secs: f64,
    /// The flood began this long after the start (0: at once, or after the warm-up).
    pub flood_after_secs: f64,
    /// Page views per visitor (0: the same visitors throughout).
    pub visit_steps: u32,
    pub attack_rate: u32,
    pub attackers: u32,
    pub browsers: u32,
    pub browser_interval_ms: u64,
    /// Wall time from start to report.
    pub elapsed_secs: f64,
    pub attack: AttackCounts,
    pub legit: BrowserTally,
    /// Page views cut off by the end of the drill.
    pub legit_unfinished: u64,
    pub upstream: Option<UpstreamFigures>,
    /// Why the upstream's counts could not be read, when they were asked for.
    pub upstream_error: Option<String>,
    pub memory: Option<MemoryFigures>,
    /// The gateway, when the drill started it.
    pub gateway: Option<GatewayFigures>,
}

/// The attack counters, read once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AttackCounts {
    pub sent: u64,
    pub passed: u64,
    pub challenged: u64,
    pub blocked: u64,
    pub limited: u64,
    pub queued: u64,
    pub unavailable: u64,
    pub other: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub connections: u64,
    pub not_sent: u64,
    /// Sent but not answered by the end of the drill.
    pub unfinished: u64,
    /// Distinct source addresses that got a connection through.
    pub addresses_connected: u64,
}

impl AttackCounts {
    pub fn read(t: &AttackTally, unfinished: u64, addresses_connected: u64) -> AttackCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AttackCounts {
            sent: r(&t.sent),
            passed: r(&t.passed),
            challenged: r(&t.challenged),
            blocked: r(&t.blocked),
            limited: r(&t.limited),
            queued: r(&t.queued),
            unavailable: r(&t.unavailable),
            other: r(&t.other),
            errors: r(&t.errors),
            timeouts: r(&t.timeouts),
            connections: r(&t.connections),
            not_sent: r(&t.not_sent),
            unfinished,
            addresses_connected,
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Figures in the JSON summary are rounded to hundredths: more digits
/// would be noise in a benchmark's table.
fn rounded<S: serde::Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round(*x))
}

impl Summary {
    /// Legitimate page views that succeeded, in percent (100 when none ran).
    pub fn success_rate(&self) -> f64 {
        if self.legit.page_views == 0 {
            return 100.0;
        }
        100.0 * self.legit.succeeded as f64 / self.legit.page_views as f64
    }

    pub fn request_latency(&self) -> Percentiles {
        Percentiles::of(&self.legit.request_us)
    }

    pub fn page_view_time(&self) -> Percentiles {
        Percentiles::of(&self.legit.view_us)
    }

    /// Page-view times once past the visitor's first challenge.
    pub fn after_challenge_time(&self) -> Percentiles {
        Percentiles::of(&self.legit.after_challenge_us)
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut attack = json!(self.attack);
        attack["sent_per_sec"] = json!(round(
            self.attack.sent as f64 / self.duration_secs.max(1e-9)
        ));
        json!({
            "label": self.label,
            "target": self.target,
            "host": self.host,
            "duration_secs": self.duration_secs,
            "warmup_secs": self.warmup_secs,
            "flood_after_secs": self.flood_after_secs,
            "visit_steps": self.visit_steps,
            "elapsed_secs": round(self.elapsed_secs),
            "stopped_by_itself": true,
            "attack_rate": self.attack_rate,
            "attackers": self.attackers,
            "browsers": self.browsers,
            "browser_interval_ms": self.browser_interval_ms,
            "legit": {
                "page_views": self.legit.page_views,
                "succeeded": self.legit.succeeded,
                "success_rate": round(self.success_rate()),
                "failures": self.legit.failures,
                "unfinished": self.legit_unfinished,
                "challenges": self.legit.challenges,
                "waiting_room_pages": self.legit.waits,
                "latency_ms": self.request_latency().to_json(),
                "page_view_ms": self.page_view_time().to_json(),
                "solve_ms": Percentiles::of(&self.legit.solve_us).to_json(),
                "after_first_challenge_ms": self.after_challenge_time().to_json(),
                "visitors": self.legit.visitors,
                "during_restart": {
                    "page_views": self.legit.restart_steps,
                    "failed": self.legit.restart_failures.values().sum::<u64>(),
                    "failures": self.legit.restart_failures,
                },
            },
            "attack": attack,
            "upstream": self.upstream,
            "upstream_error": self.upstream_error,
            "memory": self.memory.as_ref().map(|m| json!({
                "peak_rss_mb": round(m.peak_rss_kb as f64 / 1024.0),
                "hwm_mb": round(m.hwm_kb as f64 / 1024.0),
                "processes": m.processes,
            })),
            "gateway": self.gateway.as_ref().map(|g| json!({
                "command": g.command,
                "log": g.log,
                "ready_secs": round(g.ready_secs),
                "flood_started_secs": round(g.flood_started_secs),
                "restarted": g.restarts.len(),
                "restarts": g.restarts,
                "stopped_secs": round(g.stopped_secs),
                "stop_killed": g.stop_killed,
            })),
        })
    }

    /// The summary as a table for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let a = &self.attack;
        let l = &self.legit;
        let lat = self.request_latency();
        let view = self.page_view_time();
        let title = self
            .label
            .as_deref()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "rampart drill{title}: http://{} (Host {}), {} s attack",
            self.target, self.host, self.duration_secs
        );
        if let Some(g) = &self.gateway {
            let _ = writeln!(
                s,
                "  gateway      `{}` started by the drill: accepting after {:.1} s, flood from {:.1} s (log {})",
                g.command, g.ready_secs, g.flood_started_secs, g.log
            );
            for r in &g.restarts {
                let _ = writeln!(
                    s,
                    "               restarted at {:.1} s: exited {:.1} s after SIGTERM{}, accepting again at {:.1} s",
                    r.at_secs,
                    r.stopped_secs,
                    if r.killed { " (killed)" } else { "" },
                    r.accepting_again_secs
                );
            }
        }
        let _ = writeln!(
            s,
            "  legitimate   {} of {} page views succeeded ({:.2}%), {} challenge(s) solved, {} waiting-room page(s){}",
            l.succeeded,
            l.page_views,
            self.success_rate(),
            l.challenges,
            l.waits,
            if self.legit_unfinished > 0 { format!(", {} cut off by the end", self.legit_unfinished) } else { String::new() }
        );
        let _ = writeln!(s, "               request latency   p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} requests)", lat.p50, lat.p95, lat.p99, lat.max, lat.count);
        let _ = writeln!(s, "               page view time    p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  (challenge solving and waiting included)", view.p50, view.p95, view.p99);
        let after = self.after_challenge_time();
        if after.count > 0 {
            let _ = writeln!(s, "               after 1st challenge p50 {:.1} ms  p99 {:.1} ms  ({} page views of visitors past their first challenge)", after.p50, after.p99, after.count);
        } else if self.gateway.is_some() {
            let _ = writeln!(s, "               after 1st challenge: no page views (no visitor cleared a challenge)");
        }
        if self.visit_steps > 0 {
            let _ = writeln!(
                s,
                "               {} visitor(s) came, {} page view(s) each",
                l.visitors, self.visit_steps
            );
        }
        if l.restart_steps > 0 {
            let failed: u64 = l.restart_failures.values().sum();
            let _ = writeln!(
                s,
                "               {} page view(s) overlapped the restart, {} failed (not counted above)",
                l.restart_steps, failed
            );
        }
        if !l.failures.is_empty() {
            let list: Vec<String> = l
                .failures
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(s, "               failures: {}", list.join(", "));
        }
        let _ = writeln!(s, "  attack       {} sent ({:.0}/s) from {} address(es): passed {}, challenged {}, blocked {}, limited {}, queued {}, unavailable {}, other {}, errors {}, timeouts {}", a.sent, a.sent as f64 / self.duration_secs.max(1e-9), self.attackers, a.passed, a.challenged, a.blocked, a.limited, a.queued, a.unavailable, a.other, a.errors, a.timeouts);
        let _ = writeln!(
            s,
            "               {} connection(s) opened from {} distinct address(es){}{}",
            a.connections,
            a.addresses_connected,
            if a.unfinished > 0 {
                format!(", {} unanswered at the end", a.unfinished)
            } else {
                String::new()
            },
            if a.not_sent > 0 {
                format!(
                    ", {} not sent (the drill's connection budget was full)",
                    a.not_sent
                )
            } else {
                String::new()
            }
        );
        match (&self.upstream, &self.upstream_error) {
            (Some(u), _) => {
                let _ = writeln!(s, "  upstream     {:.1} req/s reached it ({:.1} served), at most {} in one second; capacity {}, exceeded in {} of {} second(s)", u.arrived_per_sec, u.served_per_sec, u.max_arrived_in_a_second, u.capacity_per_sec, u.seconds_over_capacity, u.window_secs);
            }
            (None, Some(e)) => {
                let _ = writeln!(s, "  upstream     counts unavailable: {e}");
            }
            (None, None) => {}
        }
        if let Some(m) = &self.memory {
            let _ = writeln!(s, "  memory       peak {:.1} MB resident (high-water mark {:.1} MB) over {} process(es)", m.peak_rss_kb as f64 / 1024.0, m.hwm_kb as f64 / 1024.0, m.processes);
        }
        let _ = writeln!(s, "  stopped by itself after {:.1} s", self.elapsed_secs);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let p = Percentiles::of(&v);
        assert_eq!(
            (p.count, p.p50, p.p95, p.p99, p.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Percentiles::of(&[7000]).p99, 7.0);
        assert_eq!(Percentiles::of(&[]).count, 0);
    }

    #[test]
    fn summary_renders_and_serialises() {
        let mut s = Summary {
            target: "127.0.0.1:1".into(),
            duration_secs: 2.0,
            ..Summary::default()
        };
        s.legit.page_views = 200;
        s.legit.succeeded = 199;
        s.legit.failures.insert("status 503".into(), 1);
        s.legit.request_us = vec![1000, 2000, 3000];
        s.attack.sent = 10;
        s.upstream = Some(UpstreamFigures {
            capacity_per_sec: 200,
            max_arrived_in_a_second: 150,
            ..UpstreamFigures::default()
        });
        let j = s.to_json();
        assert_eq!(j["legit"]["success_rate"], 99.5);
        assert_eq!(j["legit"]["failures"]["status 503"], 1);
        assert_eq!(j["legit"]["latency_ms"]["p99"], 3.0);
        assert_eq!(j["attack"]["sent_per_sec"], 5.0);
        assert_eq!(j["upstream"]["max_arrived_in_a_second"], 150);
        assert_eq!(j["memory"], Value::Null);
        let t = s.render();
        assert!(
            t.contains("199 of 200 page views succeeded (99.50%)"),
            "{t}"
        );
        assert!(t.contains("status 503: 1"), "{t}");
        assert_eq!(j["gateway"], Value::Null);

        s.legit.after_challenge_us = vec![40_000, 90_000];
        s.legit.restart_steps = 3;
        s.legit.restart_failures.insert("cannot connect".into(), 2);
        s.gateway = Some(GatewayFigures {
            command: "rampart serve".into(),
            restarts: vec![RestartFigures {
                at_secs: 15.0,
                stopped_secs: 1.0,
                killed: false,
                accepting_again_secs: 17.5,
            }],
            ..GatewayFigures::default()
        });
        let j = s.to_json();
        assert_eq!(j["legit"]["after_first_challenge_ms"]["p99"], 90.0);
        assert_eq!(j["legit"]["during_restart"]["failed"], 2);
        assert_eq!(j["gateway"]["restarted"], 1);
        assert_eq!(j["gateway"]["restarts"][0]["accepting_again_secs"], 17.5);
        let t = s.render();
        assert!(t.contains("restarted at 15.0 s"), "{t}");
        assert!(
            t.contains("3 page view(s) overlapped the restart, 2 failed"),
            "{t}"
        );
    }
}
