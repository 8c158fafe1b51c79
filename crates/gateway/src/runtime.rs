//! The running configuration: a snapshot that requests borrow, and reload.
//!
//! Each request takes an `Arc` of the snapshot current when it began and
//! keeps it to the end, so a reload never changes the rules under a request
//! in flight; the old snapshot is freed when its last request finishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::config::{Config, ConfigError, ConfigErrors, Site};
use crate::metrics::{Metrics, SiteMetrics};
use crate::pool::Pool;

/// A compiled configuration.
pub struct Snapshot {
    pub config: Config,
    pub generation: u64,
    pub sites: Vec<SiteRuntime>,
    exact_hosts: HashMap<String, usize>,
    /// `*.example.org` entries as (".example.org", site).
    wildcard_hosts: Vec<(String, usize)>,
    catch_all: Option<usize>,
    pub pools: HashMap<String, Arc<Pool>>,
    certificates: HashMap<String, Arc<CertifiedKey>>,
    default_certificate: Option<Arc<CertifiedKey>>,
    /// The flood shield, when the configuration has one.
    pub flood: Option<crate::flood::FloodRuntime>,
    /// The leak guard, when the configuration has one.
    pub leak: Option<crate::leak::LeakRuntime>,
}

pub struct SiteRuntime {
    pub name: String,
    /// The site's compiled rule set; `None` when its WAF is off.
    pub waf: Option<rampart_waf::Engine>,
    pub waf_mode: crate::config::WafMode,
    pub metrics: Arc<SiteMetrics>,
    pub pool: Arc<Pool>,
    /// Longest prefix first, so the first match is the most specific.
    pub routes: Vec<RouteRuntime>,
    /// The leak guard's site entries (indices into its `sites`) whose host
    /// names this site answers to: its policy is chosen among them, by the
    /// site the request resolved to, never by the raw `Host` header.
    pub leak_sites: Vec<usize>,
    /// The site's WAF exclusions, from its `[site.waf]` and from the
    /// exclusions file, ready to apply to a transaction.
    pub waf_exclusions: Vec<crate::waf::CompiledExclusion>,
}

pub struct RouteRuntime {
    pub prefix: String,
    pub pool: Arc<Pool>,
    pub api: bool,
    pub max_body_bytes: Option<u64>,
    /// Whether a WebSocket (or other) upgrade may become a tunnel here;
    /// when unset, everywhere but on the leak guard's block routes.
    pub websocket: Option<bool>,
    /// The route's explicit choice for what a layer cannot inspect.
    pub uninspectable: Option<crate::config::Uninspectable>,
}

