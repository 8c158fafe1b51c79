//! The flood shield in the gateway: building the shield from the
//! configuration, its key file, and the shared state that outlives reloads.
//!
//! The shield itself lives in `rampart-flood` and takes the time as an
//! argument; this module supplies the wall clock, the random bytes for keys
//! and the file that keeps them across restarts.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rampart_flood::{
    FloodConfig, Keyring, MemoryLimits, MemoryState, RouteId, Shield, SiteId, Time,
};

use crate::config::{Config, ConfigError};

/// The shield type the gateway runs: in-memory state shared across reloads.
pub type GatewayShield = Shield<Arc<MemoryState>>;

/// The flood shield of one configuration snapshot, with the names of the
/// gateway's sites and routes resolved to the shield's ids.
pub struct FloodRuntime {
    pub shield: Arc<GatewayShield>,
    /// Where what the detectors learned is saved (see [`learned_file`]).
    pub learned_path: PathBuf,
    /// Per gateway site (by index): its shield id, if the shield knows it.
    pub site_ids: Vec<Option<SiteId>>,
    /// Per gateway site and route (by index): the shield's route id.
    pub route_ids: Vec<Vec<RouteId>>,
}

/// What survives a reload: limiter counters, bans, used nonces and keys.
#[derive(Default)]
pub struct FloodState {
    state: Mutex<Option<Arc<MemoryState>>>,
    keys: Mutex<Option<Keyring>>,
}

pub fn now() -> Time {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    Time::from_nanos(nanos)
}

/// 32 bytes from the kernel's random source, for key material.
pub fn random_bytes() -> Result<[u8; 32], String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot get random bytes from the kernel: {e}"))?;
    Ok(bytes)
}

/// Where the clearance keys live when the configuration does not say: next
/// to the configuration file, else in the user's state directory.
pub fn key_file(config: &Config) -> PathBuf {
    if let Some(path) = &config.server.key_file {
        return path.clone();
    }
    if let Some(dir) = config.source.as_ref().and_then(|p| p.parent()) {
        return dir.join("rampart.keys");
    }
    state_dir().join("clearance.keys")
}

/// Where a gateway started without a configuration file keeps its state
/// (clearance keys, the event store), and where every gateway keeps its
/// admin token: `$XDG_STATE_HOME/rampart`, else `~/.local/state/rampart`.
pub fn state_dir() -> PathBuf {
    state_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

/// [`state_dir`] for given values of `XDG_STATE_HOME` and `HOME`. An empty
/// or relative value is ignored, as the XDG base directory specification
/// asks: it would put the state wherever the process was started.
fn state_dir_from(xdg_state_home: Option<OsString>, home: Option<OsString>) -> PathBuf {
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    xdg_state_home
        .and_then(absolute)
        .or_else(|| home.and_then(absolute).map(|h| h.join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("rampart")
}

/// Where the detectors' learned state (baselines, recent latency, each
/// site's capacity, the mode) is kept between runs: beside the clearance
/// keys, so in the state directory for a gateway started without a
/// configuration file.
pub fn learned_file(config: &Config) -> PathBuf {
    key_file(config).with_file_name("learned.json")
}

/// Reads the learned state. A missing file is a first start; a damaged one
/// is reported and set aside (the gateway learns again, and its absolute
/// signals need nothing learned), never a reason not to start.
fn load_learned(path: &Path) -> BTreeMap<String, rampart_flood::Learned> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: not a learned-state file ({e}); starting without what it held",
                path.display()
            );
            BTreeMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => {
            tracing::warn!(
                "cannot read {} ({e}); starting without what it held",
                path.display()
            );
            BTreeMap::new()
        }
    }
}

/// Saves what the shield's detectors learned, replacing the file at once.
pub fn save_learned(path: &Path, shield: &GatewayShield) -> Result<(), String> {
    let learned = shield.learned(now());
    let json = serde_json::to_vec_pretty(&learned)
        .map_err(|e| format!("cannot encode the learned state: {e}"))?;
    write_private(path, &json)
}

/// Reads the keyring, or makes one and writes it with mode 0600 so that
/// only the gateway's user can forge clearance.
fn load_or_create_keys(path: &Path) -> Result<Keyring, String> {
    match std::fs::read(path) {
        Ok(bytes) => Keyring::from_bytes(&bytes).map_err(|e| format!("the key file {} is damaged ({e}); delete it to make new keys (clearance cookies will be asked for again)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keys = Keyring::generate(random_bytes()?);
            write_private(path, &keys.to_bytes())?;
            Ok(keys)
        }
        Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
    }
}

/// Writes a file only the gateway's user can read, replacing the old one in
/// one step (a fresh temporary file, then a rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    // A stale temporary file (or a link planted in its place) is removed,
    // never written through: the new one is created fresh, without
    // following a link, and readable by the owner only.
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| format!("cannot move {} into place: {e}", path.display()))
}

