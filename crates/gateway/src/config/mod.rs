//! The gateway's configuration: one TOML file, validated in full.
//!
//! Validation walks the TOML document by hand rather than through serde so
//! that one pass can report *every* mistake in the file, each with its line,
//! column and a sentence saying how to fix it. Serde stops at the first error,
//! which turns fixing a config into a slow loop of edit-and-retry.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::ImDocument;

use crate::net::Cidr;

/// A fully validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where this configuration was read from, if a file; reload re-reads it.
    pub source: Option<PathBuf>,
    pub server: ServerSettings,
    pub limits: Limits,
    pub listeners: Vec<Listener>,
    pub upstreams: Vec<UpstreamPool>,
    pub sites: Vec<Site>,
    /// The flood shield (rate limits, challenge, waiting room, bans); off
    /// when the file has no `[flood]` section.
    pub flood: Option<rampart_flood::FloodConfig>,
    /// The leak guard's policies; off when the file has no `[leak_guard]`.
    pub leak_guard: Option<rampart_leakguard::PolicySet>,
    /// The event store, incident grouping and alerts; on by default.
    pub incidents: incidents::IncidentSettings,
    /// The serve-stale cache; on by default.
    pub cache: rampart_cache::CacheConfig,
    /// Bans shared with other gateways through Redis; off without `[cluster]`.
    pub cluster: Option<ClusterSettings>,
    /// WAF exclusions from the exclusions file (see `exclusions`), read by
    /// [`exclusions::read_into`] at start and at every reload.
    pub added_exclusions: Vec<exclusions::AddedExclusion>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// Worker threads per listener service. Default: the number of CPUs,
    /// because the proxy is CPU-bound once the WAF is on.
    pub threads: usize,
    /// The admin listener (metrics, reload). Loopback by default so that
    /// nothing administrative is exposed unless the operator chooses to.
    pub admin_listen: Option<SocketAddr>,
    /// `-` for standard output, `off`, or a file path.
    pub access_log: AccessLogTarget,
    /// Peers whose X-Forwarded-For / Forwarded headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The WAF's ModSecurity-style error log (one line per matched rule).
    pub waf_log: Option<PathBuf>,
    /// The JSON audit log of blocked and logged transactions.
    pub audit_log: Option<PathBuf>,
    /// Where the flood shield's clearance keys persist (mode 0600), so
    /// clearance cookies survive a restart.
    pub key_file: Option<PathBuf>,
    /// CSV exports for the leak guard: planted canary records, and the
    /// organisation's own sensitive records. Kept only as keyed hashes.
    pub canaries_csv: Option<PathBuf>,
    pub records_csv: Option<PathBuf>,
    /// Where exclusions added from the console go (see `exclusions`).
    pub exclusions_file: Option<PathBuf>,
    /// A certificate and key for the admin listener; required when it is
    /// not on a loopback address, since the console's token and session
    /// cookie would otherwise cross the network in the clear.
    pub admin_tls_cert: Option<PathBuf>,
    pub admin_tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    Off,
    File(PathBuf),
}

/// Limits against slow and oversized clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The whole request head must arrive within this time. 10 s matches
    /// what a phone on a poor network needs, and cuts slowloris off quickly.
    pub head_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after
    /// this long. 60 s is nginx's order of magnitude.
    pub idle_timeout: Duration,
    /// Request bodies slower than this (bytes per second, averaged since the
    /// body began) are cut off once `body_rate_grace` has passed. 1 KiB/s is
    /// far below any real uploader and far above a slow-POST attacker.
    pub body_min_rate: u64,
    pub body_rate_grace: Duration,
    /// The request line plus headers; beyond it, 431. 32 KiB holds every
    /// real browser's cookies with room to spare.
    pub max_header_bytes: usize,
    /// Request body cap; beyond it, 413. 10 MiB suits forms and small uploads.
    pub max_body_bytes: u64,
    /// Open connections per client address. 256 leaves room for offices
    /// behind one NAT while stopping one host from holding every socket.
    pub max_connections_per_client: u32,
    /// Open connections in all.
    pub max_connections: u32,
    /// Time allowed to connect to an upstream before trying the next one.
    pub upstream_connect_timeout: Duration,
    /// Time allowed between reads from an upstream before answering 504.
    pub upstream_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_min_rate: 1024,
            body_rate_grace: Duration::from_secs(5),
            max_header_bytes: 32 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            max_connections_per_client: 256,
            max_connections: 20_000,
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_read_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub address: SocketAddr,
    /// TLS with the certificates of the sites (SNI picks one).
    pub tls: bool,
    /// Accept HTTP/2 without TLS (prior knowledge). Off by default because
    /// browsers never use it; turn it on behind a TLS-terminating balancer.
    pub h2c: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamPool {
    pub name: String,
    pub servers: Vec<SocketAddr>,
    /// Connect to the servers over TLS, with this SNI.
    pub tls_sni: Option<String>,
    pub health_check: Option<HealthCheck>,
    /// Passive ejection: this many consecutive failures take a server out.
    pub eject_after_failures: u32,
    pub eject_for: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed probes before a server is marked down.
    pub unhealthy_after: u32,
    /// Consecutive good probes before it is readmitted.
    pub healthy_after: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub name: String,
    /// Host names, lower case, without port. `*` matches any host.
    pub hosts: Vec<String>,
    pub upstream: String,
    pub tls: Option<SiteTls>,
    pub routes: Vec<Route>,
    pub waf: WafSettings,
}

