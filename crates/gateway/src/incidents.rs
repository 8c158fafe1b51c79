//! The gateway's side of incidents: the event recorder that every layer
//! reports to, the per-second traffic samples, and webhook alerts. The
//! `[incidents]` settings they follow are read by the configuration.
//!
//! The request path only ever calls [`EventLog::record`], which never
//! waits: the recorder is a bounded channel that counts what it cannot take.
//! The store, the grouping and the alerts run on their own threads.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Duration;

use rampart_incidents::grouping::Change;
use rampart_incidents::store::Retention;
use rampart_incidents::writer::{Recorder, WriterConfig, WriterHandle};
use rampart_incidents::{Event, EventKind, Incident, Millis};

use crate::config::incidents::{Webhook, WebhookFormat};
use crate::config::Config;

/// Where the event store lives: the configured path (relative to the
/// configuration file), else next to the configuration, else in the user's
/// state directory (the same place as the clearance keys).
pub fn store_path(config: &Config) -> PathBuf {
    let dir = config
        .source
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf);
    match (&config.incidents.store, dir) {
        (Some(p), _) if p.is_absolute() => p.clone(),
        (Some(p), Some(dir)) => dir.join(p),
        (Some(p), None) => p.clone(),
        (None, Some(dir)) => dir.join("rampart-events.db"),
        (None, None) => match &config.server.key_file {
            Some(keys) => keys.with_file_name("rampart-events.db"),
            None => default_store_path(),
        },
    }
}

/// The store of a gateway started without a configuration file: in the
/// user's state directory, beside the clearance keys.
pub fn default_store_path() -> PathBuf {
    crate::flood::state_dir().join("rampart-events.db")
}

/// The traffic of an incident's span, in at most 60 buckets, for its
/// report and the console's timeline.
pub fn timeline(
    store: &rampart_incidents::store::Store,
    incident: &Incident,
) -> Result<Vec<rampart_incidents::store::TimelinePoint>, rampart_incidents::store::StoreError> {
    let from = incident.first_event - incident.first_event.rem_euclid(1000);
    let to = incident.last_event.max(from) + 1000 - incident.last_event.rem_euclid(1000);
    let buckets = ((to - from) / 1000).clamp(1, 60) as usize;
    store.timeline(&incident.site, from, to, buckets)
}

/// Who reports are from: the `[incidents]` settings, else the defaults.
pub fn organisation(
    settings: Option<&crate::config::incidents::IncidentSettings>,
) -> rampart_incidents::report::Organisation {
    let mut organisation = rampart_incidents::report::Organisation::default();
    if let Some(settings) = settings {
        for (field, value) in [
            (&mut organisation.name, &settings.organisation),
            (&mut organisation.contact, &settings.contact),
            (&mut organisation.sector, &settings.sector),
        ] {
            if !value.is_empty() {
                field.clone_from(value);
            }
        }
    }
    organisation
}

/// Unix milliseconds now (the store's clock).
pub use rampart_incidents::writer::now_ms;

/// One site's traffic in the current one-second window, counted on the
/// request path with relaxed atomics and sampled by the clock.
#[derive(Debug, Default)]
pub struct TrafficWindow {
    requests: AtomicU32,
    blocked: AtomicU32,
    challenged: AtomicU32,
    limited: AtomicU32,
    upstream_errors: AtomicU32,
}

/// How a finished request counts in the traffic samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Blocked,
    Challenged,
    Limited,
    UpstreamError,
}

