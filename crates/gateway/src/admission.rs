//! Admission: the layer that runs before HTTP is parsed.
//!
//! Pingora's read timeout applies to each read, so a client that drips one
//! byte of its request head every second is never cut off by it. This layer
//! wraps Pingora's HTTP application and adds what a gateway under attack
//! needs on top:
//!
//! * a per-client-address and a global cap on open connections; under a
//!   full table, the connection that has waited longest for a request head
//!   is closed to admit a new one (see [`ConnectionTable::admit`]);
//! * a deadline for the whole request head, counted from the first byte of
//!   each request (from the accept for the first one);
//! * a floor on the request-body rate, averaged since the body began;
//! * an idle timeout between keep-alive requests.
//!
//! The wrapper drives each connection one request at a time, so it knows
//! when a request begins and ends. The proxy tells it when the head has
//! arrived and how the body is progressing through a task-local
//! [`ConnectionState`]: the proxy hooks of an HTTP/1 request run inside the
//! same task as this wrapper, so no lookup table is needed.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::runtime::Runtime;

/// What the admission layer knows about the request in progress on one
/// connection.
#[derive(Debug)]
pub struct ConnectionState {
    started: Instant,
    /// Shared with the connection's [`CaptureStream`](crate::capture::CaptureStream),
    /// whose `head_done` is this request's.
    capture: Arc<crate::capture::CaptureControl>,
    /// Milliseconds after `started` at which the body began; `u64::MAX`
    /// while no body is expected.
    body_started_ms: AtomicU64,
    body_bytes: AtomicU64,
    body_done: AtomicBool,
    changed: Notify,
}

impl ConnectionState {
    fn new(capture: Arc<crate::capture::CaptureControl>) -> Self {
        capture.next_request();
        ConnectionState {
            started: Instant::now(),
            capture,
            body_started_ms: AtomicU64::new(u64::MAX),
            body_bytes: AtomicU64::new(0),
            body_done: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }
}

tokio::task_local! {
    static CONNECTION: Arc<ConnectionState>;
}

/// Called by the proxy as soon as the request head has been parsed.
pub fn head_received() {
    let _ = CONNECTION.try_with(|c| {
        c.capture.head_done.store(true, Ordering::Release);
        c.changed.notify_one();
    });
}

/// Called by the proxy when the request announces a body: from now on the
/// body-rate floor applies.
pub fn body_expected() {
    let _ = CONNECTION.try_with(|c| {
        let ms = c.started.elapsed().as_millis() as u64;
        c.body_started_ms.store(ms, Ordering::Release);
        c.changed.notify_one();
    });
}

/// Called by the proxy for each piece of request body received.
pub fn body_progress(bytes: usize, end: bool) {
    let _ = CONNECTION.try_with(|c| {
        c.body_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        if end {
            c.body_done.store(true, Ordering::Release);
        }
    });
}

/// Why a connection was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cutoff {
    HeadTimeout,
    SlowBody,
    /// Closed to make room in a full table (see [`ConnectionTable::admit`]).
    Evicted,
}

/// Open connections per client address, and in all.
#[derive(Debug, Default)]
pub struct ConnectionTable {
    shards: [Mutex<HashMap<IpAddr, u32>>; 16],
    total: AtomicU64,
    /// The HTTP/1 connections that hold a place while waiting for a request
    /// head (the first one, or the next one on a keep-alive connection),
    /// by when they began to wait. Bounded by the table itself: one entry
    /// per such connection at most.
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    next: u64,
    queue: BTreeMap<(Instant, u64), Arc<Notify>>,
}

/// One connection's entry among those waiting for a request head; leaves
/// the queue when dropped (when the head has arrived, or the connection
/// ends).
#[derive(Debug)]
pub struct Waiter {
    table: Arc<ConnectionTable>,
    key: (Instant, u64),
    evict: Arc<Notify>,
}

impl Waiter {
    /// Resolves when the table has chosen this connection to make room.
    async fn evicted(&self) {
        self.evict.notified().await
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.table
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue
            .remove(&self.key);
    }
}

/// Holds one connection's place in the table until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    table: Arc<ConnectionTable>,
    address: Option<IpAddr>,
}

impl ConnectionTable {
    fn shard(&self, ip: &IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ip.hash(&mut h);
        &self.shards[(h.finish() % 16) as usize]
    }

    pub fn open_for(&self, ip: &IpAddr) -> u32 {
        self.shard(ip)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(ip)
            .copied()
            .unwrap_or(0)
    }