/// How the WAF runs for one site.
#[derive(Debug, Clone, PartialEq)]
pub struct WafSettings {
    pub mode: WafMode,
    /// A CRS release directory (`rules/*.conf` plus its setup file), or
    /// none to run only the extra rule files.
    pub crs: Option<PathBuf>,
    /// CRS paranoia level 1 to 4. 1 is CRS's default and the level at which
    /// false positives are rare enough to block without tuning.
    pub paranoia: u8,
    /// CRS anomaly thresholds; 5 and 4 are CRS's defaults (one critical
    /// inbound match blocks).
    pub inbound_threshold: u32,
    pub outbound_threshold: u32,
    /// Extra SecLang files loaded before the CRS rules (runtime exclusions
    /// with `ctl:`) and after them (`SecRuleRemoveById` and the like).
    pub rules_before: Vec<PathBuf>,
    pub rules_after: Vec<PathBuf>,
    /// Simple exclusions: rules switched off under a path prefix.
    pub exclusions: Vec<WafExclusion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WafMode {
    On,
    DetectionOnly,
    Off,
}

/// `[cluster]`: this node's name, and the Redis through which the nodes
/// share their bans (see `crate::cluster`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Shown in logs; each node of a cluster needs its own. Default: the
    /// machine's host name.
    #[serde(default = "host_name")]
    pub node: String,
    /// `redis://HOST:PORT`.
    pub redis: String,
    /// A file holding the Redis password (`requirepass`), if it has one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// The machine's host name, else `node`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl ClusterSettings {
    /// What serde cannot check.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(why) = crate::cluster::parse_redis_url(&self.redis) {
            out.push(format!("[cluster] redis {why}"));
        }
        if self.node.is_empty() || self.node.len() > 64 {
            out.push("[cluster] node must be a name of 1 to 64 characters".into());
        }
        out
    }
}

/// Rules switched off for requests whose matching path is under `prefix`:
/// wholly, or only for one `target` (`ARGS:q`, `REQUEST_HEADERS:Referer`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WafExclusion {
    pub prefix: String,
    pub rule_ids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl WafExclusion {
    /// Checks what the configuration reader and the exclusions file cannot
    /// express in their types; says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !self.prefix.starts_with('/') {
            return Err(format!(
                "exclusion prefix `{}` must start with `/`",
                self.prefix
            ));
        }
        if self
            .prefix
            .contains(|c: char| c == '"' || c == '\\' || c.is_whitespace())
        {
            return Err(format!(
                "exclusion prefix `{}` may not contain quotes, backslashes or spaces",
                self.prefix
            ));
        }
        if self.rule_ids.is_empty() || self.rule_ids.contains(&0) {
            return Err("an exclusion needs a non-empty `rule_ids` list of rule numbers".into());
        }
        if let Some(target) = &self.target {
            rampart_waf::TargetExclusion::parse(target).map_err(|e| {
                format!("exclusion target `{target}` is not a SecLang target such as ARGS:q or REQUEST_HEADERS:Referer ({e})")
            })?;
        }
        Ok(())
    }
}

impl Default for WafSettings {
    fn default() -> Self {
        WafSettings {
            mode: WafMode::Off,
            crs: None,
            paranoia: 1,
            inbound_threshold: 5,
            outbound_threshold: 4,
            rules_before: Vec::new(),
            rules_after: Vec::new(),
            exclusions: Vec::new(),
        }
    }
}

