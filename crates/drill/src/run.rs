//! Runs a drill: browsers from the start, the flood after the warm-up, a
//! short drain, then the report. Everything stops by itself.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use tokio::task::JoinSet;

use crate::addrs;
use crate::attack::Flood;
use crate::browser::{ViewOutcome, Visitor};
use crate::challenge::Solvers;
use crate::client::Connection;
use crate::options::DrillOptions;
use crate::report::{AttackCounts, BrowserTally, Summary};
use crate::watch;

/// Longest a drill waits, after the attack, for answers still on their way.
const MAX_DRAIN: Duration = Duration::from_secs(3);

/// Longest a person waits for one page, challenge and queue included,
/// before giving up; the view then counts as failed.
const VIEW_DEADLINE: Duration = Duration::from_secs(30);

/// File descriptors kept for everything but attack connections.
const FD_RESERVE: usize = 512;

/// Runs the drill described by `o` on a runtime of its own and returns its
/// summary. It returns at the latest `warmup + duration` plus a drain of at
/// most 3 s and the few seconds it takes to read the upstream's counts.
pub fn run(o: &DrillOptions) -> Result<Summary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the drill's runtime")?;
    let summary = runtime.block_on(drive(o));
    // Requests still open after the drain are abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(200));
    summary
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The soft limit on open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn drive(o: &DrillOptions) -> Result<Summary> {
    let source = |ip: std::net::Ipv4Addr| o.spread_sources.then_some(IpAddr::V4(ip));
    // Fail early and clearly if the target is down or loopback sources do not work.
    let probe = source(addrs::attacker(0, o.attackers_per_prefix));
    tokio::time::timeout(o.timeout, Connection::open(probe, o.target))
        .await
        .map_err(|_| anyhow!("cannot connect to {} within {:?}", o.target, o.timeout))?
        .map_err(|e| {
            anyhow!(
                "cannot connect to {} from {}: {e}",
                o.target,
                probe.map_or("this machine".into(), |p| p.to_string())
            )
        })?;

    let started = Instant::now();
    let attack_start = started + o.warmup;
    let attack_end = attack_start + o.duration;
    let drain = o.timeout.min(MAX_DRAIN);

    let stop_watch = Arc::new(AtomicBool::new(false));
    let memory = (!o.watch_pids.is_empty()).then(|| {
        tokio::spawn(watch::sample_memory(
            o.watch_pids.clone(),
            Arc::clone(&stop_watch),
        ))
    });

    // Browsers, from the start; only views begun during the attack count.
    let tally = Arc::new(Mutex::new(BrowserTally::default()));
    let viewing = Arc::new(AtomicU64::new(0));
    let solvers = Arc::new(Solvers::start(o.solvers).context("cannot start the solver threads")?);
    let mut browsers = JoinSet::new();
    for j in 0..o.browsers {
        let mut visitor = Visitor::new(
            source(addrs::browser(j)),
            o.target,
            o.host.clone(),
            o.timeout,
        );
        let paths = o.browser_paths.clone();
        let (tally, viewing, solvers) = (
            Arc::clone(&tally),
            Arc::clone(&viewing),
            Arc::clone(&solvers),
        );
        let interval = o.browser_interval;
        // Visitors arrive spread over one interval, not all at once.
        let offset = interval.mul_f64(f64::from(j) / f64::from(o.browsers.max(1)));
        browsers.spawn(async move {
            tokio::time::sleep(offset).await;
            let mut rng = Jitter(0x9e37_79b9_7f4a_7c15 ^ u64::from(j + 1));
            let mut n = j as usize;
            while Instant::now() < attack_end {
                let counted = Instant::now() >= attack_start;
                let path = &paths[n % paths.len()];
                n += 1;
                let mut mine = BrowserTally::default();
                let began = Instant::now();
                if counted {
                    viewing.fetch_add(1, Ordering::Relaxed);
                }
                let outcome = match tokio::time::timeout(
                    VIEW_DEADLINE,
                    visitor.view(path, &solvers, &mut mine),
                )
                .await
                {
                    Ok(outcome) => outcome,
                    Err(_) => ViewOutcome::Failed("gave up after 30 s".into()),
                };
                if counted {
                    mine.page_views = 1;
                    mine.view_us
                        .push(u32::try_from(began.elapsed().as_micros()).unwrap_or(u32::MAX));
                    match outcome {
                        ViewOutcome::Success => mine.succeeded = 1,
                        ViewOutcome::Failed(why) => {
                            mine.failures.insert(why, 1);
                        }
                    }
                    tally.lock().unwrap_or_else(|e| e.into_inner()).merge(mine);
                    viewing.fetch_sub(1, Ordering::Relaxed);
                }
                // Think time, ±25 %, never past the end.
                let pause = interval.mul_f64(0.75 + 0.5 * rng.next_unit());
                let wake = (Instant::now() + pause).min(attack_end);
                tokio::time::sleep_until(wake.into()).await;
            }
        });
    }

    // The flood, after the warm-up.
    let max_in_flight = open_files_limit()
        .unwrap_or(1024)
        .saturating_sub(FD_RESERVE + 2 * o.browsers as usize)
        .clamp(64, 65_536);
    let sources: Vec<Option<IpAddr>> = if o.spread_sources {
        (0..o.attackers)
            .map(|i| source(addrs::attacker(i, o.attackers_per_prefix)))
            .collect()
    } else {
        vec![None]
    };
    let flood = Arc::new(Flood::new(
        o.target,
        &o.host,
        sources,
        &o.attack_paths,
        &o.attack_accept,
        o.timeout,
        max_in_flight,
    ));
    tokio::time::sleep_until(attack_start.into()).await;
    let upstream_before = match &o.upstream_stats {
        Some((addr, path)) => {
            Some(watch::upstream_counts(*addr, path, Duration::from_secs(5)).await)
        }
        None => None,
    };
    let first_second = unix_secs();
    let attack_began = Instant::now();
    flood.run(o.attack_rate, attack_began, attack_end).await;
    let last_second = unix_secs();
    let attack_secs = attack_began.elapsed().as_secs_f64();

    // Drain: answers on their way, and views in progress, get a little time.
    let hard_end = Instant::now() + drain;
    while Instant::now() < hard_end && (flood.in_flight() > 0 || !browsers.is_empty()) {
        tokio::select! {
            _ = browsers.join_next(), if !browsers.is_empty() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    browsers.abort_all();
    while browsers.join_next().await.is_some() {}
    let attack_unfinished = flood.in_flight() as u64;
    let legit_unfinished = viewing.load(Ordering::Relaxed);
    let attack = AttackCounts::read(&flood.tally, attack_unfinished, flood.addresses_connected());

    let (upstream, upstream_error) = match (&o.upstream_stats, upstream_before) {
        (Some((addr, path)), Some(Ok(before))) => {
            match watch::upstream_counts(*addr, path, Duration::from_secs(5)).await {
                Ok(after) => (
                    Some(watch::upstream_figures(
                        &before,
                        &after,
                        first_second,
                        last_second,
                        attack_secs,
                    )),
                    None,
                ),
                Err(e) => (None, Some(e)),
            }
        }
        (_, Some(Err(e))) => (None, Some(e)),
        _ => (None, None),
    };
    stop_watch.store(true, Ordering::Relaxed);
    let memory = match memory {
        Some(task) => task.await.ok(),
        None => None,
    };
    let legit = std::mem::take(&mut *tally.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Summary {
        label: o.label.clone(),
        target: o.target.to_string(),
        host: o.host.clone(),
        duration_secs: o.duration.as_secs_f64(),
        warmup_secs: o.warmup.as_secs_f64(),
        attack_rate: o.attack_rate,
        attackers: if o.spread_sources { o.attackers } else { 1 },
        browsers: o.browsers,
        browser_interval_ms: o.browser_interval.as_millis() as u64,
        elapsed_secs: started.elapsed().as_secs_f64(),
        attack,
        legit,
        legit_unfinished,
        upstream,
        upstream_error,
        memory,
    })
}

/// A tiny deterministic generator (xorshift) for think-time jitter.
struct Jitter(u64);

impl Jitter {
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
