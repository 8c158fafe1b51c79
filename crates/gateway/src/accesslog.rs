//! The access log: one JSON line per request, written off the request path.
//!
//! Requests hand their line to a bounded channel; one thread writes. When
//! the writer falls behind, lines are dropped and counted rather than making
//! requests wait on a disk.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
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
    pub verdict: crate::verdict::Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// 64 Ki lines of backlog: a few seconds of a heavy flood.
const BACKLOG: usize = 65_536;

/// How much a file's writer gathers into one write: a burst of lines costs
/// one system call.
const BATCH_BYTES: usize = 60 * 1024;

/// A file (or standard output) written by its own thread from a bounded
/// queue of lines. Used for the access log and the WAF's logs.
#[derive(Clone)]
pub struct LineSink {
    sender: Option<SyncSender<String>>,
    /// A file written by the caller itself, for logs whose lines must be on
    /// disk before the response they explain leaves (the WAF's error log).
    direct: Option<Arc<Mutex<std::fs::File>>>,
    metrics: Arc<Metrics>,
}

/// Opens a log file for appending without following a symbolic link at its
/// path (one planted there would send our lines, or make us create a file,
/// wherever it points), readable by the owner and group only.
pub fn open_log_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// A line as it may be written: a carriage return or line feed inside it
/// (from a client's header, path or body) is escaped, so no client can
/// start a line of its own in a log.
fn one_line(line: String) -> String {
    if !line.contains(['\n', '\r']) {
        return line;
    }
    line.replace('\r', "\\r").replace('\n', "\\n")
}

impl LineSink {
    pub fn off(metrics: Arc<Metrics>) -> LineSink {
        LineSink {
            sender: None,
            direct: None,
            metrics,
        }
    }

    /// A file the caller writes itself, line by line, under a lock: for the
    /// few lines (a matched rule) that must be written before a response.
    pub fn start_direct(
        path: &std::path::Path,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<LineSink> {
        let file = open_log_file(path)?;
        Ok(LineSink {
            sender: None,
            direct: Some(Arc::new(Mutex::new(file))),
            metrics,
        })
    }

    pub fn start(
        target: &AccessLogTarget,
        name: &str,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<LineSink> {
        let out: Box<dyn Write + Send> = match target {
            AccessLogTarget::Off => return Ok(LineSink::off(metrics)),
            AccessLogTarget::Stdout => Box::new(std::io::stdout()),
            AccessLogTarget::File(path) => Box::new(open_log_file(path)?),
        };
        Self::spawn(out, name, BATCH_BYTES, metrics)
    }

    /// Standard error, written by a thread of its own: for lines produced
    /// on the request path (the leak guard's events), which must not wait
    /// for a slow terminal or pipe.
    ///
    /// Each line is written on its own: operational messages share standard
    /// error from another thread, and on a pipe only a write of up to 4 KiB
    /// is kept whole, so a batch could be cut by one of theirs.
    pub fn stderr(name: &str, metrics: Arc<Metrics>) -> std::io::Result<LineSink> {
        Self::spawn(Box::new(std::io::stderr()), name, 0, metrics)
    }

    /// Starts the writer thread; it gathers queued lines into writes of up
    /// to `batch_bytes` (at least one line each).
    fn spawn(
        mut out: Box<dyn Write + Send>,
        name: &str,
        batch_bytes: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<LineSink> {
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
                    while buffer.len() < batch_bytes {
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
            direct: None,
            metrics,
        })
    }

    /// Whether lines are written at all; callers skip building them if not.
    pub fn enabled(&self) -> bool {
        self.sender.is_some() || self.direct.is_some()
    }

    /// Queues a line (or, for a direct sink, writes it now); a queued line
    /// is dropped and counted when the writer is behind.
    pub fn send(&self, line: String) {
        let line = one_line(line);
        if let Some(file) = &self.direct {
            let mut bytes = line.into_bytes();
            bytes.push(b'\n');
            let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
            if file.write_all(&bytes).is_err() {
                self.metrics
                    .log_lines_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
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

#[cfg(test)]
mod line_tests {
    /// A client's line break inside a logged value cannot start a new line.
    #[test]
    fn lines_cannot_be_split_by_a_client() {
        assert_eq!(super::one_line("plain".into()), "plain");
        assert_eq!(
            super::one_line("a\r\n[id \"1\"] forged".into()),
            "a\\r\\n[id \"1\"] forged"
        );
    }

    /// Log files are created owner and group only, and a symbolic link
    /// planted at the path is refused rather than followed.
    #[test]
    fn log_files_are_private_and_never_follow_links() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rampart-log-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("waf.log");
        super::open_log_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let target = dir.join("elsewhere");
        let link = dir.join("planted.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(super::open_log_file(&link).is_err());
        assert!(!target.exists(), "nothing was created through the link");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// RFC 3339 time in UTC with milliseconds, from the calendar the incident
/// reports use.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rampart_incidents::report::rfc3339(now.as_millis() as i64)
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