/// Debian's `modsecurity-crs` package installs CRS here.
pub const DEBIAN_CRS: &str = "/usr/share/modsecurity-crs";

impl WafSettings {
    /// The zero-configuration WAF: blocking at paranoia level 1 with the CRS
    /// installed by Debian, when it is there.
    pub fn default_crs() -> WafSettings {
        if Path::new(DEBIAN_CRS).join("rules").is_dir() {
            WafSettings {
                mode: WafMode::On,
                crs: Some(PathBuf::from(DEBIAN_CRS)),
                ..WafSettings::default()
            }
        } else {
            WafSettings::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub prefix: String,
    /// Pool for this route; the site's pool when absent.
    pub upstream: Option<String>,
    /// API routes get JSON error pages whatever the Accept header says.
    pub api: bool,
    pub max_body_bytes: Option<u64>,
    /// Whether an `Upgrade` (WebSocket) request may turn into a tunnel, which
    /// no layer can read. Unset: allowed except where the leak guard's policy
    /// for the request is `block`.
    pub websocket: Option<bool>,
    /// What happens to what a layer cannot read on this route (a
    /// compressed request body, a response in an encoding no decoder
    /// reads); unset, each layer's documented default.
    pub uninspectable: Option<Uninspectable>,
}

/// A route's explicit choice for what a layer cannot inspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uninspectable {
    /// Sent on uninspected (counted).
    Pass,
    /// Refused: 415 for a request body, 502 for a response (counted).
    Refuse,
}

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column; 0 when the problem has no single position.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// The zero-configuration start: one site, any host, one upstream,
    /// plain HTTP on `listen`, every limit at its default.
    pub fn single_site(upstream: SocketAddr, listen: SocketAddr) -> Config {
        Config {
            source: None,
            server: ServerSettings::default(),
            limits: Limits::default(),
            listeners: vec![Listener {
                address: listen,
                tls: false,
                h2c: false,
            }],
            upstreams: vec![UpstreamPool {
                name: "default".into(),
                servers: vec![upstream],
                tls_sni: None,
                health_check: None,
                eject_after_failures: 3,
                eject_for: Duration::from_secs(10),
            }],
            sites: vec![Site {
                name: "default".into(),
                hosts: vec!["*".into()],
                upstream: "default".into(),
                tls: None,
                routes: Vec::new(),
                waf: WafSettings::default_crs(),
            }],
            flood: Some(rampart_flood::FloodConfig {
                // A smaller client table than the library's default: one
                // site on one machine, still room for a million clients.
                max_tracked_keys: 2_000_000,
                sites: vec![rampart_flood::SiteConfig {
                    name: "default".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            // Without a configuration the leak guard watches and reports but
            // never changes a response: blocking is a per-route decision.
            leak_guard: Some(rampart_leakguard::PolicySet {
                default: rampart_leakguard::RoutePolicy {
                    action: rampart_leakguard::Action::Alert,
                    ..Default::default()
                },
                sites: Vec::new(),
            }),
            incidents: Default::default(),
            cache: Default::default(),
            cluster: None,
            added_exclusions: Vec::new(),
        }
    }

    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: name.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the configuration file: {e}"),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::parse(&text, &name, base)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Validates configuration text. `base` resolves relative file paths
    /// (certificates), so that a config works from any working directory.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let mut cx = Checker {
            file,
            text,
            errors: Vec::new(),
        };
        let doc = match ImDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let (line, column) = e.span().map(|s| cx.position(s.start)).unwrap_or((0, 0));
                let message = e.message().trim().to_string();
                return Err(ConfigErrors(vec![ConfigError {
                    file: file.to_string(),
                    line,
                    column,
                    message: format!("this is not valid TOML: {message}"),
                }]));
            }
        };
        let config = cx.config(doc.as_table(), base);
        if cx.errors.is_empty() {
            Ok(config)
        } else {
            cx.errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(cx.errors))
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9901))),
            access_log: AccessLogTarget::Stdout,
            trusted_proxies: Vec::new(),
            waf_log: None,
            audit_log: None,
            key_file: None,
            canaries_csv: None,
            records_csv: None,
            exclusions_file: None,
            admin_tls_cert: None,
            admin_tls_key: None,
        }
    }
}

pub mod exclusions;
pub mod incidents;
mod reader;
#[cfg(test)]
mod tests;

use reader::Checker;
