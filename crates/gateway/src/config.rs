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

use toml_edit::{ImDocument, Item, Table, Value};

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
    pub incidents: crate::incidents::IncidentSettings,
    /// The serve-stale cache; on by default.
    pub cache: rampart_cache::CacheConfig,
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

#[derive(Debug, Clone, PartialEq)]
pub struct WafExclusion {
    pub prefix: String,
    pub rule_ids: Vec<u32>,
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
        }
    }
}

/// Collects errors while walking the document.
struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

/// One TOML table being read: it remembers which keys were used so that any
/// key left over is reported as unknown (a misspelt limit must not be
/// silently ignored).
struct TableReader<'t> {
    table: &'t Table,
    used: Vec<&'static str>,
    what: &'static str,
}

impl<'a> Checker<'a> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        (line, column)
    }

    fn error_at(&mut self, span: Option<std::ops::Range<usize>>, message: String) {
        let (line, column) = span.map(|s| self.position(s.start)).unwrap_or((0, 0));
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message,
        });
    }

    fn item_span(item: &Item) -> Option<std::ops::Range<usize>> {
        match item {
            Item::Value(v) => v.span(),
            Item::Table(t) => t.span(),
            Item::ArrayOfTables(a) => a.span(),
            Item::None => None,
        }
    }

    fn finish(&mut self, reader: TableReader<'_>) {
        for (key, item) in reader.table.iter() {
            if !reader.used.contains(&key) {
                let span = reader
                    .table
                    .key(key)
                    .and_then(|k| k.span())
                    .or_else(|| Self::item_span(item));
                let known = reader.used.join(", ");
                self.error_at(
                    span,
                    format!(
                        "unknown key `{key}` in {}; the keys allowed here are: {known}",
                        reader.what
                    ),
                );
            }
        }
    }

    fn config(&mut self, root: &Table, base: &Path) -> Config {
        let mut r = TableReader::new(root, "the top level");

        let server = match r.take(&["server"]) {
            Some(item) => self.server(item),
            None => ServerSettings::default(),
        };
        let limits = match r.take(&["limits"]) {
            Some(item) => self.limits(item),
            None => Limits::default(),
        };
        let listeners =
            self.array_of_tables(r.take(&["listener"]), "listener", |cx, t| cx.listener(t));
        let upstreams =
            self.array_of_tables(r.take(&["upstream"]), "upstream", |cx, t| cx.upstream(t));
        let sites = self.array_of_tables(r.take(&["site"]), "site", |cx, t| cx.site(t, base));
        let flood = r.take(&["flood"]).and_then(|_| self.flood());
        let leak_guard = r.take(&["leak_guard"]).and_then(|_| self.leak_guard());
        let incidents = r
            .take(&["incidents"])
            .and_then(|_| self.incidents())
            .unwrap_or_default();
        let cache = r
            .take(&["cache"])
            .and_then(|_| self.cache())
            .unwrap_or_default();
        self.finish(r);

        let config = Config {
            source: None,
            server,
            limits,
            listeners,
            upstreams,
            sites,
            flood,
            leak_guard,
            incidents,
            cache,
        };
        self.cross_check(&config, root);
        config
    }

    /// The `[flood]` section, read by the flood crate's own serde types
    /// (unknown keys refused there too); positions come from the whole text.
    fn flood(&mut self) -> Option<rampart_flood::FloodConfig> {
        self.section("flood", |_: &rampart_flood::FloodConfig| Vec::new())
    }

    /// The `[leak_guard]` section, read by the leak guard's serde types.
    fn leak_guard(&mut self) -> Option<rampart_leakguard::PolicySet> {
        self.section("leak_guard", rampart_leakguard::PolicySet::problems)
    }

    /// The `[cache]` section, read by the cache crate's serde type.
    fn cache(&mut self) -> Option<rampart_cache::CacheConfig> {
        self.section("cache", rampart_cache::CacheConfig::problems)
    }

    /// The `[incidents]` section (event store, grouping thresholds, webhooks).
    fn incidents(&mut self) -> Option<crate::incidents::IncidentSettings> {
        self.section("incidents", crate::incidents::IncidentSettings::problems)
    }

    /// Reads one top-level section with its own serde type, over the whole
    /// text so that errors carry positions, then adds the problems serde
    /// cannot see (`problems`) as errors at the section's header.
    fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &'static str,
        problems: impl Fn(&T) -> Vec<String>,
    ) -> Option<T> {
        match serde::Deserializer::deserialize_map(
            toml::Deserializer::new(self.text),
            OneSection::<T> {
                name,
                found: std::marker::PhantomData,
            },
        ) {
            Ok(Some(value)) => {
                let header = self
                    .text
                    .find(&format!("[{name}"))
                    .map(|start| start..start + 1);
                for problem in problems(&value) {
                    self.error_at(header.clone(), format!("in [{name}]: {problem}"));
                }
                Some(value)
            }
            Ok(None) => None,
            Err(e) => {
                let message = e.message().trim().to_string();
                // serde names an unknown key but points at its table; point at the key.
                let span = e.span().map(|span| {
                    let key = message
                        .strip_prefix("unknown field `")
                        .and_then(|m| m.split('`').next());
                    match key.and_then(|k| self.text.get(span.start..)?.find(k)) {
                        Some(offset) => span.start + offset..span.start + offset + 1,
                        None => span,
                    }
                });
                self.error_at(span, format!("in [{name}]: {message}"));
                None
            }
        }
    }

    /// Checks that need the whole file: names that refer to each other.
    fn cross_check(&mut self, config: &Config, root: &Table) {
        let site_span = root.get("site").and_then(Self::item_span);
        if config.listeners.is_empty() {
            self.error_at(None, "no `[[listener]]` is configured; add one, e.g. `[[listener]]` with `address = \"0.0.0.0:80\"`".into());
        }
        if config.sites.is_empty() {
            self.error_at(
                None,
                "no `[[site]]` is configured; add one with `hosts` and `upstream`".into(),
            );
        }
        let pool_names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
        for (i, pool) in config.upstreams.iter().enumerate() {
            if pool_names[..i].contains(&pool.name.as_str()) {
                self.error_at(
                    None,
                    format!(
                        "upstream `{}` is defined twice; give each `[[upstream]]` a distinct name",
                        pool.name
                    ),
                );
            }
        }
        let mut hosts_seen: Vec<&str> = Vec::new();
        for (i, site) in config.sites.iter().enumerate() {
            // Metrics, events, reports and `[[flood.sites]]` name a site by
            // its name: two sites with one name would be counted as one.
            if config.sites[..i].iter().any(|s| s.name == site.name) {
                self.error_at(
                    site_span.clone(),
                    format!(
                        "site `{}` is defined twice; give each `[[site]]` a distinct name",
                        site.name
                    ),
                );
            }
            if !pool_names.contains(&site.upstream.as_str()) && !site.upstream.is_empty() {
                self.error_at(site_span.clone(), format!(
                    "site `{}` uses upstream `{}`, which is not defined; define it with `[[upstream]]` and `name = \"{}\"` or use one of: {}",
                    site.name, site.upstream, site.upstream, pool_names.join(", ")));
            }
            for route in &site.routes {
                if let Some(up) = &route.upstream {
                    if !pool_names.contains(&up.as_str()) {
                        self.error_at(site_span.clone(), format!(
                            "route `{}` of site `{}` uses upstream `{}`, which is not defined; define it with `[[upstream]]` or use one of: {}",
                            route.prefix, site.name, up, pool_names.join(", ")));
                    }
                }
            }
            for host in &site.hosts {
                if hosts_seen.contains(&host.as_str()) {
                    self.error_at(site_span.clone(), format!("host `{host}` belongs to more than one site; a host must pick exactly one site"));
                }
                hosts_seen.push(host);
            }
        }
        if let Some(flood) = &config.flood {
            for fs in &flood.sites {
                match config.sites.iter().find(|s| s.name == fs.name) {
                    None => self.error_at(
                        None,
                        format!(
                            "[[flood.sites]] `{}` names no site; use the `name` of a `[[site]]`",
                            fs.name
                        ),
                    ),
                    Some(site) => {
                        for fr in &fs.routes {
                            if !site.routes.iter().any(|r| r.prefix == fr.name) {
                                self.error_at(None, format!("flood route `{}` of site `{}` is not a route prefix of that site; name flood routes by their `[[site.route]]` prefix, e.g. \"/donate\"", fr.name, fs.name));
                            }
                        }
                    }
                }
            }
        }
        let any_tls = config.listeners.iter().any(|l| l.tls);
        if any_tls && !config.sites.iter().any(|s| s.tls.is_some()) {
            self.error_at(None, "a listener has `tls = true` but no site has a `tls` certificate; add `tls = { cert = \"...\", key = \"...\" }` to a site".into());
        }
    }

    fn array_of_tables<T>(
        &mut self,
        item: Option<&Item>,
        what: &str,
        mut each: impl FnMut(&mut Self, &Table) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        let Some(item) = item else { return out };
        match item {
            Item::ArrayOfTables(array) => {
                for table in array.iter() {
                    if let Some(v) = each(self, table) {
                        out.push(v);
                    }
                }
            }
            other => self.error_at(
                Self::item_span(other),
                format!("`{what}` must be an array of tables: write each one as `[[{what}]]`"),
            ),
        }
        out
    }

    fn server(&mut self, item: &Item) -> ServerSettings {
        let mut s = ServerSettings::default();
        let Some(table) = self.table(item, "server") else {
            return s;
        };
        let mut r = TableReader::new(table, "[server]");
        if let Some(v) = r.take(&["threads"]) {
            if let Some(n) = self.integer(v, "threads", 1, 1024) {
                s.threads = n as usize;
            }
        }
        if let Some(v) = r.take(&["admin_listen"]) {
            if let Some(text) = self.string(v, "admin_listen") {
                if text == "off" {
                    s.admin_listen = None;
                } else {
                    s.admin_listen = self.socket_addr_text(v, &text, "admin_listen");
                }
            }
        }
        if let Some(v) = r.take(&["access_log"]) {
            if let Some(text) = self.string(v, "access_log") {
                s.access_log = match text.as_str() {
                    "-" | "stdout" => AccessLogTarget::Stdout,
                    "off" => AccessLogTarget::Off,
                    path => AccessLogTarget::File(PathBuf::from(path)),
                };
            }
        }
        if let Some(v) = r.take(&["waf_log"]) {
            s.waf_log = self.string(v, "waf_log").map(PathBuf::from);
        }
        if let Some(v) = r.take(&["audit_log"]) {
            s.audit_log = self.string(v, "audit_log").map(PathBuf::from);
        }
        if let Some(v) = r.take(&["key_file"]) {
            s.key_file = self.string(v, "key_file").map(PathBuf::from);
        }
        if let Some(v) = r.take(&["canaries_csv"]) {
            s.canaries_csv = self.string(v, "canaries_csv").map(PathBuf::from);
        }
        if let Some(v) = r.take(&["records_csv"]) {
            s.records_csv = self.string(v, "records_csv").map(PathBuf::from);
        }
        if let Some(v) = r.take(&["trusted_proxies"]) {
            s.trusted_proxies = self.string_list(v, "trusted_proxies")
                .into_iter()
                .filter_map(|text| match text.parse::<Cidr>() {
                    Ok(c) => Some(c),
                    Err(why) => {
                        self.error_at(Self::item_span(v), format!("`trusted_proxies` entry `{text}` is not an address or prefix ({why}); write e.g. \"10.0.0.0/8\" or \"192.0.2.7\""));
                        None
                    }
                })
                .collect();
        }
        self.finish(r);
        s
    }

    fn limits(&mut self, item: &Item) -> Limits {
        let mut l = Limits::default();
        let Some(table) = self.table(item, "limits") else {
            return l;
        };
        let mut r = TableReader::new(table, "[limits]");
        macro_rules! duration {
            ($key:literal, $field:ident) => {
                if let Some(v) = r.take(&[$key]) {
                    if let Some(d) = self.duration(v, $key) {
                        l.$field = d;
                    }
                }
            };
        }
        macro_rules! int {
            ($key:literal, $field:ident, $min:expr, $max:expr) => {
                if let Some(v) = r.take(&[$key]) {
                    if let Some(n) = self.integer(v, $key, $min, $max) {
                        l.$field = n as _;
                    }
                }
            };
        }
        duration!("head_timeout", head_timeout);
        duration!("idle_timeout", idle_timeout);
        duration!("body_rate_grace", body_rate_grace);
        duration!("upstream_connect_timeout", upstream_connect_timeout);
        duration!("upstream_read_timeout", upstream_read_timeout);
        int!("body_min_rate", body_min_rate, 0, 1 << 40);
        int!("max_header_bytes", max_header_bytes, 1024, 1 << 20);
        int!("max_body_bytes", max_body_bytes, 0, 1 << 40);
        int!(
            "max_connections_per_client",
            max_connections_per_client,
            1,
            1 << 24
        );
        int!("max_connections", max_connections, 1, 1 << 24);
        self.finish(r);
        l
    }

    fn listener(&mut self, table: &Table) -> Option<Listener> {
        let mut r = TableReader::new(table, "[[listener]]");
        let address = match r.take(&["address"]) {
            Some(v) => self.socket_addr(v, "address"),
            None => {
                self.error_at(
                    table.span(),
                    "a `[[listener]]` needs `address`, e.g. `address = \"0.0.0.0:443\"`".into(),
                );
                None
            }
        };
        let tls = r
            .take(&["tls"])
            .and_then(|v| self.boolean(v, "tls"))
            .unwrap_or(false);
        let h2c = r
            .take(&["h2c"])
            .and_then(|v| self.boolean(v, "h2c"))
            .unwrap_or(false);
        self.finish(r);
        Some(Listener {
            address: address?,
            tls,
            h2c,
        })
    }

    fn upstream(&mut self, table: &Table) -> Option<UpstreamPool> {
        let mut r = TableReader::new(table, "[[upstream]]");
        let name = self.required_string(&mut r, table, "name", "[[upstream]]", "name = \"app\"");
        let servers: Vec<SocketAddr> = match r.take(&["servers"]) {
            Some(v) => {
                let list = self.string_list(v, "servers");
                if list.is_empty() {
                    self.error_at(
                        Self::item_span(v),
                        "`servers` is empty; list at least one address, e.g. [\"127.0.0.1:3000\"]"
                            .into(),
                    );
                }
                list.iter()
                    .filter_map(|s| self.socket_addr_text(v, s, "servers"))
                    .collect()
            }
            None => {
                self.error_at(
                    table.span(),
                    "an `[[upstream]]` needs `servers`, e.g. `servers = [\"127.0.0.1:3000\"]`"
                        .into(),
                );
                Vec::new()
            }
        };
        let tls_sni = r.take(&["tls_sni"]).and_then(|v| self.string(v, "tls_sni"));
        let eject_after_failures = r
            .take(&["eject_after_failures"])
            .and_then(|v| self.integer(v, "eject_after_failures", 1, 1000))
            .unwrap_or(3) as u32;
        let eject_for = r
            .take(&["eject_for"])
            .and_then(|v| self.duration(v, "eject_for"))
            .unwrap_or(Duration::from_secs(10));
        let health_check = r.take(&["health_check"]).and_then(|v| self.health_check(v));
        self.finish(r);
        Some(UpstreamPool {
            name: name?,
            servers,
            tls_sni,
            health_check,
            eject_after_failures,
            eject_for,
        })
    }

    fn health_check(&mut self, item: &Item) -> Option<HealthCheck> {
        let table = self.table_like(item, "health_check")?;
        let mut r = TableReader::new(&table, "`health_check`");
        let path = r
            .take(&["path"])
            .and_then(|v| self.string(v, "path"))
            .unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            self.error_at(
                Self::item_span(item),
                format!("health check path `{path}` must start with `/`"),
            );
        }
        let interval = r
            .take(&["interval"])
            .and_then(|v| self.duration(v, "interval"))
            .unwrap_or(Duration::from_secs(5));
        let timeout = r
            .take(&["timeout"])
            .and_then(|v| self.duration(v, "timeout"))
            .unwrap_or(Duration::from_secs(2));
        let unhealthy_after = r
            .take(&["unhealthy_after"])
            .and_then(|v| self.integer(v, "unhealthy_after", 1, 100))
            .unwrap_or(2) as u32;
        let healthy_after = r
            .take(&["healthy_after"])
            .and_then(|v| self.integer(v, "healthy_after", 1, 100))
            .unwrap_or(1) as u32;
        self.finish(r);
        Some(HealthCheck {
            path,
            interval,
            timeout,
            unhealthy_after,
            healthy_after,
        })
    }

    fn site(&mut self, table: &Table, base: &Path) -> Option<Site> {
        let mut r = TableReader::new(table, "[[site]]");
        let name = self.required_string(&mut r, table, "name", "[[site]]", "name = \"www\"");
        let hosts: Vec<String> = match r.take(&["hosts"]) {
            Some(v) => self
                .string_list(v, "hosts")
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            None => {
                self.error_at(table.span(), "a `[[site]]` needs `hosts`, e.g. `hosts = [\"example.org\", \"www.example.org\"]` (or [\"*\"] for any host)".into());
                Vec::new()
            }
        };
        let upstream =
            self.required_string(&mut r, table, "upstream", "[[site]]", "upstream = \"app\"");
        let tls = r.take(&["tls"]).and_then(|v| self.site_tls(v, base));
        let routes = self.array_of_tables(r.take(&["route"]), "site.route", |cx, t| cx.route(t));
        let waf = r
            .take(&["waf"])
            .map(|v| self.waf(v, base))
            .unwrap_or_default();
        self.finish(r);
        Some(Site {
            name: name?,
            hosts,
            upstream: upstream.unwrap_or_default(),
            tls,
            routes,
            waf,
        })
    }

    fn waf(&mut self, item: &Item, base: &Path) -> WafSettings {
        let mut w = WafSettings {
            mode: WafMode::On,
            ..WafSettings::default()
        };
        let Some(table) = self.table_like(item, "waf") else {
            return w;
        };
        let mut r = TableReader::new(&table, "a site's `waf`");
        if let Some(v) = r.take(&["mode"]) {
            match self.string(v, "mode").as_deref() {
                Some("on") => w.mode = WafMode::On,
                Some("detect") => w.mode = WafMode::DetectionOnly,
                Some("off") => w.mode = WafMode::Off,
                Some(other) => self.error_at(Self::item_span(v), format!("waf `mode` = \"{other}\" is not a mode; use \"on\" (block), \"detect\" (log only) or \"off\"")),
                None => {}
            }
        }
        w.crs = match r.take(&["crs"]) {
            Some(v) => self.path(v, "crs", base),
            None if Path::new(DEBIAN_CRS).join("rules").is_dir() => Some(PathBuf::from(DEBIAN_CRS)),
            None => None,
        };
        if let Some(n) = r
            .take(&["paranoia"])
            .and_then(|v| self.integer(v, "paranoia", 1, 4))
        {
            w.paranoia = n as u8;
        }
        if let Some(n) = r
            .take(&["inbound_threshold"])
            .and_then(|v| self.integer(v, "inbound_threshold", 1, 10_000))
        {
            w.inbound_threshold = n as u32;
        }
        if let Some(n) = r
            .take(&["outbound_threshold"])
            .and_then(|v| self.integer(v, "outbound_threshold", 1, 10_000))
        {
            w.outbound_threshold = n as u32;
        }
        for (key, list) in [
            ("rules_before", &mut w.rules_before),
            ("rules_after", &mut w.rules_after),
        ] {
            if let Some(v) = r.take(&[key]) {
                *list = self
                    .string_list(v, key)
                    .into_iter()
                    .map(|p| {
                        let p = PathBuf::from(p);
                        if p.is_absolute() {
                            p
                        } else {
                            base.join(p)
                        }
                    })
                    .collect();
            }
        }
        if let Some(v) = r.take(&["exclusions"]) {
            match v.as_array() {
                Some(array) => {
                    for entry in array.iter() {
                        let Some(t) = entry.as_inline_table() else {
                            self.error_at(entry.span(), "each waf exclusion must be a table, e.g. { prefix = \"/api/upload\", rule_ids = [920420] }".into());
                            continue;
                        };
                        let prefix = t.get("prefix").and_then(|p| p.as_str()).map(str::to_string);
                        let ids: Option<Vec<u32>> = t.get("rule_ids").and_then(|a| a.as_array()).map(|a| a.iter().filter_map(|i| i.as_integer()).filter(|i| *i > 0 && *i < u32::MAX as i64).map(|i| i as u32).collect());
                        let unknown: Vec<&str> = t.iter().map(|(k, _)| k).filter(|k| *k != "prefix" && *k != "rule_ids").collect();
                        match (prefix, ids) {
                            (Some(prefix), Some(rule_ids)) if prefix.starts_with('/') && !rule_ids.is_empty() && unknown.is_empty() => w.exclusions.push(WafExclusion { prefix, rule_ids }),
                            _ => self.error_at(entry.span(), "a waf exclusion needs `prefix` (starting with `/`) and a non-empty `rule_ids` list of rule numbers, and nothing else".into()),
                        }
                    }
                }
                None => self.error_at(Self::item_span(v), "`exclusions` must be a list of tables, e.g. [{ prefix = \"/api/upload\", rule_ids = [920420] }]".into()),
            }
        }
        self.finish(r);
        if w.mode != WafMode::Off
            && w.crs.is_none()
            && w.rules_before.is_empty()
            && w.rules_after.is_empty()
        {
            self.error_at(Self::item_span(item), format!("the WAF is on but has no rules: set `crs` to a CRS directory (e.g. \"{DEBIAN_CRS}\" from Debian's modsecurity-crs package) or list `rules_after` files"));
        }
        w
    }

    fn site_tls(&mut self, item: &Item, base: &Path) -> Option<SiteTls> {
        let table = self.table_like(item, "tls")?;
        let mut r = TableReader::new(&table, "a site's `tls`");
        let cert = r.take(&["cert"]).and_then(|v| self.path(v, "cert", base));
        let key = r.take(&["key"]).and_then(|v| self.path(v, "key", base));
        if cert.is_none() || key.is_none() {
            self.error_at(
                Self::item_span(item),
                "a site's `tls` needs both `cert` and `key` (PEM files)".into(),
            );
        }
        self.finish(r);
        Some(SiteTls {
            cert: cert?,
            key: key?,
        })
    }

    fn route(&mut self, table: &Table) -> Option<Route> {
        let mut r = TableReader::new(table, "[[site.route]]");
        let prefix = self.required_string(
            &mut r,
            table,
            "prefix",
            "[[site.route]]",
            "prefix = \"/api/\"",
        );
        if let Some(p) = &prefix {
            if !p.starts_with('/') {
                self.error_at(
                    table.span(),
                    format!("route prefix `{p}` must start with `/`"),
                );
            }
        }
        let upstream = r
            .take(&["upstream"])
            .and_then(|v| self.string(v, "upstream"));
        let api = r
            .take(&["api"])
            .and_then(|v| self.boolean(v, "api"))
            .unwrap_or(false);
        let max_body_bytes = r
            .take(&["max_body_bytes"])
            .and_then(|v| self.integer(v, "max_body_bytes", 0, 1 << 40))
            .map(|n| n as u64);
        let websocket = r
            .take(&["websocket"])
            .and_then(|v| self.boolean(v, "websocket"));
        let uninspectable = r.take(&["uninspectable"]).and_then(|v| {
            let span = Self::item_span(v);
            match self.string(v, "uninspectable")?.as_str() {
                "pass" => Some(Uninspectable::Pass),
                "refuse" => Some(Uninspectable::Refuse),
                other => {
                    self.error_at(
                        span,
                        format!("`uninspectable = \"{other}\"`: use \"pass\" or \"refuse\""),
                    );
                    None
                }
            }
        });
        self.finish(r);
        Some(Route {
            prefix: prefix?,
            upstream,
            api,
            max_body_bytes,
            websocket,
            uninspectable,
        })
    }

    // ----- typed readers: each reports its own error and returns None -----

    fn table<'t>(&mut self, item: &'t Item, what: &str) -> Option<&'t Table> {
        match item {
            Item::Table(t) => Some(t),
            other => {
                self.error_at(
                    Self::item_span(other),
                    format!("`{what}` must be a table: write it as `[{what}]`"),
                );
                None
            }
        }
    }

    /// A table written either as `[a.b]` or inline as `b = { ... }`.
    fn table_like(&mut self, item: &Item, what: &str) -> Option<Table> {
        match item {
            Item::Table(t) => Some(t.clone()),
            Item::Value(Value::InlineTable(t)) => Some(t.clone().into_table()),
            other => {
                self.error_at(
                    Self::item_span(other),
                    format!("`{what}` must be a table, e.g. `{what} = {{ ... }}`"),
                );
                None
            }
        }
    }

    fn required_string(
        &mut self,
        r: &mut TableReader<'_>,
        table: &Table,
        key: &'static str,
        what: &str,
        example: &str,
    ) -> Option<String> {
        match r.take(&[key]) {
            Some(v) => self.string(v, key),
            None => {
                self.error_at(
                    table.span(),
                    format!("a `{what}` needs `{key}`, e.g. `{example}`"),
                );
                None
            }
        }
    }

    fn string(&mut self, item: &Item, key: &str) -> Option<String> {
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.error_at(
                    Self::item_span(item),
                    format!("`{key}` must be a string in double quotes"),
                );
                None
            }
        }
    }

    fn path(&mut self, item: &Item, key: &str, base: &Path) -> Option<PathBuf> {
        let text = self.string(item, key)?;
        let p = PathBuf::from(&text);
        Some(if p.is_absolute() { p } else { base.join(p) })
    }

    fn boolean(&mut self, item: &Item, key: &str) -> Option<bool> {
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.error_at(
                    Self::item_span(item),
                    format!("`{key}` must be `true` or `false`"),
                );
                None
            }
        }
    }

    fn integer(&mut self, item: &Item, key: &str, min: i64, max: i64) -> Option<i64> {
        match item.as_integer() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.error_at(
                    Self::item_span(item),
                    format!(
                        "`{key}` = {n} is out of range; use a whole number from {min} to {max}"
                    ),
                );
                None
            }
            None => {
                self.error_at(
                    Self::item_span(item),
                    format!("`{key}` must be a whole number"),
                );
                None
            }
        }
    }

    fn string_list(&mut self, item: &Item, key: &str) -> Vec<String> {
        let Some(array) = item.as_array() else {
            self.error_at(
                Self::item_span(item),
                format!("`{key}` must be a list of strings, e.g. [\"a\", \"b\"]"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for v in array.iter() {
            match v.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.error_at(
                    v.span(),
                    format!("every entry of `{key}` must be a string in double quotes"),
                ),
            }
        }
        out
    }

    fn duration(&mut self, item: &Item, key: &str) -> Option<Duration> {
        if let Some(n) = item.as_integer() {
            if n >= 0 {
                return Some(Duration::from_secs(n as u64));
            }
        }
        let parsed = item.as_str().and_then(parse_duration);
        if parsed.is_none() {
            self.error_at(Self::item_span(item), format!("`{key}` must be a duration such as \"10s\", \"500ms\" or \"2m\" (or a whole number of seconds)"));
        }
        parsed
    }

    fn socket_addr(&mut self, item: &Item, key: &str) -> Option<SocketAddr> {
        let text = self.string(item, key)?;
        self.socket_addr_text(item, &text, key)
    }

    fn socket_addr_text(&mut self, item: &Item, text: &str, key: &str) -> Option<SocketAddr> {
        match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error_at(Self::item_span(item), format!("`{key}`: `{text}` is not an address with a port; write e.g. \"127.0.0.1:3000\" or \"[::1]:3000\""));
                None
            }
        }
    }
}