    /// Takes a place for a connection from `address`, or says which cap
    /// refused it; the flag tells whether a waiting connection was evicted
    /// to make room.
    ///
    /// A client over its own cap is refused. A full table, though, does not
    /// refuse the newcomer: it closes the connection that has waited longest
    /// for a request head and admits the new one. Refusing instead would let
    /// a slowloris from many addresses (or from one, when the global cap is
    /// the lower) keep the table full with dripping connections, each held
    /// for the whole head deadline, so that a visitor finds it full whenever
    /// it arrives, and the deadline alone cannot free places faster than the
    /// attack takes them. With eviction a newcomer that sends its head at
    /// once is the last in line to be cut, and gets as long as the table
    /// takes to turn over (the cap divided by the attack's connection rate:
    /// 20,000 / 1,000 a second = 20 s at the defaults) to send it. Idle
    /// keep-alive connections are in the same queue, as nginx closes them
    /// first when it runs out of connections. The table can briefly hold one
    /// more connection per eviction in progress, until the evicted task ends.
    pub fn admit(
        self: &Arc<Self>,
        address: Option<IpAddr>,
        limits: &Limits,
    ) -> Result<(ConnectionSlot, bool), &'static str> {
        let mut shard = address.map(|ip| self.shard(&ip).lock().unwrap_or_else(|p| p.into_inner()));
        if let (Some(shard), Some(ip)) = (&shard, address) {
            if shard.get(&ip).copied().unwrap_or(0) >= limits.max_connections_per_client {
                return Err("per-client");
            }
        }
        let mut evicted = false;
        if self.total.load(Ordering::Relaxed) >= u64::from(limits.max_connections) {
            if !self.evict_longest_waiting() {
                return Err("global");
            }
            evicted = true;
        }
        if let (Some(shard), Some(ip)) = (&mut shard, address) {
            *shard.entry(ip).or_insert(0) += 1;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok((
            ConnectionSlot {
                table: self.clone(),
                address,
            },
            evicted,
        ))
    }