impl FloodState {
    /// Builds the shield for `config`, reusing the state and keys of earlier
    /// snapshots, and what the previous snapshot's detectors learned (at the
    /// first build, what the learned-state file holds). `None` when the
    /// configuration has no flood section.
    pub fn build(
        &self,
        config: &Config,
        source: &str,
        previous: Option<&FloodRuntime>,
    ) -> Result<Option<FloodRuntime>, Vec<ConfigError>> {
        let Some(flood) = &config.flood else {
            return Ok(None);
        };
        let problem = |message: String| ConfigError {
            file: source.to_string(),
            line: 0,
            column: 0,
            message,
        };
        let state = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| Arc::new(MemoryState::new(memory_limits(flood))))
            .clone();
        let keys = {
            let mut slot = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(k) => k.clone(),
                None => {
                    let k = load_or_create_keys(&key_file(config)).map_err(|m| vec![problem(m)])?;
                    *slot = Some(k.clone());
                    k
                }
            }
        };
        let shield = Shield::new(flood, state, keys, now()).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| problem(format!("in [flood]: {e}")))
                .collect::<Vec<_>>()
        })?;
        let learned_path = learned_file(config);
        let learned = match previous {
            Some(p) => p.shield.learned(now()),
            None => load_learned(&learned_path),
        };
        shield.restore(&learned, now());
        let site_ids: Vec<Option<SiteId>> = config
            .sites
            .iter()
            .map(|s| shield.site_id(&s.name))
            .collect();
        let route_ids = config
            .sites
            .iter()
            .zip(&site_ids)
            .map(|(site, id)| {
                let mut routes: Vec<&crate::config::Route> = site.routes.iter().collect();
                // The snapshot keeps routes longest prefix first; match that order.
                routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
                routes
                    .iter()
                    .map(|r| {
                        id.and_then(|id| shield.route_id(id, &r.prefix))
                            .unwrap_or(RouteId::NONE)
                    })
                    .collect()
            })
            .collect();
        Ok(Some(FloodRuntime {
            shield: Arc::new(shield),
            learned_path,
            site_ids,
            route_ids,
        }))
    }
}

fn memory_limits(flood: &FloodConfig) -> MemoryLimits {
    MemoryLimits {
        max_keys: flood.max_tracked_keys,
        max_bans: flood.max_bans,
        ..MemoryLimits::default()
    }
}

/// One flood event as an incident event: (site, client, kind). Bans are per
/// client, not per site, so they carry no site; the grouping attaches them
/// to the incidents open at the time.
pub fn incident_event(
    event: &rampart_flood::Event,
) -> Option<(
    String,
    Option<std::net::IpAddr>,
    rampart_incidents::EventKind,
)> {
    use rampart_flood::{BanReason, Event, ModeReason};
    use rampart_incidents::EventKind;
    let millis = |t: Time| (t.as_nanos() / 1_000_000) as i64;
    Some(match event {
        Event::ModeChanged {
            site,
            under_attack,
            reason,
            ..
        } => {
            let reason = match reason {
                ModeReason::Surge {
                    metric,
                    observed,
                    threshold,
                } => format!("surge: {metric:?} {observed:.0} above {threshold:.0}"),
                ModeReason::Distress {
                    metric,
                    observed,
                    threshold,
                } => format!("upstream in distress: {metric:?} {observed:.2} above {threshold:.2}"),
                ModeReason::Restored => {
                    "taken up again after a restart during an attack".to_string()
                }
                ModeReason::Calm => "traffic back to its baseline".to_string(),
                ModeReason::Manual => "switched by an operator".to_string(),
                ModeReason::ManualCleared => {
                    "handed back to the detector by an operator".to_string()
                }
                ModeReason::ScheduleStart => "scheduled window began".to_string(),
                ModeReason::ScheduleEnd => "scheduled window ended".to_string(),
            };
            (
                site.to_string(),
                None,
                EventKind::ModeChanged {
                    under_attack: *under_attack,
                    reason,
                },
            )
        }
        Event::Banned { client, record, .. } => {
            let reason = match record.reason {
                BanReason::RateLimits => "rate_limits",
                BanReason::Waf => "waf",
                BanReason::Manual => "manual",
                BanReason::Flood => "flood_prefix",
                _ => "other",
            };
            (
                String::new(),
                Some(*client),
                EventKind::Banned {
                    until: millis(record.until),
                    level: u32::from(record.level),
                    reason: reason.to_string(),
                },
            )
        }
        Event::Unbanned { client, .. } => (String::new(), Some(*client), EventKind::Unbanned),
        // A kind added to the flood crate later has no incident meaning
        // yet; its JSON line on standard error still records it.
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_directory_ignores_empty_and_relative_variables() {
        let some = |s: &str| Some(OsString::from(s));
        assert_eq!(
            state_dir_from(some("/var/lib/x"), some("/home/a")),
            PathBuf::from("/var/lib/x/rampart")
        );
        for xdg in [None, some(""), some("state")] {
            assert_eq!(
                state_dir_from(xdg, some("/home/a")),
                PathBuf::from("/home/a/.local/state/rampart")
            );
        }
        for home in [None, some(""), some("a")] {
            assert_eq!(
                state_dir_from(some(""), home),
                std::env::temp_dir().join("rampart")
            );
        }
    }
}
