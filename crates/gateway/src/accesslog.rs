//! The access log: one JSON line per request, written off the request path.
//!
//! Requests hand their line to a bounded channel; one thread writes. When
//! the writer falls behind, lines are dropped and counted rather than making
//! requests wait on a disk.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::AccessLogTarget;
use crate::metrics::Metrics;

/// One request, as logged.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    pub time: String,
    pub id: &'a str,
    pub site: &'a str,
    pub route: &'a str,
    pub client: String,
    pub method: &'a str,
    pub path: &'a str,
    pub protocol: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub duration_ms: f64,
    pub upstream: Option<String>,
    /// What the security layers decided: "allow" until a layer says otherwise.
    pub verdict: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// 64 Ki lines of backlog: a few seconds of a heavy flood.
const BACKLOG: usize = 65_536;

/// A file (or standard output) written by its own thread from a bounded
/// queue of lines. Used for the access log and the WAF's logs.
#[derive(Clone)]
pub struct LineSink {
    sender: Option<SyncSender<String>>,
    metrics: Arc<Metrics>,
}

impl LineSink {
    pub fn off(metrics: Arc<Metrics>) -> LineSink {
        LineSink {
            sender: None,
            metrics,
        }
    }

    pub fn start(
        target: &AccessLogTarget,
        name: &str,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<LineSink> {
        let mut out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(LineSink::off(metrics)),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?,
            ),
        };
        let (sender, receiver) = sync_channel::<String>(BACKLOG);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let mut buffer = Vec::with_capacity(64 * 1024);
                loop {
                    // Block for the first line, then take what else is queued,
                    // so a burst costs one write.
                    let first = match receiver.recv_timeout(Duration::from_millis(500)) {
                        Ok(line) => line,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    buffer.extend_from_slice(first.as_bytes());
                    buffer.push(b'\n');
                    while buffer.len() < 60 * 1024 {
                        match receiver.try_recv() {
                            Ok(line) => {
                                buffer.extend_from_slice(line.as_bytes());
                                buffer.push(b'\n');
                            }
                            Err(_) => break,
                        }
                    }
                    let _ = out.write_all(&buffer);
                    let _ = out.flush();
                    buffer.clear();
                }
            })?;
        Ok(LineSink {
            sender: Some(sender),
            metrics,
        })
    }

    /// Whether lines are written at all; callers skip building them if not.
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues a line; drops and counts it when the writer is behind.
    pub fn send(&self, line: String) {
        let Some(sender) = &self.sender else { return };
        if let Err(TrySendError::Full(_)) = sender.try_send(line) {
            self.metrics
                .log_lines_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The access log: one JSON line per request.
#[derive(Clone)]
pub struct AccessLog(LineSink);

impl AccessLog {
    pub fn start(target: &AccessLogTarget, metrics: Arc<Metrics>) -> std::io::Result<AccessLog> {
        LineSink::start(target, "access-log", metrics).map(AccessLog)
    }

    pub fn enabled(&self) -> bool {
        self.0.enabled()
    }

    pub fn write(&self, record: &AccessRecord<'_>) {
        if let Ok(line) = serde_json::to_string(record) {
            self.0.send(line);
        }
    }
}

/// RFC 3339 time in UTC with milliseconds, without a date library.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_is_rfc3339() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T");
    }
}
