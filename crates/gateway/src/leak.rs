//! The leak guard in the gateway: building it from the configuration, and
//! fetching whole responses for `block` routes.
//!
//! A `block` route must be able to answer with an error page instead of the
//! upstream's response, so the response head cannot leave before the body
//! has been judged. Pingora sends the head as soon as `response_filter`
//! returns, so for `GET` and `HEAD` on a block route the gateway fetches the
//! upstream response itself (bounded in size and time), judges it whole, and
//! then sends either it or the error page. Other methods on a block route
//! stream, and a leak found there can only cut the response off.

use std::path::Path;
use std::sync::Mutex;

use rampart_leakguard::{GuardConfig, LeakGuard, PolicySet, ResponseScanner, RoutePolicy};

use crate::config::{Config, ConfigError};

/// The leak guard of one configuration snapshot.
pub struct LeakRuntime {
    pub guard: LeakGuard,
    pub policies: PolicySet,
    /// The states of finished responses, kept for the next ones: a fresh
    /// scanner allocates its window and zeroes its structure, which cost a
    /// fifth of a small page's scan. Reset scanners keep at most 64 KiB per
    /// buffer (`ResponseScanner::reset`), and so do the decoding buffers
    /// here. Boxed, because a state is a few kilobytes and moving it in and
    /// out of the pool and the request's context would copy it each time.
    #[allow(clippy::vec_box)] // Boxed on purpose: see above.
    idle: Mutex<Vec<Box<ResponseLeakState>>>,
}

/// The leak guard's view of one streamed response.
pub struct ResponseLeakState {
    pub scanner: ResponseScanner,
    pub decoder: Option<rampart_decode::LayeredDecoder>,
    /// Redact routes send the scanner's output (decoded, masked); the
    /// others send the upstream's bytes untouched.
    pub redact: bool,
    pub decoded: Vec<u8>,
    pub out: Vec<u8>,
    /// The body's last chunk (empty when the body ended without one), kept
    /// to be scanned in the logging phase, once the response has gone: set
    /// only when the scanner can merely report.
    pub deferred: Option<bytes::Bytes>,
    /// Whether nothing the scan finds can change or stop the response
    /// (`ResponseScanner::only_reports` on a route that does not redact),
    /// settled once per response.
    pub only_reports: bool,
}

/// Idle response states kept per snapshot: a few per worker thread.
const MAX_IDLE_STATES: usize = 64;

impl LeakRuntime {
    /// The state for one response under `policy`, reused when one is idle.
    pub fn response_state(
        &self,
        policy: &RoutePolicy,
        decoder: Option<rampart_decode::LayeredDecoder>,
        redact: bool,
    ) -> Box<ResponseLeakState> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(mut state) => {
                state.scanner.reset(policy);
                state.decoder = decoder;
                state.redact = redact;
                state.deferred = None;
                state.only_reports = !redact && state.scanner.only_reports();
                state
            }
            None => {
                let scanner = self.guard.scanner(policy);
                let only_reports = !redact && scanner.only_reports();
                Box::new(ResponseLeakState {
                    scanner,
                    decoder,
                    redact,
                    decoded: Vec::new(),
                    out: Vec::new(),
                    deferred: None,
                    only_reports,
                })
            }
        }
    }

    /// Takes back the state of a finished response.
    pub fn give_back(&self, mut state: Box<ResponseLeakState>) {
        state.decoder = None;
        for buffer in [&mut state.decoded, &mut state.out] {
            if buffer.capacity() > rampart_leakguard::MAX_KEPT_BUFFER {
                *buffer = Vec::new();
            }
            buffer.clear();
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_STATES {
                idle.push(state);
            }
        }
    }
}

