//! Upstream pools: round-robin over servers that are up.
//!
//! A server is *up* when the active health check last judged it healthy
//! (or no check is configured) and it is not passively ejected. Passive
//! ejection takes a server out for a while after several consecutive
//! failures seen on real traffic, so a dead server stops costing every
//! request a connect timeout before the next active probe notices.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::UpstreamPool;

/// One upstream server and what we know of its health.
#[derive(Debug)]
pub struct Server {
    pub address: SocketAddr,
    /// Verdict of the active health check.
    healthy: AtomicBool,
    /// Consecutive active-probe results in the current direction.
    probe_streak: AtomicU32,
    /// Consecutive failures on real traffic.
    passive_failures: AtomicU32,
    /// Ejected until this many milliseconds after the pool's epoch.
    ejected_until_ms: AtomicU64,
}

#[derive(Debug)]
pub struct Pool {
    pub definition: UpstreamPool,
    pub servers: Vec<Server>,
    next: AtomicUsize,
    epoch: Instant,
}

impl Pool {
    pub fn new(definition: UpstreamPool) -> Arc<Pool> {
        let servers = definition
            .servers
            .iter()
            .map(|a| Server {
                address: *a,
                healthy: AtomicBool::new(true),
                probe_streak: AtomicU32::new(0),
                passive_failures: AtomicU32::new(0),
                ejected_until_ms: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Pool {
            definition,
            servers,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn is_up(&self, index: usize) -> bool {
        let s = &self.servers[index];
        s.healthy.load(Ordering::Relaxed)
            && s.ejected_until_ms.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// Picks the next server that is up, skipping those in `tried` (servers
    /// that already failed this request). Returns its index.
    pub fn pick(&self, tried: u64) -> Option<usize> {
        let n = self.servers.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| (i >= 64 || tried & (1 << i) == 0) && self.is_up(i))
    }

    /// Real traffic reached this server and it answered.
    pub fn report_success(&self, index: usize) {
        if let Some(s) = self.servers.get(index) {
            s.passive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// Real traffic failed to reach this server. Returns true when this
    /// failure ejected it.
    pub fn report_failure(&self, index: usize) -> bool {
        let Some(s) = self.servers.get(index) else {
            return false;
        };
        let failures = s.passive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.definition.eject_after_failures {
            s.passive_failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + self.definition.eject_for.as_millis() as u64;
            s.ejected_until_ms.store(until, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Records an active probe result, applying the configured thresholds.
    /// Returns `Some(new_state)` when the server's health flipped.
    pub fn record_probe(&self, index: usize, ok: bool) -> Option<bool> {
        let Some(check) = &self.definition.health_check else {
            return None;
        };
        let s = self.servers.get(index)?;
        let was = s.healthy.load(Ordering::Relaxed);
        if ok == was {
            s.probe_streak.store(0, Ordering::Relaxed);
            return None;
        }
        let streak = s.probe_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if ok {
            check.healthy_after
        } else {
            check.unhealthy_after
        };
        if streak >= needed {
            s.probe_streak.store(0, Ordering::Relaxed);
            s.healthy.store(ok, Ordering::Relaxed);
            if ok {
                // A readmitted server starts with a clean passive record.
                s.ejected_until_ms.store(0, Ordering::Relaxed);
            }
            return Some(ok);
        }
        None
    }

    pub fn up_count(&self) -> usize {
        (0..self.servers.len()).filter(|&i| self.is_up(i)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthCheck;
    use std::time::Duration;

    fn pool(n: usize) -> Arc<Pool> {
        Pool::new(UpstreamPool {
            name: "p".into(),
            servers: (0..n)
                .map(|i| SocketAddr::from(([127, 0, 0, 1], 4000 + i as u16)))
                .collect(),
            tls_sni: None,
            health_check: Some(HealthCheck {
                path: "/".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                unhealthy_after: 2,
                healthy_after: 1,
            }),
            eject_after_failures: 2,
            eject_for: Duration::from_secs(60),
        })
    }

    #[test]
    fn round_robin_skips_servers_that_are_down() {
        let p = pool(3);
        assert_eq!(
            p.record_probe(1, false),
            None,
            "one failed probe is not enough"
        );
        assert_eq!(p.record_probe(1, false), Some(false));
        let picks: Vec<usize> = (0..6).map(|_| p.pick(0).unwrap()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&2));
        assert_eq!(p.record_probe(1, true), Some(true));
        assert_eq!(p.up_count(), 3);
    }

    #[test]
    fn passive_failures_eject_and_tried_servers_are_skipped() {
        let p = pool(2);
        assert!(!p.report_failure(0));
        assert!(p.report_failure(0));
        assert!(!p.is_up(0));
        assert_eq!(p.pick(0), Some(1));
        assert_eq!(
            p.pick(1 << 1),
            None,
            "the only server left was already tried"
        );
    }
}
