//! The bounded channel from the request path to the store, and the writer
//! thread behind it.
//!
//! The gateway holds a [`Recorder`] and calls [`Recorder::record`] from any
//! thread; it never blocks: when the channel is full (or the writer is gone)
//! the event is counted as dropped. One writer thread takes events in
//! batches, stores each batch in one transaction, feeds the events to the
//! [`Grouper`], saves the incidents that changed and reports every
//! [`Change`] to the gateway's callback (which sends alerts).
//!
//! When recording is off, the gateway holds [`Recorder::disabled()`] rather
//! than an `Option<Recorder>`: the request path calls `record` the same way
//! either way, and a disabled recorder drops events without counting them.

use crate::grouping::{Change, Grouper, Thresholds};
use crate::model::{Event, EventKind, IncidentStatus, Millis};
use crate::store::{Retention, Store, StoreError, StoreErrorKind};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often open incidents are checked for quiet.
const TICK: Duration = Duration::from_secs(1);
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Write errors are printed at most this often (a full disk fails every batch).
const ERROR_PRINT_EVERY: Duration = Duration::from_secs(60);

/// The current time in Unix milliseconds.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Counters {
    recorded: AtomicU64,
    dropped: AtomicU64,
}

/// The request path's handle on the event channel. Cheap to clone; every
/// clone feeds the same writer and shares the same counters.
#[derive(Clone, Debug)]
pub struct Recorder {
    sender: Option<SyncSender<Event>>,
    counters: Arc<Counters>,
}

impl Recorder {
    /// A recorder that drops every event without counting it, for when
    /// recording is off.
    pub fn disabled() -> Recorder {
        Recorder {
            sender: None,
            counters: Arc::new(Counters::default()),
        }
    }