/// Builds the leak guard; `None` when the configuration has none.
pub fn build(config: &Config, source: &str) -> Result<Option<LeakRuntime>, Vec<ConfigError>> {
    let Some(policies) = &config.leak_guard else {
        return Ok(None);
    };
    let problem = |file: String, message: String| ConfigError {
        file,
        line: 0,
        column: 0,
        message,
    };
    let read = |path: &Option<std::path::PathBuf>| -> Result<Option<String>, Vec<ConfigError>> {
        match path {
            None => Ok(None),
            Some(p) => std::fs::read_to_string(p).map(Some).map_err(|e| {
                vec![problem(
                    p.display().to_string(),
                    format!("cannot read this CSV export: {e}"),
                )]
            }),
        }
    };
    let canaries_csv = read(&config.server.canaries_csv)?;
    let records_csv = read(&config.server.records_csv)?;
    // The fingerprint key only matters when there are records to hash; it
    // lives beside the clearance keys and is made on first use.
    let fingerprint_key = if canaries_csv.is_some() || records_csv.is_some() {
        fingerprint_key(&crate::flood::key_file(config).with_extension("fingerprint"))
            .map_err(|m| vec![problem(source.to_string(), m)])?
    } else {
        vec![0u8; 32]
    };
    let guard = LeakGuard::new(GuardConfig {
        fingerprint_key,
        canaries_csv,
        records_csv,
        public_values: Vec::new(),
    })
    .map_err(|e| vec![problem(source.to_string(), format!("in [leak_guard]: {e}"))])?;
    Ok(Some(LeakRuntime {
        guard,
        policies: policies.clone(),
        idle: Mutex::new(Vec::new()),
    }))
}

fn fingerprint_key(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
        Ok(_) => Err(format!(
            "the fingerprint key {} is too short; delete it to make a new one",
            path.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = crate::flood::random_bytes()?.to_vec();
            crate::flood::write_private(path, &key)?;
            Ok(key)
        }
        Err(e) => Err(format!(
            "cannot read the fingerprint key {}: {e}",
            path.display()
        )),
    }
}

/// Headers that describe one connection, not the message; never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "accept-encoding",
    "content-length",
];

/// Request headers the whole-response fetch never copies from the client:
/// the gateway writes its own authority and forwarding headers, as the
/// proxy does, and a range of a response cannot be judged.
const NOT_FORWARDED: [&str; 11] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "range",
    "if-range",
    "http2-settings",
    "expect",
];

/// Whether the whole-response fetch leaves a client's request header out.
pub fn is_not_forwarded(name: &str) -> bool {
    is_hop_by_hop(name) || NOT_FORWARDED.iter().any(|h| h.eq_ignore_ascii_case(name))
}

pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// One leak-guard finding as a JSON event line (never the value itself:
/// the sample is masked by the leak guard).
pub fn findings_event(
    reference: &str,
    site: &str,
    route: &str,
    outcome: &rampart_leakguard::Outcome,
) -> String {
    serde_json::json!({ "event": "leak", "reference": reference, "site": site, "route": route, "action": outcome.action, "findings": outcome.findings }).to_string()
}

/// A leak-guard outcome as incident events: a canary trip of its own (it
/// is always an incident), and one event for the other kinds together.
/// Samples are the guard's masked ones.
pub fn incident_events(
    reference: &str,
    outcome: &rampart_leakguard::Outcome,
) -> Vec<rampart_incidents::EventKind> {
    use rampart_incidents::{EntityCount, EventKind};
    let action = crate::verdict::serde_name;
    let mut out = Vec::with_capacity(2);
    let mut entities = Vec::new();
    for f in &outcome.findings {
        if f.kind == rampart_leakguard::EntityKind::Canary {
            out.push(EventKind::CanaryTrip {
                action: action(f.action),
                reference: reference.to_string(),
                count: f.count,
            });
        } else {
            entities.push(EntityCount {
                kind: f.kind.name().to_string(),
                count: f.count,
                distinct: f.distinct,
                sample: f.sample.clone(),
            });
        }
    }
    if !entities.is_empty() {
        out.push(EventKind::Leak {
            action: action(outcome.action),
            reference: reference.to_string(),
            entities,
        });
    }
    out
}