impl Snapshot {
    /// Compiles the WAF engines' regexes on a thread of their own. They are
    /// otherwise compiled on first use, so the first requests after a start
    /// or a reload would each wait for the ones they need (about 110 ms of
    /// compiling in all for CRS v4, and 10 MB).
    pub fn warm_up_in_background(&self) {
        let mut engines: Vec<rampart_waf::Engine> = Vec::new();
        for engine in self.sites.iter().filter_map(|s| s.waf.as_ref()) {
            if !engines.iter().any(|e| e.same_rules_as(engine)) {
                engines.push(engine.clone());
            }
        }
        if engines.is_empty() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("waf-warm-up".into())
            .spawn(move || {
                for engine in engines {
                    // Load already checked every pattern, so a failure here is a
                    // size limit met while compiling; that rule then never matches.
                    if let Err(errors) = engine.warm_up() {
                        tracing::warn!("{errors}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(
                "cannot start the WAF warm-up thread ({e}); regexes compile on first use"
            );
        }
    }

    /// The site serving `host` (lower case, without port).
    pub fn site_for_host(&self, host: &str) -> Option<usize> {
        if let Some(&i) = self.exact_hosts.get(host) {
            return Some(i);
        }
        for (suffix, i) in &self.wildcard_hosts {
            if host.ends_with(suffix.as_str()) && host.len() > suffix.len() {
                return Some(*i);
            }
        }
        self.catch_all
    }

    /// The route of a request's matching path (see `resolve`), compared
    /// without case.
    pub fn route_for_path(&self, site: usize, matching_path: &str) -> Option<usize> {
        self.sites[site]
            .routes
            .iter()
            .position(|r| crate::resolve::under_prefix(matching_path, &r.prefix))
    }

    /// The certificate for a TLS server name (SNI); the first site's
    /// certificate when the name is unknown or absent.
    pub fn certificate_for(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = server_name {
            let name = name.to_ascii_lowercase();
            if let Some(c) = self.certificates.get(&name) {
                return Some(c.clone());
            }
            if let Some(i) = self.site_for_host(&name) {
                if let Some(c) = self.certificates.get(&format!("#site{i}")) {
                    return Some(c.clone());
                }
            }
        }
        self.default_certificate.clone()
    }
}

/// The shared, reloadable state of a running gateway.
pub struct Runtime {
    current: arc_swap::ArcSwap<Snapshot>,
    pub metrics: Arc<Metrics>,
    generation: AtomicU64,
    /// Flood state and keys, kept across reloads.
    pub flood_state: crate::flood::FloodState,
    /// Where every layer's events go. Started once: the store's place and
    /// the webhooks take effect at the next restart, like the listeners.
    pub events: crate::incidents::EventLog,
    /// The serve-stale cache, shared by all sites (keys include the site).
    /// Its size takes effect at the next restart.
    pub cache: rampart_cache::Cache,
    /// Event lines on standard error, written off the request path.
    pub event_lines: crate::accesslog::LineSink,
    /// The last hour of traffic per second, for the console.
    pub live: rampart_console::live::LiveTraffic,
    /// The link to the other nodes, when `[cluster]` is set; started once,
    /// after the runtime (it reaches the shield through it).
    pub cluster: std::sync::OnceLock<crate::cluster::ClusterLink>,
}

impl Runtime {
    pub fn new(
        config: Config,
        metrics: Arc<Metrics>,
        events: crate::incidents::EventLog,
    ) -> Result<Arc<Runtime>, ConfigErrors> {
        let mut config = config;
        crate::config::exclusions::read_into(&mut config)?;
        let flood_state = crate::flood::FloodState::default();
        let cache = rampart_cache::Cache::new(config.cache.clone());
        let snapshot = build(config, 1, &metrics, None, Some(&flood_state))?;
        let event_lines = crate::accesslog::LineSink::stderr("rampart-events", metrics.clone())
            .map_err(|e| {
                ConfigErrors(vec![ConfigError {
                    file: "(startup)".into(),
                    line: 0,
                    column: 0,
                    message: format!("cannot start the thread that writes event lines: {e}"),
                }])
            })?;
        snapshot.warm_up_in_background();
        Ok(Arc::new(Runtime {
            current: arc_swap::ArcSwap::from_pointee(snapshot),
            metrics,
            generation: AtomicU64::new(1),
            flood_state,
            events,
            cache,
            event_lines,
            live: Default::default(),
            cluster: Default::default(),
        }))
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Re-reads the configuration file and the exclusions file and swaps
    /// them in. A configuration with errors is rejected whole and the running
    /// one stays. Listener changes need a restart (the sockets are already
    /// bound); they are reported as a warning and the rest of the new
    /// configuration applies. A gateway started without a file re-reads only
    /// its exclusions file.
    pub fn reload(&self) -> Result<Vec<String>, ConfigErrors> {
        let old = self.snapshot();
        let loaded = match &old.config.source {
            Some(path) => Config::load(path),
            None => Ok(old.config.clone()),
        };
        let result = loaded.and_then(|mut config| {
            crate::config::exclusions::read_into(&mut config)?;
            let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
            build(
                config,
                generation,
                &self.metrics,
                Some(&old),
                Some(&self.flood_state),
            )
        });
        match result {
            Ok(snapshot) => {
                let mut warnings = Vec::new();
                if snapshot.config.listeners != old.config.listeners {
                    warnings.push("listener changes take effect at the next restart; the current listeners stay open".to_string());
                }
                if snapshot.config.server.threads != old.config.server.threads
                    || snapshot.config.server.admin_listen != old.config.server.admin_listen
                {
                    warnings.push(
                        "`threads` and `admin_listen` take effect at the next restart".to_string(),
                    );
                }
                if format!("{:?}", snapshot.config.incidents)
                    != format!("{:?}", old.config.incidents)
                {
                    warnings
                        .push("`[incidents]` changes take effect at the next restart".to_string());
                }
                if snapshot.config.cache != old.config.cache {
                    warnings.push("`[cache]` changes take effect at the next restart".to_string());
                }
                snapshot.warm_up_in_background();
                self.current.store(Arc::new(snapshot));
                self.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
                Ok(warnings)
            }
            Err(e) => {
                self.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

/// Compiles a configuration. Pools whose definition did not change are
/// carried over from `previous` so that their health state survives reload.
pub fn build(
    config: Config,
    generation: u64,
    metrics: &Metrics,
    previous: Option<&Snapshot>,
    flood_state: Option<&crate::flood::FloodState>,
) -> Result<Snapshot, ConfigErrors> {
    let mut errors = Vec::new();
    let source = config
        .source
        .as_ref()
        .map_or_else(|| "(command line)".to_string(), |p| p.display().to_string());
    let flood = match flood_state {
        Some(state) => match state.build(&config, &source, previous.and_then(|p| p.flood.as_ref()))
        {
            Ok(f) => f,
            Err(list) => {
                errors.extend(list);
                None
            }
        },
        None => None,
    };
    let leak = match crate::leak::build(&config, &source) {
        Ok(l) => l,
        Err(list) => {
            errors.extend(list);
            None
        }
    };
    let mut pools = HashMap::new();
    for def in &config.upstreams {
        let reused = previous
            .and_then(|p| p.pools.get(&def.name))
            .filter(|p| p.definition == *def)
            .cloned();
        pools.insert(
            def.name.clone(),
            reused.unwrap_or_else(|| Pool::new(def.clone())),
        );
    }
    let mut sites = Vec::new();
    let mut exact_hosts = HashMap::new();
    let mut wildcard_hosts = Vec::new();
    let mut catch_all = None;
    let mut certificates = HashMap::new();
    let mut default_certificate = None;
    // Sites with the same WAF settings share one compiled engine; the
    // exclusions are applied per request, so they do not count.
    let mut engines: Vec<(crate::config::WafSettings, Option<rampart_waf::Engine>)> = Vec::new();
    for (i, site) in config.sites.iter().enumerate() {
        let rules_only = crate::config::WafSettings {
            exclusions: Vec::new(),
            ..site.waf.clone()
        };
        let waf = match engines.iter().find(|(s, _)| *s == rules_only) {
            Some((_, engine)) => engine.clone(),
            None => match crate::waf::build_engine(&site.name, &site.waf) {
                Ok(engine) => {
                    engines.push((rules_only, engine.clone()));
                    engine
                }
                Err(list) => {
                    errors.extend(list);
                    None
                }
            },
        };
        let Some(pool) = pools.get(&site.upstream).cloned() else {
            continue;
        };
        let mut routes: Vec<RouteRuntime> = site
            .routes
            .iter()
            .map(|r| RouteRuntime {
                prefix: r.prefix.clone(),
                pool: r
                    .upstream
                    .as_ref()
                    .and_then(|u| pools.get(u))
                    .cloned()
                    .unwrap_or_else(|| pool.clone()),
                api: r.api,
                max_body_bytes: r.max_body_bytes,
                websocket: r.websocket,
                uninspectable: r.uninspectable,
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        for host in &site.hosts {
            if host == "*" {
                catch_all = Some(i);
            } else if let Some(suffix) = host.strip_prefix('*') {
                wildcard_hosts.push((suffix.to_string(), i));
            } else {
                exact_hosts.insert(host.clone(), i);
            }
        }
        if let Some(tls) = &site.tls {
            match load_certificate(site) {
                Ok(key) => {
                    let key = Arc::new(key);
                    for host in &site.hosts {
                        certificates.insert(host.clone(), key.clone());
                    }
                    certificates.insert(format!("#site{i}"), key.clone());
                    default_certificate.get_or_insert(key);
                }
                Err(message) => errors.push(ConfigError {
                    file: tls.cert.display().to_string(),
                    line: 0,
                    column: 0,
                    message,
                }),
            }
        }
        sites.push(SiteRuntime {
            name: site.name.clone(),
            waf,
            waf_mode: site.waf.mode,
            metrics: metrics.site(&site.name),
            pool,
            routes,
            leak_sites: Vec::new(),
            waf_exclusions: crate::waf::compile_exclusions(
                site.waf.exclusions.iter().chain(
                    config
                        .added_exclusions
                        .iter()
                        .filter(|a| a.site == site.name)
                        .map(|a| &a.exclusion),
                ),
            ),
        });
    }
    let mut snapshot = Snapshot {
        config,
        generation,
        sites,
        exact_hosts,
        wildcard_hosts,
        catch_all,
        pools,
        certificates,
        default_certificate,
        flood,
        leak,
    };
    // Each leak-guard site entry belongs to the gateway site its host name
    // resolves to, as a request with that name would.
    if let Some(leak) = &snapshot.leak {
        for (j, entry) in leak.policies.sites.iter().enumerate() {
            let Ok(authority) = crate::resolve::parse_authority(&entry.host) else {
                continue;
            };
            if let Some(i) = snapshot.site_for_host(&authority.host) {
                if let Some(site) = snapshot.sites.get_mut(i) {
                    site.leak_sites.push(j);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(snapshot)
}

fn load_certificate(site: &Site) -> Result<CertifiedKey, String> {
    let tls = site.tls.as_ref().ok_or("no tls")?;
    let cert = tls.cert.display().to_string();
    let key = tls.key.display().to_string();
    let loaded = pingora::tls::load_certs_and_key_files(&cert, &key)
        .map_err(|e| format!("cannot load the certificate or key of site `{}`: {e}; check that both files exist and are PEM", site.name))?;
    let Some((certs, key_der)) = loaded else {
        return Err(format!(
            "no certificate found in `{cert}` or no private key in `{key}` for site `{}`",
            site.name
        ));
    };
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der).map_err(|e| {
        format!(
            "the private key `{key}` of site `{}` cannot be used: {e}",
            site.name
        )
    })?;
    Ok(CertifiedKey::new(certs, signing_key))
}

/// Picks the certificate by SNI from whatever snapshot is current, so that
/// certificates reload with the configuration.
#[derive(Debug)]
pub struct SniResolver(pub Arc<RuntimeHandle>);

/// A `Debug` wrapper so the resolver can hold the runtime.
pub struct RuntimeHandle(pub Arc<Runtime>);

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runtime")
    }
}

impl rustls::server::ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0 .0.snapshot().certificate_for(hello.server_name())
    }
}