    /// Hands an event to the writer. Never blocks: when the channel is full
    /// or the writer has stopped, the event is dropped and counted.
    pub fn record(&self, event: Event) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(event) {
            Ok(()) => self.counters.recorded.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.dropped.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Whether events go anywhere (false for [`Recorder::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Events dropped so far because the channel was full or the writer gone.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Events handed to the writer so far.
    pub fn recorded(&self) -> u64 {
        self.counters.recorded.load(Ordering::Relaxed)
    }
}

/// How the writer runs.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// The store's file.
    pub path: PathBuf,
    /// Events the channel holds before new ones are dropped. 65,536 events
    /// (about 10 MiB) ride out seconds of a slow disk at flood rates.
    pub capacity: usize,
    /// Events stored per transaction at most. 16,384: the client index takes
    /// inserts at random places, so a transaction writes about one index page
    /// per event until events start sharing pages; four times 4,096 halves
    /// the bytes written per event under a flood (measured with
    /// `bench/incidents-writer.sh`). Such a transaction takes a few hundred
    /// milliseconds; readers never wait for it (WAL), and operators' writes
    /// wait within the busy timeout. Under light load batches are smaller
    /// anyway: they are stored every `flush_every_ms`.
    pub batch_max: usize,
    /// A batch is stored at the latest this long after its first event. 200
    /// ms: a `kill -9` loses at most this much, well under a second.
    pub flush_every_ms: u64,
    /// How much history to keep (pruned once a minute).
    pub retention: Retention,
    /// When incidents open and close.
    pub thresholds: Thresholds,
}

impl WriterConfig {
    /// The defaults, storing in `path`.
    pub fn new(path: impl Into<PathBuf>) -> WriterConfig {
        WriterConfig {
            path: path.into(),
            capacity: 65_536,
            batch_max: 16_384,
            flush_every_ms: 200,
            retention: Retention::default(),
            thresholds: Thresholds::default(),
        }
    }
}

/// What the writer has done, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Events stored.
    pub written: u64,
    /// Transactions that stored them.
    pub batches: u64,
    /// Failed writes (batches, incident saves, prunes).
    pub write_errors: u64,
    /// Events received but not stored because their batch failed (they were
    /// still grouped, so alerts went out).
    pub lost: u64,
    /// Panics caught inside grouping or the change callback.
    pub panics: u64,
}

#[derive(Debug, Default)]
struct SharedStats {
    written: AtomicU64,
    batches: AtomicU64,
    write_errors: AtomicU64,
    lost: AtomicU64,
    panics: AtomicU64,
}

impl SharedStats {
    fn snapshot(&self) -> WriterStats {
        WriterStats {
            written: self.written.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread's handle: statistics and shutdown. Dropping it shuts
/// the writer down too.
#[derive(Debug)]
pub struct WriterHandle {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    stats: Arc<SharedStats>,
}

impl WriterHandle {
    /// What the writer has done so far.
    pub fn stats(&self) -> WriterStats {
        self.stats.snapshot()
    }

    /// Stores everything already queued, then stops the thread and waits for
    /// it. Open incidents stay open in the store and continue on the next
    /// start. Events recorded afterwards are counted as dropped.
    pub fn shutdown(mut self) -> WriterStats {
        self.finish();
        self.stats()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Opens the store (so that a bad path fails at startup with a clear error),
/// takes back the incidents still open from the last run, and starts the
/// writer thread. `on_change` runs on that thread for every change, in order
/// (`Updated` included, once per batch per incident); it should be quick and
/// hand slow work (webhooks) to another thread. A panic in it is caught and
/// counted.
pub fn spawn(
    config: WriterConfig,
    on_change: Box<dyn FnMut(&Change) + Send>,
) -> Result<(Recorder, WriterHandle), StoreError> {
    let store = Store::open(&config.path)?;
    let mut grouper = Grouper::new(config.thresholds.clone());
    let restored = grouper.restore(store.open_incidents()?);
    let (sender, receiver) = sync_channel(config.capacity.max(1));
    let counters = Arc::new(Counters::default());
    let stats = Arc::new(SharedStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let path = config.path.clone();
    let mut writer = Writer {
        store,
        grouper,
        receiver,
        config,
        on_change,
        counters: Arc::clone(&counters),
        stats: Arc::clone(&stats),
        stop: Arc::clone(&stop),
        reported_dropped: 0,
        last_error_print: None,
        errors_unprinted: 0,
    };
    let thread = std::thread::Builder::new()
        .name("rampart-incidents".into())
        .spawn(move || {
            for change in restored {
                writer.handle(change);
            }
            writer.run();
        })
        .map_err(|e| {
            StoreError::new(
                StoreErrorKind::Thread,
                &path,
                format!("could not start the writer thread: {e}"),
            )
        })?;
    let recorder = Recorder {
        sender: Some(sender),
        counters,
    };
    Ok((
        recorder,
        WriterHandle {
            thread: Some(thread),
            stop,
            stats,
        },
    ))
}

/// How long the writer sleeps when the queue was empty: short next to the
/// flush interval, so a `kill -9` still loses well under a second.
const IDLE_POLL: Duration = Duration::from_millis(20);

struct Writer {
    store: Store,
    grouper: Grouper,
    receiver: Receiver<Event>,
    config: WriterConfig,
    on_change: Box<dyn FnMut(&Change) + Send>,
    counters: Arc<Counters>,
    stats: Arc<SharedStats>,
    stop: Arc<AtomicBool>,
    reported_dropped: u64,
    last_error_print: Option<Instant>,
    errors_unprinted: u64,
}

impl Writer {
    fn run(mut self) {
        let flush_every = Duration::from_millis(self.config.flush_every_ms.max(1));
        let batch_max = self.config.batch_max.max(1);
        let mut batch: Vec<Event> = Vec::with_capacity(batch_max);
        let mut batch_due: Option<Instant> = None;
        let mut next_tick = Instant::now() + TICK;
        let mut next_prune = Instant::now();
        loop {
            let now = Instant::now();
            let wake = batch_due
                .unwrap_or(now + flush_every)
                .min(next_tick)
                .min(next_prune);
            // The writer never parks on the channel: a parked receiver makes
            // every `record` on the request path wake it with a futex call
            // and a context switch (a fifth of the gateway's time in a flood
            // where every request is an event). It takes what is queued, and
            // sleeps briefly when there was nothing.
            let mut disconnected = false;
            let mut received = false;
            while batch.len() < batch_max {
                match self.receiver.try_recv() {
                    Ok(event) => {
                        batch.push(event);
                        received = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if received {
                batch_due.get_or_insert_with(|| Instant::now() + flush_every);
            } else if !disconnected {
                std::thread::sleep(wake.saturating_duration_since(now).min(IDLE_POLL));
            }
            let stopping = disconnected || self.stop.load(Ordering::Acquire);
            let now = Instant::now();
            if batch.len() >= batch_max || batch_due.is_some_and(|due| now >= due) || stopping {
                self.flush(&mut batch);
                batch_due = None;
            }
            if stopping {
                while let Ok(event) = self.receiver.try_recv() {
                    batch.push(event);
                    if batch.len() >= batch_max {
                        self.flush(&mut batch);
                    }
                }
                self.flush(&mut batch);
                return;
            }
            if now >= next_tick {
                next_tick = now + TICK;
                if self.counters.dropped.load(Ordering::Relaxed) > self.reported_dropped {
                    self.flush(&mut batch);
                    batch_due = None;
                }
                let now_ms = now_ms();
                match catch_unwind(AssertUnwindSafe(|| self.grouper.tick(now_ms))) {
                    Ok(changes) => changes.into_iter().for_each(|c| self.handle(c)),
                    Err(_) => self.panicked(),
                }
            }
            if now >= next_prune {
                next_prune = now + PRUNE_EVERY;
                if let Err(error) = self.store.prune(&self.config.retention, now_ms()) {
                    self.write_failed(&error, 0);
                }
            }
        }
    }

    /// Stores the batch (with an `EventsDropped` event when drops happened
    /// since the last one), groups it, and saves what changed.
    fn flush(&mut self, batch: &mut Vec<Event>) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.reported_dropped {
            batch.push(Event {
                at: now_ms(),
                site: String::new(),
                client: None,
                route: String::new(),
                kind: EventKind::EventsDropped {
                    count: dropped - self.reported_dropped,
                },
            });
            self.reported_dropped = dropped;
        }
        if batch.is_empty() {
            return;
        }
        match self.store.insert_batch(batch) {
            Ok(_) => {
                self.stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => self.write_failed(&error, batch.len() as u64),
        }
        for event in batch.iter() {
            match catch_unwind(AssertUnwindSafe(|| self.grouper.observe(event))) {
                Ok(changes) => changes.into_iter().for_each(|c| self.handle(c)),
                Err(_) => self.panicked(),
            }
        }
        match catch_unwind(AssertUnwindSafe(|| self.grouper.updates())) {
            Ok(changes) => changes.into_iter().for_each(|c| self.handle(c)),
            Err(_) => self.panicked(),
        }
        batch.clear();
    }

    /// Saves the incident (telling the grouper its id when it is new), then
    /// reports the change.
    fn handle(&mut self, mut change: Change) {
        let incident = change.incident_mut();
        let new = incident.id == 0;
        match self.store.save_incident(incident) {
            Ok(()) if new && incident.status == IncidentStatus::Open => {
                self.grouper
                    .assign_id(&incident.site, incident.kinds[0], incident.id);
            }
            Ok(()) => {}
            Err(error) => self.write_failed(&error, 0),
        }
        let on_change = &mut self.on_change;
        if catch_unwind(AssertUnwindSafe(|| on_change(&change))).is_err() {
            self.panicked();
        }
    }

    fn panicked(&self) {
        self.stats.panics.fetch_add(1, Ordering::Relaxed);
    }

    fn write_failed(&mut self, error: &StoreError, lost: u64) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.lost.fetch_add(lost, Ordering::Relaxed);
        self.errors_unprinted += 1;
        if self
            .last_error_print
            .is_none_or(|at| at.elapsed() >= ERROR_PRINT_EVERY)
        {
            let lost = self.stats.lost.load(Ordering::Relaxed);
            tracing::warn!(
                "{error} ({} write errors since the last message; {lost} events not stored since start; \
                 grouping and alerts go on)",
                self.errors_unprinted
            );
            self.last_error_print = Some(Instant::now());
            self.errors_unprinted = 0;
        }
    }
}