impl<'t> TableReader<'t> {
    fn new(table: &'t Table, what: &'static str) -> Self {
        TableReader {
            table,
            used: Vec::new(),
            what,
        }
    }

    /// Takes a key (the slice is its one spelling) and marks it as known.
    fn take(&mut self, key: &[&'static str]) -> Option<&'t Item> {
        self.used.push(key[0]);
        self.table.get(key[0]).filter(|i| !i.is_none())
    }
}

/// Parses "10s", "500ms", "2m", "1h".
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

/// A serde visitor that reads one top-level key of a document with `T` and
/// skips the others, so that a section's errors keep their positions in the
/// whole file.
struct OneSection<T> {
    name: &'static str,
    found: std::marker::PhantomData<T>,
}

impl<'de, T: serde::de::DeserializeOwned> serde::de::Visitor<'de> for OneSection<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a table with a `{}` section", self.name)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.name {
                found = Some(map.next_value::<T>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        match Config::parse(text, "rampart.toml", Path::new("/etc/rampart")) {
            Ok(c) => format!(
                "ok: {} listeners, {} sites, {} upstreams",
                c.listeners.len(),
                c.sites.len(),
                c.upstreams.len()
            ),
            Err(e) => e.to_string(),
        }
    }

    const GOOD: &str = r#"
[server]
threads = 2
trusted_proxies = ["10.0.0.0/8"]

[limits]
head_timeout = "5s"
max_body_bytes = 1048576

[[listener]]
address = "127.0.0.1:8080"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000", "127.0.0.1:3001"]
health_check = { path = "/health", interval = "2s" }

[[site]]
name = "www"
hosts = ["Example.org"]
upstream = "app"

[[site.route]]
prefix = "/api/"
api = true
"#;

    #[test]
    fn valid_config_is_accepted() {
        assert_eq!(check(GOOD), "ok: 1 listeners, 1 sites, 1 upstreams");
        let c = Config::parse(GOOD, "x", Path::new("/")).unwrap();
        assert_eq!(c.sites[0].hosts, vec!["example.org"]);
        assert_eq!(c.limits.head_timeout, Duration::from_secs(5));
        assert_eq!(
            c.upstreams[0].health_check.as_ref().unwrap().path,
            "/health"
        );
        assert!(c.sites[0].routes[0].api);
    }

    /// A route's choices for upgrades and for what cannot be inspected are
    /// read, and a wrong value is reported with its position.
    #[test]
    fn route_choices_for_tunnels_and_uninspectable_input() {
        let good = GOOD.replace(
            "api = true",
            "api = true\nwebsocket = false\nuninspectable = \"refuse\"",
        );
        let c = Config::parse(&good, "x", Path::new("/")).unwrap();
        assert_eq!(c.sites[0].routes[0].websocket, Some(false));
        assert_eq!(
            c.sites[0].routes[0].uninspectable,
            Some(Uninspectable::Refuse)
        );
        let bad = GOOD.replace("api = true", "api = true\nuninspectable = \"maybe\"");
        let errors = Config::parse(&bad, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("uninspectable")
                && errors.contains("\"pass\" or \"refuse\"")
                && errors.contains("x:"),
            "{errors}"
        );
    }

    #[test]
    fn every_error_is_reported_with_its_position() {
        let bad = r#"
[limits]
head_timeout = "ten seconds"
max_body_byts = 5

[[listener]]
address = "localhost"

[[site]]
name = "www"
hosts = ["a.org"]
upstream = "missing"
"#;
        let out = check(bad);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("rampart.toml:3:16: `head_timeout` must be a duration")),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("rampart.toml:4:1: unknown key `max_body_byts`")),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("rampart.toml:7:11: `address`: `localhost` is not an address")),
            "{out}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("uses upstream `missing`, which is not defined")),
            "{out}"
        );
    }

    #[test]
    fn two_sites_with_one_name_are_refused() {
        let twice = r#"
[[listener]]
address = "127.0.0.1:8080"

[[upstream]]
name = "app"
servers = ["127.0.0.1:3000"]

[[site]]
name = "www"
hosts = ["a.org"]
upstream = "app"

[[site]]
name = "www"
hosts = ["b.org"]
upstream = "app"
"#;
        let out = check(twice);
        assert!(out.contains("site `www` is defined twice"), "{out}");
        let once = twice.replacen(
            "name = \"www\"\nhosts = [\"b.org\"]",
            "name = \"shop\"\nhosts = [\"b.org\"]",
            1,
        );
        assert!(!check(&once).contains("defined twice"), "{}", check(&once));
    }

    #[test]
    fn broken_toml_names_the_line() {
        let out = check("[limits\nhead_timeout = 1\n");
        assert!(out.starts_with("rampart.toml:1:"), "{out}");
        assert!(out.contains("not valid TOML"), "{out}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2 weeks"), None);
        assert_eq!(parse_duration("s"), None);
    }
}
