//! Runs a drill: the gateway started first when the drill starts it,
//! browsers from the start, the flood after the warm-up (or
//! `--flood-after`), a restart mid-flood if asked, a short drain, then the
//! report. Everything stops by itself.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use tokio::task::JoinSet;

use crate::addrs;
use crate::attack::Flood;
use crate::browser::{ViewOutcome, Visitor};
use crate::challenge::Solvers;
use crate::client::Connection;
use crate::gateway::GatewayChild;
use crate::options::DrillOptions;
use crate::report::{AttackCounts, BrowserTally, GatewayFigures, RestartFigures, Summary};
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
    // A drill that started its gateway stops it when interrupted: dropping
    // the drive drops the gateway, which kills it.
    let summary = runtime.block_on(async {
        if o.gateway_command.is_empty() {
            return drive(o).await;
        }
        tokio::select! {
            biased;
            sig = interrupted() => Err(anyhow!("interrupted by {sig}; the gateway the drill started was stopped")),
            r = drive(o) => r,
        }
    });
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

/// When a restart of the gateway began (its stop signal) and when the new
/// process accepted again; page views overlapping it are kept apart.
type RestartWindow = Arc<Mutex<Option<(Instant, Option<Instant>)>>>;

fn overlaps_restart(window: &RestartWindow, began: Instant, ended: Instant) -> bool {
    match *window.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((stop, back)) => ended >= stop && back.is_none_or(|b| began <= b),
        None => false,
    }
}