    /// Tells the connection that has waited longest for a request head to
    /// close; false when none is waiting.
    fn evict_longest_waiting(&self) -> bool {
        let victim = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .queue
            .pop_first();
        match victim {
            Some((_, evict)) => {
                // Stores a permit if the connection is not polling just now.
                evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Puts a connection in the queue of those waiting for a request head.
    pub fn begin_waiting(self: &Arc<Self>) -> Waiter {
        let evict = Arc::new(Notify::new());
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.next += 1;
        let key = (Instant::now(), waiting.next);
        waiting.queue.insert(key, evict.clone());
        Waiter {
            table: self.clone(),
            key,
            evict,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.table.total.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.address {
            let mut shard = self
                .table
                .shard(&ip)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(count) = shard.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    shard.remove(&ip);
                }
            }
        }
    }
}

/// The admission wrapper around Pingora's HTTP application.
pub struct Admission<A> {
    pub inner: Arc<A>,
    pub runtime: Arc<Runtime>,
    pub table: Arc<ConnectionTable>,
    pub metrics: Arc<Metrics>,
    /// Whether this listener accepts HTTP/2 with prior knowledge.
    pub h2c: bool,
    /// Where requests the HTTP layer refuses before any hook are reported.
    pub refusals: Arc<crate::capture::Refusals>,
}

#[async_trait]
impl<A> ServerApp for Admission<A>
where
    A: ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let limits = self.runtime.snapshot().config.limits.clone();
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let _slot = match self.table.admit(peer, &limits) {
            Ok((slot, evicted)) => {
                if evicted {
                    self.metrics
                        .connections_evicted
                        .fetch_add(1, Ordering::Relaxed);
                }
                slot
            }
            Err(which) => {
                let counter = if which == "global" {
                    &self.metrics.connections_rejected_global
                } else {
                    &self.metrics.connections_rejected_per_client
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if stream.selected_alpn_proto() != Some(ALPN::H2) {
                    let body =
                        "Too many connections from your address; close some and try again.\n";
                    let answer = format!(
                        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        stream.write_all(answer.as_bytes()),
                    )
                    .await;
                }
                return None;
            }
        };
        self.metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let _open = OpenGauge(&self.metrics);

        // HTTP/2 multiplexes requests over one connection and Pingora serves
        // each stream in its own task; its flow control and the h2 crate's
        // limits govern it, so the HTTP/1 deadlines below do not apply.
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            let _ = self.inner.process_new(stream, shutdown).await;
            return None;
        }

        // HTTP/1 heads the HTTP layer refuses itself are reported (see
        // `capture`): the stream is wrapped once, and told of each request.
        let capture = Arc::new(crate::capture::CaptureControl::default());
        let refusals = self.refusals.clone();
        let report: crate::capture::RefusalReport =
            Arc::new(move |head: &[u8]| refusals.report(peer, head));
        let mut stream: Stream = Box::new(crate::capture::CaptureStream::new(
            stream,
            limits.max_header_bytes.min(crate::capture::MAX_CAPTURED),
            capture.clone(),
            report,
        ));
        let mut first = true;
        loop {
            let limits = self.runtime.snapshot().config.limits.clone();
            let mut head_deadline = Instant::now() + limits.head_timeout;
            // From here until its head has arrived, this connection may be
            // closed to make room in a full table.
            let waiter = self.table.begin_waiting();
            if !first {
                // Wait for the first byte of the next request without
                // starting the head clock: an idle keep-alive connection is
                // governed by the idle timeout instead.
                let mut one = [0u8; 1];
                let peek = tokio::time::timeout(limits.idle_timeout, stream.try_peek(&mut one));
                let peeked = tokio::select! {
                    peeked = peek => peeked,
                    _ = waiter.evicted() => return None,
                };
                match peeked {
                    Ok(Ok(true)) => head_deadline = Instant::now() + limits.head_timeout,
                    // This stream cannot peek (TLS): allow the idle time too.
                    Ok(Ok(false)) => head_deadline += limits.idle_timeout,
                    Ok(Err(_)) => return None,
                    Err(_) => {
                        self.metrics.idle_closes.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            } else if self.h2c {
                // With prior-knowledge HTTP/2 enabled, a connection that
                // opens with the HTTP/2 preface is handed over whole.
                let mut preface = [0u8; 3];
                let peek =
                    tokio::time::timeout_at(head_deadline.into(), stream.try_peek(&mut preface));
                let peeked = tokio::select! {
                    peeked = peek => peeked,
                    _ = waiter.evicted() => return None,
                };
                match peeked {
                    Ok(Ok(true)) if &preface == b"PRI" => {
                        drop(waiter);
                        // HTTP/2 writes its settings before any request:
                        // nothing here is an HTTP/1 head to report.
                        capture.head_done.store(true, Ordering::Release);
                        let _ = self.inner.process_new(stream, shutdown).await;
                        return None;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => return None,
                    Err(_) => {
                        self.metrics.head_timeouts.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
            first = false;

            let state = Arc::new(ConnectionState::new(capture.clone()));
            let request = CONNECTION.scope(state.clone(), self.inner.process_new(stream, shutdown));
            tokio::select! {
                next = request => match next {
                    Some(s) => stream = s,
                    None => return None,
                },
                cutoff = watch(&state, head_deadline, &limits, waiter) => {
                    let counter = match cutoff {
                        Cutoff::HeadTimeout => &self.metrics.head_timeouts,
                        Cutoff::SlowBody => &self.metrics.slow_bodies,
                        // Counted where the newcomer was admitted.
                        Cutoff::Evicted => return None,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await
    }
}

struct OpenGauge<'a>(&'a Metrics);

impl Drop for OpenGauge<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves when the request in progress breaks a deadline; never resolves
/// for a request that keeps to them.
async fn watch(
    state: &ConnectionState,
    head_deadline: Instant,
    limits: &Limits,
    waiter: Waiter,
) -> Cutoff {
    while !state.capture.head_done.load(Ordering::Acquire) {
        tokio::select! {
            _ = tokio::time::sleep_until(head_deadline.into()) => {
                if !state.capture.head_done.load(Ordering::Acquire) {
                    return Cutoff::HeadTimeout;
                }
            }
            _ = waiter.evicted() => {
                if !state.capture.head_done.load(Ordering::Acquire) {
                    return Cutoff::Evicted;
                }
            }
            _ = state.changed.notified() => {}
        }
    }
    // The head is in: the request is no longer a candidate for eviction.
    drop(waiter);
    // Sleep until a body is announced; requests without one never tick.
    while state.body_started_ms.load(Ordering::Acquire) == u64::MAX {
        state.changed.notified().await;
    }
    if limits.body_min_rate == 0 {
        std::future::pending::<()>().await;
    }
    let started_ms = state.body_started_ms.load(Ordering::Acquire);
    let mut window = RateWindow::new(limits.body_rate_grace, limits.body_min_rate);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if state.body_done.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
        let elapsed_ms = (state.started.elapsed().as_millis() as u64).saturating_sub(started_ms);
        if window.too_slow(elapsed_ms, state.body_bytes.load(Ordering::Relaxed)) {
            return Cutoff::SlowBody;
        }
    }
}

/// The body-rate floor over a sliding window as long as the grace period:
/// the bytes of the last window must keep up with the floor. An average
/// since the start would let a client send a fast burst and then drip for
/// as long as the burst keeps its average above the floor.
struct RateWindow {
    window_ms: u64,
    min_rate: u64,
    /// (milliseconds since the body began, bytes received by then), oldest
    /// first; one sample per tick, never more than a window and a tick.
    samples: std::collections::VecDeque<(u64, u64)>,
}

impl RateWindow {
    fn new(window: Duration, min_rate: u64) -> RateWindow {
        let window_ms = (window.as_millis() as u64).max(1000);
        RateWindow {
            window_ms,
            min_rate,
            samples: std::collections::VecDeque::from([(0, 0)]),
        }
    }

    /// Records a sample; true when the last window fell below the floor.
    /// Nothing is judged before a whole window has passed.
    fn too_slow(&mut self, at_ms: u64, bytes: u64) -> bool {
        self.samples.push_back((at_ms, bytes));
        while self.samples.len() > 2 && self.samples[1].0 + self.window_ms <= at_ms {
            self.samples.pop_front();
        }
        let (since_ms, since_bytes) = self.samples[0];
        let span_ms = at_ms.saturating_sub(since_ms);
        if at_ms < self.window_ms || span_ms == 0 {
            return false;
        }
        bytes.saturating_sub(since_bytes).saturating_mul(1000)
            < self.min_rate.saturating_mul(span_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst then a drip is cut off once the drip has lasted a window,
    /// whatever the burst did for the average; a steady body at the floor
    /// is not.
    #[test]
    fn the_body_rate_floor_is_a_sliding_window() {
        let mut burst_then_drip = RateWindow::new(Duration::from_secs(5), 1024);
        let mut cut_at = None;
        for tick in 1..=200u64 {
            let at = tick * 500;
            // 10 MB in the first second, then one byte a tick.
            let bytes = if at <= 1000 {
                10_000_000
            } else {
                10_000_000 + tick
            };
            if burst_then_drip.too_slow(at, bytes) {
                cut_at = Some(at);
                break;
            }
        }
        let cut_at = cut_at.expect("the drip is cut off");
        assert!(cut_at <= 6_500, "cut off after {cut_at} ms");
        let mut steady = RateWindow::new(Duration::from_secs(5), 1024);
        for tick in 1..=200u64 {
            assert!(!steady.too_slow(tick * 500, tick * 600), "tick {tick}");
        }
        // Nothing is judged within the first window.
        let mut silent = RateWindow::new(Duration::from_secs(5), 1024);
        assert!(!silent.too_slow(4_500, 0));
        assert!(silent.too_slow(5_000, 0));
    }

    #[test]
    fn connection_caps_are_enforced_and_released() {
        let table = Arc::new(ConnectionTable::default());
        let limits = Limits {
            max_connections_per_client: 2,
            max_connections: 3,
            ..Limits::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let (s1, _) = table.admit(Some(a), &limits).unwrap();
        let _s2 = table.admit(Some(a), &limits).unwrap();
        assert_eq!(table.admit(Some(a), &limits).unwrap_err(), "per-client");
        let _s3 = table.admit(Some(b), &limits).unwrap();
        // Full, and nobody is waiting for a head: refused.
        assert_eq!(table.admit(Some(b), &limits).unwrap_err(), "global");
        drop(s1);
        assert_eq!(table.open_for(&a), 1);
        assert!(table.admit(Some(a), &limits).is_ok());
    }

    /// A full table closes the connection that has waited longest for its
    /// head to admit a newcomer; a client over its own cap is still refused.
    #[tokio::test]
    async fn a_full_table_evicts_the_longest_waiting_connection() {
        let table = Arc::new(ConnectionTable::default());
        let limits = Limits {
            max_connections_per_client: 2,
            max_connections: 2,
            ..Limits::default()
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let _s1 = table.admit(Some(a), &limits).unwrap();
        let oldest = table.begin_waiting();
        let _s2 = table.admit(Some(a), &limits).unwrap();
        let younger = table.begin_waiting();
        assert_eq!(table.admit(Some(a), &limits).unwrap_err(), "per-client");
        let (_s3, evicted) = table.admit(Some(b), &limits).unwrap();
        assert!(evicted);
        // The oldest was told (the permit waits for it); the younger not.
        tokio::time::timeout(Duration::from_secs(1), oldest.evicted())
            .await
            .expect("the longest-waiting connection is evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), younger.evicted())
                .await
                .is_err()
        );
        // A connection whose head has arrived (its waiter dropped) is not
        // a candidate.
        drop(younger);
        assert_eq!(table.admit(Some(b), &limits).unwrap_err(), "global");
        assert!(table.waiting.lock().unwrap().queue.is_empty());
    }

    #[test]
    fn connection_table_survives_concurrent_churn() {
        let table = Arc::new(ConnectionTable::default());
        let limits = Limits {
            max_connections_per_client: 1_000_000,
            max_connections: 1_000_000,
            ..Limits::default()
        };
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let table = table.clone();
                let limits = limits.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        let ip = IpAddr::from([10, t as u8, (i % 7) as u8, 1]);
                        let slot = table.admit(Some(ip), &limits).unwrap();
                        drop(slot);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(table.total.load(Ordering::Relaxed), 0);
        assert!(table.shards.iter().all(|s| s.lock().unwrap().is_empty()));
    }
}