impl TrafficWindow {
    pub fn count(&self, outcome: Outcome) {
        self.requests.fetch_add(1, Relaxed);
        let counter = match outcome {
            Outcome::Passed => return,
            Outcome::Blocked => &self.blocked,
            Outcome::Challenged => &self.challenged,
            Outcome::Limited => &self.limited,
            Outcome::UpstreamError => &self.upstream_errors,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// Takes the window's counts and starts a new window; `None` when the
    /// site saw nothing.
    pub fn take(&self, window_ms: u32) -> Option<EventKind> {
        let requests = self.requests.swap(0, Relaxed);
        let kind = EventKind::Traffic {
            window_ms,
            requests,
            blocked: self.blocked.swap(0, Relaxed),
            challenged: self.challenged.swap(0, Relaxed),
            limited: self.limited.swap(0, Relaxed),
            upstream_errors: self.upstream_errors.swap(0, Relaxed),
        };
        (requests > 0).then_some(kind)
    }
}

/// Remembers which client already left an event of a kind this second, so
/// that a flood in which every request is refused the same way leaves one
/// event per client per second instead of one per request (the traffic
/// samples still count every request). Lossy on purpose: a fixed table of
/// slots indexed by a hash, where a collision only costs an extra event.
pub struct EventThrottle {
    slots: Box<[std::sync::atomic::AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
}

/// 65,536 slots (512 KiB): more clients than that refused in one second
/// share slots, which at worst records some of them twice.
const THROTTLE_SLOTS: usize = 1 << 16;

impl Default for EventThrottle {
    fn default() -> Self {
        EventThrottle {
            slots: (0..THROTTLE_SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            hasher: Default::default(),
        }
    }
}

impl EventThrottle {
    /// True for the first event of `kind` from `client` in the second `now_secs`.
    pub fn first_this_second(&self, client: IpAddr, kind: u8, now_secs: u64) -> bool {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = self.hasher.build_hasher();
        client.hash(&mut h);
        kind.hash(&mut h);
        let hash = h.finish();
        // The slot holds the second (low 32 bits) and a tag from the hash's
        // high bits, so a different client in the same slot does not count
        // as the same one.
        let mark = (hash & 0xffff_ffff_0000_0000) | (now_secs & 0xffff_ffff);
        let slot = &self.slots[(hash as usize) & (THROTTLE_SLOTS - 1)];
        slot.swap(mark, Relaxed) != mark
    }
}

/// The recorder the layers report to; a no-op when recording is off.
pub struct EventLog {
    /// Per-client, per-second thinning of the per-request flood events.
    pub throttle: EventThrottle,
    recorder: Option<Recorder>,
    writer: Mutex<Option<WriterHandle>>,
    pub store: Option<PathBuf>,
}

impl EventLog {
    /// Opens the store and starts the writer and alert threads. A store that
    /// cannot be opened stops the gateway at startup with the reason.
    pub fn start(config: &Config) -> Result<EventLog, String> {
        let settings = &config.incidents;
        if !settings.record {
            return Ok(EventLog::off());
        }
        let path = store_path(config);
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!(
                        "cannot create the directory of the event store {}: {e}",
                        path.display()
                    )
                })?;
            }
        }
        let alerts = AlertSender::start(settings.webhook.clone());
        let writer_config = WriterConfig {
            path: path.clone(),
            capacity: settings.channel_capacity,
            retention: Retention {
                max_age_ms: Millis::try_from(settings.retention.as_millis()).unwrap_or(Millis::MAX),
                max_bytes: settings.max_store_mb.saturating_mul(1024 * 1024),
            },
            thresholds: settings.thresholds.clone(),
            ..WriterConfig::new(path.clone())
        };
        let on_change = Box::new(move |change: &Change| alerts.notify(change));
        let (recorder, handle) = rampart_incidents::writer::spawn(writer_config, on_change)
            .map_err(|e| e.to_string())?;
        alerts_recorder_set(&recorder);
        Ok(EventLog {
            throttle: EventThrottle::default(),
            recorder: Some(recorder),
            writer: Mutex::new(Some(handle)),
            store: Some(path),
        })
    }

    /// An event log that records nothing.
    pub fn off() -> EventLog {
        EventLog {
            throttle: EventThrottle {
                slots: Box::new([]),
                hasher: Default::default(),
            },
            recorder: None,
            writer: Mutex::new(None),
            store: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.recorder.is_some()
    }

    /// Hands an event to the writer; never waits.
    pub fn record(&self, site: &str, client: Option<IpAddr>, route: &str, kind: EventKind) {
        if let Some(recorder) = &self.recorder {
            recorder.record(Event {
                at: now_ms(),
                site: site.to_string(),
                client,
                route: route.to_string(),
                kind,
            });
        }
    }

    /// Events accepted and dropped so far, for the metrics.
    pub fn counts(&self) -> (u64, u64) {
        self.recorder
            .as_ref()
            .map_or((0, 0), |r| (r.recorded(), r.dropped()))
    }

    /// Flushes what is queued; called on shutdown.
    pub fn shutdown(&self) {
        if let Some(handle) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            handle.shutdown();
        }
    }
}

/// The recorder the alert thread reports delivery failures to. Set once
/// the writer runs (the alert thread starts first, so it cannot hold the
/// recorder from the beginning).
static ALERT_FAILURES: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();

fn alerts_recorder_set(recorder: &Recorder) {
    let _ = ALERT_FAILURES.set(recorder.clone());
}

/// What the alert thread is asked to send.
struct Alert {
    change: &'static str,
    why: String,
    incident: Incident,
}

/// Delivers alerts on its own thread, with retries and backoff, so that a
/// slow or dead webhook never holds the writer up.
struct AlertSender {
    queue: Option<SyncSender<Alert>>,
}

/// Alerts waiting for delivery; beyond this, alerts are dropped (and the
/// drop is an event) rather than piling up behind a dead webhook.
const ALERT_QUEUE: usize = 256;