/// Waits for SIGINT or SIGTERM, and says which.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn drive(o: &DrillOptions) -> Result<Summary> {
    let source = |ip: std::net::Ipv4Addr| o.spread_sources.then_some(IpAddr::V4(ip));
    let watch_pids = Arc::new(Mutex::new(o.watch_pids.clone()));
    let stop_watch = Arc::new(AtomicBool::new(false));

    // A gateway of our own: started now, and times count from here.
    let mut gateway = None;
    let gateway_started = Instant::now();
    let gateway_started_wall = SystemTime::now();
    let mut ready_secs = 0.0;
    if !o.gateway_command.is_empty() {
        let log = o
            .gateway_log
            .clone()
            .unwrap_or_else(crate::gateway::default_log);
        // Something already there would be flooded in the gateway's place.
        if let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(o.target),
        )
        .await
        {
            bail!(
                "something already accepts on {} before the gateway is started; the drill would flood it instead: stop it or choose a free port",
                o.target
            );
        }
        let mut g = GatewayChild::start(&o.gateway_command, &log)?;
        if let Some(pid) = g.pid() {
            lock(&watch_pids).push(pid);
        }
        g.wait_accepting(o.target).await?;
        ready_secs = gateway_started.elapsed().as_secs_f64();
        gateway = Some(g);
    }
    let memory = (!lock(&watch_pids).is_empty()).then(|| {
        tokio::spawn(watch::sample_memory(
            Arc::clone(&watch_pids),
            Arc::clone(&stop_watch),
        ))
    });

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

    let (started, started_wall) = if gateway.is_some() {
        (gateway_started, gateway_started_wall)
    } else {
        (Instant::now(), SystemTime::now())
    };
    let unix_second_at = |t: Instant| {
        (started_wall + t.saturating_duration_since(started))
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    // Page views count from here (after the warm-up, if any) ...
    let count_from = (started + o.warmup).max(Instant::now());
    // ... and the flood starts here: after --flood-after, or once the
    // gateway accepts, if that is later.
    let attack_start = (started + o.warmup + o.flood_after).max(Instant::now());
    let attack_end = attack_start + o.duration;
    let drain = o.timeout.min(MAX_DRAIN);

    // Browsers, from the start; only views begun from `count_from` count.
    let tally = Arc::new(Mutex::new(BrowserTally::default()));
    let viewing = Arc::new(AtomicU64::new(0));
    let restart_window: RestartWindow = Arc::new(Mutex::new(None));
    let solvers = Arc::new(Solvers::start(o.solvers).context("cannot start the solver threads")?);
    let mut browsers = JoinSet::new();
    for j in 0..o.browsers {
        let paths = o.browser_paths.clone();
        let (tally, viewing, solvers, restart_window) = (
            Arc::clone(&tally),
            Arc::clone(&viewing),
            Arc::clone(&solvers),
            Arc::clone(&restart_window),
        );
        let interval = o.browser_interval;
        let (visit_steps, slots, target, host, timeout) = (
            o.visit_steps,
            o.browsers,
            o.target,
            o.host.clone(),
            o.timeout,
        );
        let spread = o.spread_sources;
        // Visitors arrive spread over one interval, not all at once.
        let offset = interval.mul_f64(f64::from(j) / f64::from(o.browsers.max(1)));
        browsers.spawn(async move {
            tokio::time::sleep(offset).await;
            let mut rng = Jitter(0x9e37_79b9_7f4a_7c15 ^ u64::from(j + 1));
            let mut n = j as usize;
            // With --visit-steps, a visitor leaves after that many page
            // views and a new one (new address, empty cookie jar) arrives
            // in its place: first visits all through the drill.
            let mut arrival: u32 = 0;
            while Instant::now() < attack_end {
                let address = if visit_steps == 0 {
                    addrs::browser(j)
                } else {
                    addrs::visitor(j.wrapping_add(arrival.wrapping_mul(slots)))
                };
                arrival += 1;
                let mut visitor = Visitor::new(
                    spread.then_some(IpAddr::V4(address)),
                    target,
                    host.clone(),
                    timeout,
                );
                // A visitor is counted at its first counted page view.
                let mut seen = false;
                let mut cleared = false;
                let mut steps = 0;
                while Instant::now() < attack_end && (visit_steps == 0 || steps < visit_steps) {
                    steps += 1;
                    let counted = Instant::now() >= count_from;
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
                    let was_cleared = cleared;
                    cleared |= mine.challenges > 0 && outcome == ViewOutcome::Success;
                    if counted {
                        let ended = Instant::now();
                        let took = u32::try_from((ended - began).as_micros()).unwrap_or(u32::MAX);
                        if overlaps_restart(&restart_window, began, ended) {
                            mine.restart_steps = 1;
                            if let ViewOutcome::Failed(why) = outcome {
                                mine.restart_failures.insert(why, 1);
                            }
                        } else {
                            mine.page_views = 1;
                            mine.view_us.push(took);
                            if was_cleared {
                                mine.after_challenge_us.push(took);
                            }
                            match outcome {
                                ViewOutcome::Success => mine.succeeded = 1,
                                ViewOutcome::Failed(why) => {
                                    mine.failures.insert(why, 1);
                                }
                            }
                        }
                        mine.visitors = u64::from(!seen);
                        seen = true;
                        lock(&tally).merge(mine);
                        viewing.fetch_sub(1, Ordering::Relaxed);
                    }
                    // Think time, ±25 %, never past the end.
                    let pause = interval.mul_f64(0.75 + 0.5 * rng.next_unit());
                    let wake = (Instant::now() + pause).min(attack_end);
                    tokio::time::sleep_until(wake.into()).await;
                }
            }
        });
    }

    // The flood, after the warm-up or --flood-after.
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
    let attack_began = Instant::now();
    let flood_started_secs = attack_began.duration_since(started).as_secs_f64();
    // The restart, mid-flood, while the flood goes on.
    let restart = async {
        let (Some(at), Some(g)) = (o.restart_after, gateway.as_mut()) else {
            return Ok(None);
        };
        tokio::time::sleep_until((started + at).into()).await;
        let signalled = Instant::now();
        *lock(&restart_window) = Some((signalled, None));
        let stopped = g.restart().await?;
        if let Some(pid) = g.pid() {
            let mut pids = lock(&watch_pids);
            pids.clear();
            pids.extend(o.watch_pids.iter().copied());
            pids.push(pid);
        }
        g.wait_accepting(o.target).await?;
        let back = Instant::now();
        *lock(&restart_window) = Some((signalled, Some(back)));
        anyhow::Ok(Some(RestartFigures {
            at_secs: signalled.duration_since(started).as_secs_f64(),
            stopped_secs: stopped.secs,
            killed: stopped.killed,
            accepting_again_secs: back.duration_since(started).as_secs_f64(),
        }))
    };
    let ((), restart) = tokio::join!(flood.run(o.attack_rate, attack_began, attack_end), restart);
    let restart = restart?;
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

    // The upstream's seconds over capacity are counted over the whole
    // drill: from the first counted page view to the end of the drain.
    let first_second = unix_second_at(count_from.min(attack_began));
    let last_second = unix_secs();
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
    let gateway = match gateway.as_mut() {
        Some(g) => {
            let stopped = g.stop().await;
            Some(GatewayFigures {
                command: o.gateway_command.join(" "),
                log: g.log().display().to_string(),
                ready_secs,
                flood_started_secs,
                restarts: restart.into_iter().collect(),
                stopped_secs: stopped.secs,
                stop_killed: stopped.killed,
            })
        }
        None => None,
    };
    stop_watch.store(true, Ordering::Relaxed);
    let memory = match memory {
        Some(task) => task.await.ok(),
        None => None,
    };
    let legit = std::mem::take(&mut *lock(&tally));
    Ok(Summary {
        label: o.label.clone(),
        target: o.target.to_string(),
        host: o.host.clone(),
        duration_secs: o.duration.as_secs_f64(),
        warmup_secs: o.warmup.as_secs_f64(),
        flood_after_secs: o.flood_after.as_secs_f64(),
        visit_steps: o.visit_steps,
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
        gateway,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
