//! What the drill watches besides HTTP: the memory of the gateway's
//! processes (from `/proc`) and the capped demo origin's counts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{request, Connection};
use crate::report::{MemoryFigures, UpstreamFigures};

/// How often memory is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// A process's resident memory and its high-water mark, in KiB, from
/// `/proc/PID/status`; `None` once the process is gone.
pub fn process_memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&status)
}

/// Reads `VmRSS` and `VmHWM` from the text of `/proc/PID/status`.
pub fn parse_status(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    Some((field("VmRSS:")?, field("VmHWM:").unwrap_or(0)))
}

/// The direct children of `pid` (nginx's workers, say), from
/// `/proc/PID/task/*/children`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// Samples the processes `pids` and their children every [`SAMPLE_EVERY`]
/// until `stop` is set; returns the peak of their summed resident memory and
/// the highest sum of the high-water marks of the processes alive at once.
/// `pids` may change meanwhile (a gateway the drill restarts).
pub async fn sample_memory(pids: Arc<Mutex<Vec<u32>>>, stop: Arc<AtomicBool>) -> MemoryFigures {
    let mut peak = 0;
    let mut peak_hwm = 0;
    let mut hwm: HashMap<u32, u64> = HashMap::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let pids = pids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut all = pids.clone();
        for p in &pids {
            all.extend(children(*p));
        }
        all.sort_unstable();
        all.dedup();
        let (mut sum, mut sum_hwm) = (0, 0);
        for p in all {
            if let Some((rss, high)) = process_memory_kb(p) {
                sum += rss;
                let h = hwm.entry(p).or_default();
                *h = (*h).max(high).max(rss);
                sum_hwm += *h;
            }
        }
        peak = peak.max(sum);
        peak_hwm = peak_hwm.max(sum_hwm);
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    MemoryFigures {
        peak_rss_kb: peak,
        hwm_kb: peak_hwm,
        processes: hwm.len(),
    }
}

/// The capped demo origin's counts at one moment (see `rampart_demo::STATS_PATH`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    pub capacity_per_sec: u64,
    pub arrived: u64,
    pub served: u64,
    /// (Unix second, arrived, served), oldest first.
    pub seconds: Vec<(u64, u64, u64)>,
}

/// Reads the origin's counts.
pub async fn upstream_counts(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<UpstreamCounts, String> {
    let fetch = async {
        let mut c = Connection::open(None, addr)
            .await
            .map_err(|e| e.to_string())?;
        let r = c
            .exchange(
                &request(
                    "GET",
                    path,
                    &addr.to_string(),
                    "Connection: close\r\n",
                    None,
                ),
                false,
            )
            .await
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("http://{addr}{path} answered {}", r.status));
        }
        parse_upstream_counts(&r.text())
    };
    tokio::time::timeout(timeout, fetch)
        .await
        .map_err(|_| format!("http://{addr}{path} did not answer in {timeout:?}"))?
}

/// Reads the JSON of the origin's counts.
pub fn parse_upstream_counts(text: &str) -> Result<UpstreamCounts, String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("the upstream's counts are not JSON: {e}"))?;
    let n = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("the upstream's counts have no `{k}`"))
    };
    let seconds = v["seconds"]
        .as_array()
        .ok_or("the upstream's counts have no `seconds`")?
        .iter()
        .filter_map(|s| Some((s[0].as_u64()?, s[1].as_u64()?, s[2].as_u64()?)))
        .collect();
    Ok(UpstreamCounts {
        capacity_per_sec: n("capacity_per_sec")?,
        arrived: n("arrived")?,
        served: n("served")?,
        seconds,
    })
}

/// The figures for an attack `secs` long, from the counts taken before and
/// after it; the per-second peak and the seconds over capacity are those
/// from Unix second `first` to `last` (both included, as partial seconds):
/// the drill's whole window, which may start before the attack.
pub fn upstream_figures(
    before: &UpstreamCounts,
    after: &UpstreamCounts,
    first: u64,
    last: u64,
    secs: f64,
) -> UpstreamFigures {
    let window = after
        .seconds
        .iter()
        .filter(|(s, _, _)| (first..=last).contains(s));
    let (mut max, mut over) = (0, 0);
    for (_, arrived, _) in window {
        max = max.max(*arrived);
        if *arrived > after.capacity_per_sec {
            over += 1;
        }
    }
    let secs = secs.max(1e-9);
    UpstreamFigures {
        capacity_per_sec: after.capacity_per_sec,
        arrived_per_sec: after.arrived.saturating_sub(before.arrived) as f64 / secs,
        served_per_sec: after.served.saturating_sub(before.served) as f64 / secs,
        max_arrived_in_a_second: max,
        seconds_over_capacity: over,
        window_secs: last.saturating_sub(first) + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_status() {
        let text = "Name:\trampart\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t3\n";
        assert_eq!(parse_status(text), Some((102_400, 204_800)));
        assert_eq!(parse_status("Name:\tx\n"), None);
        // Our own process is always there.
        let (rss, hwm) = process_memory_kb(std::process::id()).unwrap();
        assert!(rss > 0 && hwm >= rss);
    }

    #[test]
    fn upstream_figures_cover_only_the_attack() {
        let before = UpstreamCounts {
            capacity_per_sec: 100,
            arrived: 1000,
            served: 900,
            seconds: vec![],
        };
        let json = r#"{"capacity_per_sec":100,"arrived":1300,"served":1150,"seconds":[[9,500,100],[10,120,100],[11,80,80],[12,100,100],[13,700,100]]}"#;
        let after = parse_upstream_counts(json).unwrap();
        let f = upstream_figures(&before, &after, 10, 12, 3.0);
        assert_eq!(
            (
                f.max_arrived_in_a_second,
                f.seconds_over_capacity,
                f.window_secs
            ),
            (120, 1, 3)
        );
        assert_eq!((f.arrived_per_sec, f.served_per_sec), (100.0, 250.0 / 3.0));
        assert!(parse_upstream_counts("{}").is_err());
    }
}
