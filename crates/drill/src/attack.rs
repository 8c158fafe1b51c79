//! The flood: open-loop requests at a fixed total rate, spread over the
//! attacker addresses in turn. Open loop means a request is sent when the
//! schedule says, whether or not earlier ones were answered, as a botnet
//! does; each attacker reuses its connection when the gateway keeps it open
//! and reconnects when the gateway closes it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::challenge::{is_waiting_room, parse_challenge};
use crate::client::{request, ClientError, Connection, Response};
use crate::report::{AttackOutcome, AttackTally};

/// How often the scheduler wakes to send what is due.
const TICK: Duration = Duration::from_millis(5);

/// Headers of an attack request: a flood that wants to pass for browsers
/// (its `Accept` is the drill's `--attack-accept`).
const ATTACK_HEADERS: &str = "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0 Safari/537.36\r\n\
Accept-Language: en-US,en;q=0.9\r\n";

/// A browser's `Accept`, the flood's default.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Says what an attack request's response was.
pub fn classify(r: &Response) -> AttackOutcome {
    match r.status {
        200..=399 => AttackOutcome::Passed,
        403 if parse_challenge(&r.text()).is_some() => AttackOutcome::Challenged,
        403 => AttackOutcome::Blocked,
        429 => AttackOutcome::Limited,
        503 if is_waiting_room(&r.text()) => AttackOutcome::Queued,
        503 => AttackOutcome::Unavailable,
        _ => AttackOutcome::Other,
    }
}

struct Attacker {
    source: Option<IpAddr>,
    /// A connection the gateway kept open, for the next request.
    idle: Mutex<Option<Connection>>,
    /// Whether this address ever got a connection through.
    connected: AtomicBool,
}

/// A flood ready to run.
pub struct Flood {
    target: SocketAddr,
    attackers: Vec<Attacker>,
    /// One serialised request per path.
    requests: Vec<Vec<u8>>,
    timeout: Duration,
    /// The most requests open at once: the drill's file-descriptor budget.
    max_in_flight: usize,
    in_flight: AtomicUsize,
    pub tally: AttackTally,
}

impl Flood {
    /// A flood from `sources` (one attacker each; `None` lets the kernel pick).
    pub fn new(
        target: SocketAddr,
        host: &str,
        sources: Vec<Option<IpAddr>>,
        paths: &[String],
        accept: &str,
        timeout: Duration,
        max_in_flight: usize,
    ) -> Flood {
        let headers = format!("{ATTACK_HEADERS}Accept: {accept}\r\n");
        Flood {
            target,
            attackers: sources
                .into_iter()
                .map(|source| Attacker {
                    source,
                    idle: Mutex::new(None),
                    connected: AtomicBool::new(false),
                })
                .collect(),
            requests: paths
                .iter()
                .map(|p| request("GET", p, host, &headers, None))
                .collect(),
            timeout,
            max_in_flight: max_in_flight.max(1),
            in_flight: AtomicUsize::new(0),
            tally: AttackTally::default(),
        }
    }

    /// Distinct source addresses that connected at least once: the
    /// gateway saw this many clients.
    pub fn addresses_connected(&self) -> u64 {
        self.attackers
            .iter()
            .filter(|a| a.connected.load(Ordering::Relaxed))
            .count() as u64
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Sends `rate` requests per second from `start` until `end`, attackers
    /// and paths in turn. Returns when the last one is sent, not answered.
    pub async fn run(self: &Arc<Flood>, rate: u32, start: Instant, end: Instant) {
        if rate == 0 || self.attackers.is_empty() {
            tokio::time::sleep_until(end.into()).await;
            return;
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut launched: u64 = 0;
        loop {
            tick.tick().await;
            let now = Instant::now();
            let until = now.min(end);
            let due =
                (until.saturating_duration_since(start).as_secs_f64() * f64::from(rate)) as u64;
            while launched < due {
                let n = launched as usize;
                launched += 1;
                if self.in_flight.load(Ordering::Relaxed) >= self.max_in_flight {
                    self.tally.not_sent.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                self.tally.sent.fetch_add(1, Ordering::Relaxed);
                self.in_flight.fetch_add(1, Ordering::Relaxed);
                let flood = Arc::clone(self);
                tokio::spawn(async move {
                    let outcome = flood
                        .one(n % flood.attackers.len(), n % flood.requests.len())
                        .await;
                    flood.tally.count(outcome);
                    flood.in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
            if now >= end {
                return;
            }
        }
    }

    /// One request from attacker `who`.
    async fn one(&self, who: usize, path: usize) -> AttackOutcome {
        let attacker = &self.attackers[who];
        let reused = attacker
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let bytes = &self.requests[path];
        let work = async {
            if let Some(mut c) = reused {
                match c.exchange(bytes, false).await {
                    Ok(r) => return Ok((r, c)),
                    // The gateway closed it meanwhile: reconnect, as a bot would.
                    Err(ClientError::ClosedBeforeResponse) => {}
                    Err(e) => return Err(e),
                }
            }
            let mut c = Connection::open(attacker.source, self.target).await?;
            self.tally.connections.fetch_add(1, Ordering::Relaxed);
            attacker.connected.store(true, Ordering::Relaxed);
            let r = c.exchange(bytes, false).await?;
            Ok((r, c))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Err(_) => AttackOutcome::Timeout,
            Ok(Err(_)) => AttackOutcome::Error,
            Ok(Ok((r, c))) => {
                let outcome = classify(&r);
                if r.keep_alive {
                    let mut idle = attacker.idle.lock().unwrap_or_else(|e| e.into_inner());
                    if idle.is_none() {
                        *idle = Some(c);
                    }
                }
                outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            body: body.as_bytes().to_vec(),
            ..Response::default()
        }
    }

    #[test]
    fn responses_are_classified_by_status_and_page() {
        let challenge =
            rampart_flood::pages::challenge_page(&rampart_flood::pages::ChallengePage {
                token: "t",
                difficulty: 14,
                wait_token: "w",
                wait_secs: 5,
                return_to: "/",
            });
        assert_eq!(classify(&response(200, "ok")), AttackOutcome::Passed);
        assert_eq!(classify(&response(302, "")), AttackOutcome::Passed);
        assert_eq!(
            classify(&response(403, &challenge)),
            AttackOutcome::Challenged
        );
        assert_eq!(
            classify(&response(403, "forbidden")),
            AttackOutcome::Blocked
        );
        assert_eq!(classify(&response(429, "")), AttackOutcome::Limited);
        assert_eq!(
            classify(&response(
                503,
                &rampart_flood::pages::waiting_room_page(9, 5)
            )),
            AttackOutcome::Queued
        );
        assert_eq!(
            classify(&response(503, &rampart_flood::pages::busy_page(5))),
            AttackOutcome::Unavailable
        );
        assert_eq!(classify(&response(502, "")), AttackOutcome::Other);
    }
}
