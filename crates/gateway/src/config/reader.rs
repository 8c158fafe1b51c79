//! Reads a configuration file over `toml_edit`, so that one pass reports
//! every error with its file, line and column, and unknown keys are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Item, Table, Value};

use super::*;

/// Collects errors while walking the document.
pub(super) struct Checker<'a> {
    pub(super) file: &'a str,
    pub(super) text: &'a str,
    pub(super) errors: Vec<ConfigError>,
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
    pub(super) fn position(&self, offset: usize) -> (usize, usize) {
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

    pub(super) fn config(&mut self, root: &Table, base: &Path) -> Config {
        let mut r = TableReader::new(root, "the top level");

        let server = match r.take("server") {
            Some(item) => self.server(item, base),
            None => ServerSettings::default(),
        };
        let limits = match r.take("limits") {
            Some(item) => self.limits(item),
            None => Limits::default(),
        };
        let listeners =
            self.array_of_tables(r.take("listener"), "listener", |cx, t| cx.listener(t));
        let upstreams =
            self.array_of_tables(r.take("upstream"), "upstream", |cx, t| cx.upstream(t));
        let sites = self.array_of_tables(r.take("site"), "site", |cx, t| cx.site(t, base));
        let flood = r.take("flood").and_then(|_| self.flood());
        let leak_guard = r.take("leak_guard").and_then(|_| self.leak_guard());
        let incidents = r
            .take("incidents")
            .and_then(|_| self.incidents())
            .unwrap_or_default();
        let cache = r
            .take("cache")
            .and_then(|_| self.cache())
            .unwrap_or_default();
        let cluster = r
            .take("cluster")
            .and_then(|_| self.section("cluster", super::ClusterSettings::problems));
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
            cluster,
            added_exclusions: Vec::new(),
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
    fn incidents(&mut self) -> Option<super::incidents::IncidentSettings> {
        self.section("incidents", super::incidents::IncidentSettings::problems)
    }

    /// Reads one top-level section with its own serde type, over the whole
    /// text so that errors carry positions, then adds the problems serde
    /// cannot see (`problems`) as errors at the section's header.
    ///
    /// serde stops at a section's first error. So that a file is fixed in
    /// one round, the line holding a rejected key is blanked out (with
    /// spaces, so every later position still holds) and the section read
    /// again, until it reads or the blanking cannot go on: the rest of the
    /// file would no longer be TOML, or a field is now missing, which is a
    /// consequence of the blanking rather than an error of its own.
    fn section<T: serde::de::DeserializeOwned>(
        &mut self,
        name: &'static str,
        problems: impl Fn(&T) -> Vec<String>,
    ) -> Option<T> {
        let mut text = self.text.to_string();
        let mut failed = false;
        for _ in 0..MAX_ERRORS_PER_SECTION {
            let error = match serde::Deserializer::deserialize_map(
                toml::Deserializer::new(&text),
                OneSection::<T> {
                    name,
                    found: std::marker::PhantomData,
                },
            ) {
                Ok(Some(value)) if !failed => {
                    let header = text.find(&format!("[{name}")).map(|start| start..start + 1);
                    for problem in problems(&value) {
                        self.error_at(header.clone(), format!("in [{name}]: {problem}"));
                    }
                    return Some(value);
                }
                Ok(_) => return None,
                Err(e) => e,
            };
            let message = error.message().trim().to_string();
            if failed && message.starts_with("missing field") {
                return None;
            }
            failed = true;
            // serde names an unknown key but points at its table; point at the key.
            let span = error.span().map(|span| {
                let key = message
                    .strip_prefix("unknown field `")
                    .and_then(|m| m.split('`').next());
                match key.and_then(|k| text.get(span.start..)?.find(k)) {
                    Some(offset) => span.start + offset..span.start + offset + 1,
                    None => span,
                }
            });
            self.error_at(span.clone(), format!("in [{name}]: {message}"));
            let span = span?;
            let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
            let end = text[span.end..]
                .find('\n')
                .map_or(text.len(), |i| span.end + i);
            // One space per byte, so that byte offsets stay those of the file.
            let blank: String = text[start..end]
                .chars()
                .map(|c| {
                    if c == '\n' {
                        "\n".to_string()
                    } else {
                        " ".repeat(c.len_utf8())
                    }
                })
                .collect();
            text.replace_range(start..end, &blank);
            if text.parse::<toml::Table>().is_err() {
                return None;
            }
        }
        None
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

    /// `[server]`. Its paths are left unset unless given (every default is
    /// `None`), so each is read in one line.
    fn server(&mut self, item: &Item, base: &Path) -> ServerSettings {
        let mut s = ServerSettings::default();
        let Some(table) = self.table(item, "server") else {
            return s;
        };
        let mut r = TableReader::new(table, "[server]");
        if let Some(n) = self.read(&mut r, "threads", |cx, v, k| cx.integer(v, k, 1, 1024)) {
            s.threads = n as usize;
        }
        if let Some(v) = r.take("admin_listen") {
            if let Some(text) = self.string(v, "admin_listen") {
                if text == "off" {
                    s.admin_listen = None;
                } else {
                    s.admin_listen = self.socket_addr_text(v, &text, "admin_listen");
                }
            }
        }
        if let Some(v) = r.take("access_log") {
            if let Some(text) = self.string(v, "access_log") {
                s.access_log = match text.as_str() {
                    "-" | "stdout" => AccessLogTarget::Stdout,
                    "off" => AccessLogTarget::Off,
                    path => AccessLogTarget::File(PathBuf::from(path)),
                };
            }
        }
        s.waf_log = self
            .read(&mut r, "waf_log", Self::string)
            .map(PathBuf::from);
        s.audit_log = self
            .read(&mut r, "audit_log", Self::string)
            .map(PathBuf::from);
        s.key_file = self
            .read(&mut r, "key_file", Self::string)
            .map(PathBuf::from);
        s.canaries_csv = self
            .read(&mut r, "canaries_csv", Self::string)
            .map(PathBuf::from);
        s.records_csv = self
            .read(&mut r, "records_csv", Self::string)
            .map(PathBuf::from);
        s.exclusions_file = self
            .read(&mut r, "exclusions_file", Self::string)
            .map(|p| base.join(p));
        s.admin_tls_cert = self
            .read(&mut r, "admin_tls_cert", Self::string)
            .map(|p| base.join(p));
        s.admin_tls_key = self
            .read(&mut r, "admin_tls_key", Self::string)
            .map(|p| base.join(p));
        if s.admin_tls_cert.is_some() != s.admin_tls_key.is_some() {
            self.error_at(
                table.span(),
                "`admin_tls_cert` and `admin_tls_key` go together: give both or neither".into(),
            );
        }
        if let Some(v) = r.take("trusted_proxies") {
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
                if let Some(v) = r.take($key) {
                    if let Some(d) = self.duration(v, $key) {
                        l.$field = d;
                    }
                }
            };
        }
        macro_rules! int {
            ($key:literal, $field:ident, $min:expr, $max:expr) => {
                if let Some(v) = r.take($key) {
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
        let address = match r.take("address") {
            Some(v) => self.socket_addr(v, "address"),
            None => {
                self.error_at(
                    table.span(),
                    "a `[[listener]]` needs `address`, e.g. `address = \"0.0.0.0:443\"`".into(),
                );
                None
            }
        };
        let tls = self.read(&mut r, "tls", Self::boolean).unwrap_or(false);
        let h2c = self.read(&mut r, "h2c", Self::boolean).unwrap_or(false);
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
        let servers: Vec<SocketAddr> = match r.take("servers") {
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
        let tls_sni = self.read(&mut r, "tls_sni", Self::string);
        let eject_after_failures = self
            .read(&mut r, "eject_after_failures", |cx, v, k| {
                cx.integer(v, k, 1, 1000)
            })
            .unwrap_or(3) as u32;
        let eject_for = self
            .read(&mut r, "eject_for", Self::duration)
            .unwrap_or(Duration::from_secs(10));
        let health_check = r.take("health_check").and_then(|v| self.health_check(v));
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
        let path = self
            .read(&mut r, "path", Self::string)
            .unwrap_or_else(|| "/".into());
        if !path.starts_with('/') {
            self.error_at(
                Self::item_span(item),
                format!("health check path `{path}` must start with `/`"),
            );
        }
        let interval = self
            .read(&mut r, "interval", Self::duration)
            .unwrap_or(Duration::from_secs(5));
        let timeout = self
            .read(&mut r, "timeout", Self::duration)
            .unwrap_or(Duration::from_secs(2));
        let unhealthy_after = self
            .read(&mut r, "unhealthy_after", |cx, v, k| {
                cx.integer(v, k, 1, 100)
            })
            .unwrap_or(2) as u32;
        let healthy_after = self
            .read(&mut r, "healthy_after", |cx, v, k| cx.integer(v, k, 1, 100))
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
        let hosts: Vec<String> = match r.take("hosts") {
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
        let tls = r.take("tls").and_then(|v| self.site_tls(v, base));
        let routes = self.array_of_tables(r.take("route"), "site.route", |cx, t| cx.route(t));
        let waf = r.take("waf").map(|v| self.waf(v, base)).unwrap_or_default();
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
        if let Some(v) = r.take("mode") {
            match self.string(v, "mode").as_deref() {
                Some("on") => w.mode = WafMode::On,
                Some("detect") => w.mode = WafMode::DetectionOnly,
                Some("off") => w.mode = WafMode::Off,
                Some(other) => self.error_at(Self::item_span(v), format!("waf `mode` = \"{other}\" is not a mode; use \"on\" (block), \"detect\" (log only) or \"off\"")),
                None => {}
            }
        }
        w.crs = match r.take("crs") {
            Some(v) => self.path(v, "crs", base),
            None if Path::new(DEBIAN_CRS).join("rules").is_dir() => Some(PathBuf::from(DEBIAN_CRS)),
            None => None,
        };
        if let Some(n) = self.read(&mut r, "paranoia", |cx, v, k| cx.integer(v, k, 1, 4)) {
            w.paranoia = n as u8;
        }
        if let Some(n) = self.read(&mut r, "inbound_threshold", |cx, v, k| {
            cx.integer(v, k, 1, 10_000)
        }) {
            w.inbound_threshold = n as u32;
        }
        if let Some(n) = self.read(&mut r, "outbound_threshold", |cx, v, k| {
            cx.integer(v, k, 1, 10_000)
        }) {
            w.outbound_threshold = n as u32;
        }
        for (key, list) in [
            ("rules_before", &mut w.rules_before),
            ("rules_after", &mut w.rules_after),
        ] {
            if let Some(v) = r.take(key) {
                // Relative to the configuration; `join` keeps an absolute path as it is.
                *list = self
                    .string_list(v, key)
                    .into_iter()
                    .map(|p| base.join(p))
                    .collect();
            }
        }
        if let Some(v) = r.take("exclusions") {
            match v.as_array() {
                Some(array) => {
                    for entry in array.iter() {
                        let Some(t) = entry.as_inline_table() else {
                            self.error_at(entry.span(), "each waf exclusion must be a table, e.g. { prefix = \"/api/upload\", rule_ids = [920420] }".into());
                            continue;
                        };
                        let prefix = t.get("prefix").and_then(|p| p.as_str()).map(str::to_string);
                        let ids: Option<Vec<u32>> = t.get("rule_ids").and_then(|a| a.as_array()).map(|a| a.iter().filter_map(|i| i.as_integer()).filter(|i| *i > 0 && *i < u32::MAX as i64).map(|i| i as u32).collect());
                        let target = t.get("target").and_then(|p| p.as_str()).map(str::to_string);
                        let unknown: Vec<&str> = t.iter().map(|(k, _)| k).filter(|k| !["prefix", "rule_ids", "target"].contains(k)).collect();
                        match (prefix, ids) {
                            (Some(prefix), Some(rule_ids)) if unknown.is_empty() && (target.is_some() || t.get("target").is_none()) => {
                                let exclusion = WafExclusion { prefix, rule_ids, target };
                                match exclusion.check() {
                                    Ok(()) => w.exclusions.push(exclusion),
                                    Err(why) => self.error_at(entry.span(), why),
                                }
                            }
                            _ => self.error_at(entry.span(), "a waf exclusion needs `prefix` (starting with `/`), a non-empty `rule_ids` list of rule numbers, optionally a `target` such as \"ARGS:q\", and nothing else".into()),
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
        let cert = r.take("cert").and_then(|v| self.path(v, "cert", base));
        let key = r.take("key").and_then(|v| self.path(v, "key", base));
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
        let upstream = self.read(&mut r, "upstream", Self::string);
        let api = self.read(&mut r, "api", Self::boolean).unwrap_or(false);
        let max_body_bytes = self
            .read(&mut r, "max_body_bytes", |cx, v, k| {
                cx.integer(v, k, 0, 1 << 40)
            })
            .map(|n| n as u64);
        let websocket = self.read(&mut r, "websocket", Self::boolean);
        let uninspectable = r.take("uninspectable").and_then(|v| {
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
        match r.take(key) {
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

    /// Reads `key` of the table `r` with `read` (one of the typed readers
    /// below), marking the key as known.
    fn read<T>(
        &mut self,
        r: &mut TableReader<'_>,
        key: &'static str,
        read: impl FnOnce(&mut Self, &Item, &str) -> Option<T>,
    ) -> Option<T> {
        let item = r.take(key)?;
        read(self, item, key)
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

    /// A duration in the one convention of the whole file: a string that
    /// humantime reads, such as "500ms", "10s", "5m" or "1h 30m".
    fn duration(&mut self, item: &Item, key: &str) -> Option<Duration> {
        let parsed = item
            .as_str()
            .and_then(|text| humantime::parse_duration(text).ok());
        if parsed.is_none() {
            self.error_at(
                Self::item_span(item),
                format!("`{key}` must be a duration such as \"10s\", \"500ms\" or \"2m\""),
            );
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

    /// Takes a key and marks it as known.
    fn take(&mut self, key: &'static str) -> Option<&'t Item> {
        self.used.push(key);
        self.table.get(key).filter(|i| !i.is_none())
    }
}

/// How many errors one serde-read section reports before the reader gives
/// up on it: each costs a reading of the whole file.
const MAX_ERRORS_PER_SECTION: usize = 50;

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