/// Tries per alert and the first pause between them (doubling each time):
/// 1 + 2 + 4 + 8 s rides out a webhook's restart without delaying later
/// alerts for long.
const ALERT_TRIES: u32 = 5;
const ALERT_FIRST_BACKOFF: Duration = Duration::from_secs(1);

impl AlertSender {
    fn start(hooks: Vec<Webhook>) -> AlertSender {
        if hooks.is_empty() {
            return AlertSender { queue: None };
        }
        let (tx, rx) = sync_channel(ALERT_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("rampart-alerts".into())
            .spawn(move || deliver_alerts(rx, hooks));
        AlertSender {
            queue: spawned.is_ok().then_some(tx),
        }
    }

    fn notify(&self, change: &Change) {
        let Some(queue) = &self.queue else { return };
        let (name, incident, why) = match change {
            Change::Opened(i) => ("opened", i, String::new()),
            Change::Escalated { incident, why } => ("escalated", incident, why.clone()),
            Change::Closed(i) => ("closed", i, String::new()),
            _ => return,
        };
        if let Err(TrySendError::Full(alert) | TrySendError::Disconnected(alert)) =
            queue.try_send(Alert {
                change: name,
                why,
                incident: incident.clone(),
            })
        {
            alert_failed(
                "queue",
                &format!(
                    "alert for {} dropped: the alert queue is full",
                    alert.incident.reference()
                ),
                &alert.incident.site,
            );
        }
    }
}

fn alert_failed(target: &str, error: &str, site: &str) {
    tracing::warn!("alert to `{target}` failed: {error}");
    if let Some(recorder) = ALERT_FAILURES.get() {
        recorder.record(Event {
            at: now_ms(),
            site: site.to_string(),
            client: None,
            route: String::new(),
            kind: EventKind::AlertFailed {
                target: target.to_string(),
                error: error.to_string(),
            },
        });
    }
}

fn deliver_alerts(rx: Receiver<Alert>, hooks: Vec<Webhook>) {
    while let Ok(alert) = rx.recv() {
        for hook in &hooks {
            let body = match hook.format {
                WebhookFormat::Slack => rampart_incidents::alert::slack_payload(
                    &alert.incident,
                    alert.change,
                    &alert.why,
                ),
                WebhookFormat::Json => rampart_incidents::alert::generic_payload(
                    &alert.incident,
                    alert.change,
                    &alert.why,
                ),
            };
            let mut pause = ALERT_FIRST_BACKOFF;
            let mut last_error = String::new();
            let mut delivered = false;
            for attempt in 1..=ALERT_TRIES {
                match post_json(&hook.url, &body) {
                    Ok(()) => {
                        delivered = true;
                        break;
                    }
                    Err(e) => last_error = e,
                }
                if attempt < ALERT_TRIES {
                    std::thread::sleep(pause);
                    pause *= 2;
                }
            }
            if !delivered {
                alert_failed(
                    &hook.name,
                    &format!(
                        "{} not delivered after {ALERT_TRIES} tries: {last_error}",
                        alert.incident.reference()
                    ),
                    &alert.incident.site,
                );
            }
        }
    }
}

/// Posts a JSON body and succeeds on a 2xx answer.
pub fn post_json(url: &str, body: &str) -> Result<(), String> {
    let answer = crate::client::call(
        http::Method::POST,
        url,
        &[("content-type", "application/json")],
        body.to_string(),
        Duration::from_secs(10),
    )?;
    match answer.status {
        200..=299 => Ok(()),
        status => Err(format!("answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_passes_one_event_per_client_kind_and_second() {
        let t = EventThrottle::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        assert!(t.first_this_second(a, 1, 100));
        assert!(!t.first_this_second(a, 1, 100));
        assert!(
            t.first_this_second(a, 2, 100),
            "another kind is another event"
        );
        assert!(
            t.first_this_second(b, 1, 100),
            "another client is another event"
        );
        assert!(
            t.first_this_second(a, 1, 101),
            "the next second is another event"
        );
        let passed = (0..1000).filter(|_| t.first_this_second(a, 1, 102)).count();
        assert_eq!(passed, 1);
    }

    #[test]
    fn traffic_windows_reset_when_taken() {
        let w = TrafficWindow::default();
        assert_eq!(w.take(1000), None);
        w.count(Outcome::Passed);
        w.count(Outcome::Blocked);
        w.count(Outcome::Limited);
        match w.take(1000) {
            Some(EventKind::Traffic {
                requests,
                blocked,
                limited,
                challenged,
                ..
            }) => assert_eq!((requests, blocked, limited, challenged), (3, 1, 1, 0)),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.take(1000), None);
    }
}
