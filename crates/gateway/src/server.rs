//! Assembles the Pingora server: one proxy service per listener, the admin
//! listener, and the background tasks (health checks, reload on SIGHUP).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ConnectionFilter;
use pingora::proxy::HttpProxy;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;

use crate::accesslog::{AccessLog, LineSink};
use crate::admin::AdminApp;
use crate::admission::{Admission, ConnectionTable};
use crate::config::AccessLogTarget;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::Gateway;
use crate::runtime::{Runtime, RuntimeHandle, SniResolver};

/// Errors that stop the gateway from starting.
#[derive(Debug)]
pub enum StartError {
    Config(crate::config::ConfigErrors),
    AccessLog(std::io::Error),
    Events(String),
    AdminToken(String),
    Admin(String),
    Cluster(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::AccessLog(e) => write!(f, "cannot open a log file: {e}"),
            StartError::Events(e) => write!(f, "cannot start the event store: {e}"),
            StartError::AdminToken(e) => write!(f, "cannot set up the admin token: {e}"),
            StartError::Admin(e) => write!(f, "cannot start the admin listener: {e}"),
            StartError::Cluster(e) => write!(f, "cannot join the cluster: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Refuses connections before the TLS handshake when the client already
/// holds its share, so a flood of handshakes costs little.
#[derive(Debug)]
struct EarlyRefusal {
    table: Arc<ConnectionTable>,
    runtime: Arc<RuntimeHandle>,
}

#[async_trait]
impl ConnectionFilter for EarlyRefusal {
    async fn should_accept(&self, addr: Option<&std::net::SocketAddr>) -> bool {
        let Some(addr) = addr else { return true };
        let per_client = self
            .runtime
            .0
            .snapshot()
            .config
            .limits
            .max_connections_per_client;
        let admit = self.table.open_for(&addr.ip()) < per_client;
        if !admit {
            self.runtime
                .0
                .metrics
                .connections_rejected_per_client
                .fetch_add(1, Ordering::Relaxed);
        }
        admit
    }
}

/// Builds the server for `config` and runs it until a signal stops it.
/// Never returns on success: Pingora exits the process at shutdown.
pub fn run(config: Config) -> Result<(), StartError> {
    let metrics = Arc::new(Metrics::default());
    let events = crate::incidents::EventLog::start(&config).map_err(StartError::Events)?;
    let runtime =
        Runtime::new(config.clone(), metrics.clone(), events).map_err(StartError::Config)?;
    if let Some(cluster) = &config.cluster {
        let redis = crate::cluster::parse_redis_url(&cluster.redis).map_err(StartError::Cluster)?;
        let password = match &cluster.password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        StartError::Cluster(format!(
                            "cannot read the Redis password file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
            None => None,
        };
        let link = crate::cluster::ClusterLink::start(
            runtime.clone(),
            cluster.node.clone(),
            redis,
            password,
        )
        .map_err(|e| StartError::Cluster(format!("cannot start the cluster threads: {e}")))?;
        tracing::info!(
            "cluster: node {} shares bans through Redis at {redis}",
            cluster.node
        );
        let _ = runtime.cluster.set(link);
    }
    let access_log = AccessLog::start(&config.server.access_log, metrics.clone())
        .map_err(StartError::AccessLog)?;
    let file_sink = |path: &Option<std::path::PathBuf>, name: &str| match path {
        Some(p) => LineSink::start(&AccessLogTarget::File(p.clone()), name, metrics.clone()),
        None => Ok(LineSink::off(metrics.clone())),
    };
    // The WAF's error log is written by the request itself, before the
    // response its lines explain: a reader who has the response finds them.
    let waf_log = match &config.server.waf_log {
        Some(p) => LineSink::start_direct(p, metrics.clone()),
        None => Ok(LineSink::off(metrics.clone())),
    }
    .map_err(StartError::AccessLog)?;
    let audit_log =
        file_sink(&config.server.audit_log, "audit-log").map_err(StartError::AccessLog)?;
    // The admin listener's token: read, or made at the first start.
    let admin_token = match config.server.admin_listen {
        Some(_) => {
            let path = crate::admin::token_file();
            let (token, made) =
                crate::admin::load_or_create_token(&path).map_err(StartError::AdminToken)?;
            Some((path, token, made))
        }
        None => None,
    };

    let conf = ServerConf {
        threads: config.server.threads,
        // Each worker thread runs its own runtime and keeps the connections it
        // accepted, as nginx's workers do: measured 4% more requests/s than
        // Pingora's work-stealing runtime on small keep-alive GETs, and a
        // connection's requests stay on one core's caches.
        work_stealing: false,
        // Let in-flight requests finish on shutdown, but not forever.
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(10),
        pid_file: std::env::temp_dir()
            .join(format!("rampart-{}.pid", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let opt = Opt::default();
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let conf = server.configuration.clone();

    let table = Arc::new(ConnectionTable::default());
    let handle = Arc::new(RuntimeHandle(runtime.clone()));
    let refusals = Arc::new(crate::capture::Refusals {
        runtime: runtime.clone(),
        access_log: access_log.clone(),
        waf_log: waf_log.clone(),
    });
    for listener in &config.listeners {
        let gateway = Gateway::new(
            runtime.clone(),
            access_log.clone(),
            waf_log.clone(),
            audit_log.clone(),
            listener.tls,
        );
        let mut proxy = HttpProxy::new(gateway, conf.clone());
        proxy.handle_init_modules();
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2c = listener.h2c;
        proxy.server_options = Some(options);
        let admission = Admission {
            inner: Arc::new(proxy),
            runtime: runtime.clone(),
            table: table.clone(),
            metrics: metrics.clone(),
            h2c: listener.h2c,
            refusals: refusals.clone(),
        };
        let mut service = Service::new(format!("rampart {}", listener.address), admission);
        let address = listener.address.to_string();
        if listener.tls {
            let mut tls =
                TlsSettings::intermediate("", "").expect("TLS settings without files cannot fail");
            tls.set_cert_resolver(Arc::new(SniResolver(handle.clone())));
            tls.enable_h2();
            service.add_tls_with_settings(&address, None, tls);
        } else {
            service.add_tcp(&address);
        }
        service.set_connection_filter(Arc::new(EarlyRefusal {
            table: table.clone(),
            runtime: handle.clone(),
        }));
        server.add_service(service);
    }

    if let (Some(admin), Some((path, token, _))) = (config.server.admin_listen, &admin_token) {
        let tls = match (&config.server.admin_tls_cert, &config.server.admin_tls_key) {
            (Some(cert), Some(key)) => {
                Some((cert.display().to_string(), key.display().to_string()))
            }
            _ => None,
        };
        if tls.is_none() {
            if let Some(why) = crate::admin::exposure_warning(admin) {
                return Err(StartError::Admin(format!("{why}. The console's sign-in and session cookie would cross the network in the clear: set [server] admin_tls_cert and admin_tls_key, or keep admin_listen on 127.0.0.1")));
            }
        }
        let app = AdminApp::new(runtime.clone(), path.clone(), token.clone(), tls.is_some());
        let mut service = Service::new("rampart admin".to_string(), app);
        match &tls {
            Some((cert, key)) => service
                .add_tls(&admin.to_string(), cert, key)
                .map_err(|e| {
                    StartError::Admin(format!(
                        "cannot use the admin listener's certificate {cert} and key {key}: {e}"
                    ))
                })?,
            None => service.add_tcp(&admin.to_string()),
        }
        server.add_service(service);
    }
    server.add_service(background_service(
        "health checks",
        HealthChecker {
            runtime: runtime.clone(),
            connector: Arc::new(pingora::connectors::http::Connector::new(None)),
        },
    ));
    server.add_service(background_service(
        "reload on SIGHUP",
        ReloadOnSignal {
            runtime: runtime.clone(),
        },
    ));
    server.add_service(background_service(
        "flood shield clock",
        FloodClock {
            runtime: runtime.clone(),
        },
    ));

    tracing::info!(
        "serving {} site(s) on {}",
        config.sites.len(),
        config
            .listeners
            .iter()
            .map(|l| format!(
                "{}{}",
                if l.tls { "https://" } else { "http://" },
                l.address
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let (Some(admin), Some((path, token, made))) = (config.server.admin_listen, &admin_token) {
        let scheme = if config.server.admin_tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("console on {scheme}://{admin}/ (sign in with the admin token; the admin API is under /api/v1/, metrics at /metrics)");
        if *made {
            tracing::info!(
                "new admin token {token} written to {} (send it as Authorization: Bearer {token}; the rampart commands read the file)",
                path.display()
            );
        } else {
            tracing::info!(
                "admin token in {} (send it as Authorization: Bearer ...; the rampart commands read the file)",
                path.display()
            );
        }
        if let Some(warning) = crate::admin::exposure_warning(admin) {
            tracing::warn!("{warning}");
        }
    }
    if let Some(store) = &runtime.events.store {
        tracing::info!("recording events to {}", store.display());
    }
    server.run_forever();
}

/// Probes every server of every pool that has a health check, each at its
/// pool's interval, against whatever configuration is current.
struct HealthChecker {
    runtime: Arc<Runtime>,
    /// The probes connect as the proxy does (TLS for a pool with
    /// `tls_sni`), on fresh connections: this connector keeps none.
    connector: Arc<pingora::connectors::http::Connector>,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut last_round: HashMap<usize, Instant> = HashMap::new();
        loop {
            let snapshot = self.runtime.snapshot();
            for pool in snapshot.pools.values() {
                let Some(check) = pool.definition.health_check.clone() else {
                    continue;
                };
                let key = Arc::as_ptr(pool) as usize;
                if last_round
                    .get(&key)
                    .is_some_and(|t| t.elapsed() < check.interval)
                {
                    continue;
                }
                last_round.insert(key, Instant::now());
                for (i, server) in pool.servers.iter().enumerate() {
                    let pool = pool.clone();
                    let check = check.clone();
                    let metrics = self.runtime.metrics.clone();
                    let connector = self.connector.clone();
                    let address = server.address;
                    let peer = crate::upstream::peer(
                        server.address,
                        pool.definition.tls_sni.as_deref(),
                        check.timeout,
                        check.timeout,
                    );
                    tokio::spawn(async move {
                        let ok =
                            crate::upstream::probe(&connector, &peer, &check.path, check.timeout)
                                .await;
                        if let Some(now_up) = pool.record_probe(i, ok) {
                            metrics.health_flips.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                "upstream {address} of pool `{}` is now {}",
                                pool.definition.name,
                                if now_up { "up" } else { "down" }
                            );
                        }
                    });
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Re-reads the configuration on SIGHUP.
struct ReloadOnSignal {
    runtime: Arc<Runtime>,
}

#[async_trait]
impl BackgroundService for ReloadOnSignal {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; use `rampart reload` instead");
            return;
        };
        loop {
            tokio::select! {
                _ = hangup.recv() => match self.runtime.reload() {
                    Ok(warnings) => {
                        tracing::info!("configuration reloaded (generation {})", self.runtime.snapshot().generation);
                        for w in warnings {
                            tracing::warn!("{w}");
                        }
                    }
                    Err(errors) => tracing::error!("reload rejected; the running configuration stays:\n{errors}"),
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Drives the once-a-second work: the flood shield's clock (detector
/// seconds and buckets, schedules, ban expiry) and its events, saving what
/// the detectors learned, and each site's traffic sample for the event
/// store. Flushes the event store at shutdown.
struct FloodClock {
    runtime: Arc<Runtime>,
}

/// How often the learned state is saved when no mode changed: a restart
/// loses at most this much learning. A mode change is saved at once.
const SAVE_LEARNED_EVERY: Duration = Duration::from_secs(5);

impl FloodClock {
    /// Saves the learned state off the async threads (it ends in an fsync).
    async fn save_learned(flood: Option<(Arc<crate::flood::GatewayShield>, std::path::PathBuf)>) {
        let Some((shield, path)) = flood else {
            return;
        };
        let saved =
            tokio::task::spawn_blocking(move || crate::flood::save_learned(&path, &shield)).await;
        if let Ok(Err(e)) = saved {
            tracing::warn!("the learned state was not saved: {e}");
        }
    }
}

#[async_trait]
impl BackgroundService for FloodClock {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut events = Vec::new();
        let mut last = Instant::now();
        let mut last_purge = Instant::now();
        let mut last_save = Instant::now();
        loop {
            if last_purge.elapsed() >= Duration::from_secs(60) {
                last_purge = Instant::now();
                self.runtime
                    .cache
                    .purge_expired(crate::incidents::now_ms() as u64);
            }
            let snapshot = self.runtime.snapshot();
            let learned = snapshot
                .flood
                .as_ref()
                .map(|f| (Arc::clone(&f.shield), f.learned_path.clone()));
            if let Some(flood) = &snapshot.flood {
                flood.shield.tick(crate::flood::now());
                flood.shield.drain_events(&mut events);
                let mut mode_changed = false;
                for event in events.drain(..) {
                    mode_changed |= matches!(event, rampart_flood::Event::ModeChanged { .. });
                    // The event's own serde form: `{"event":"mode",...}`.
                    let json = serde_json::to_string(&event).unwrap_or_default();
                    self.runtime
                        .event_lines
                        .send(format!("rampart: event {json}"));
                    if let Some((site, client, kind)) = crate::flood::incident_event(&event) {
                        self.runtime.events.record(&site, client, "", kind);
                    }
                    if let Some(link) = self.runtime.cluster.get() {
                        match &event {
                            rampart_flood::Event::Banned { client, record, .. } => link
                                .share(*client, Some((record.until, record.level, record.reason))),
                            rampart_flood::Event::Unbanned { client, .. } => {
                                link.share(*client, None)
                            }
                            _ => {}
                        }
                    }
                }
                if mode_changed || last_save.elapsed() >= SAVE_LEARNED_EVERY {
                    last_save = Instant::now();
                    Self::save_learned(learned.clone()).await;
                }
            }
            // Each site's second goes to the console's chart and, when
            // events are recorded, to the store.
            let window = last.elapsed().as_millis().clamp(1, u32::MAX as u128) as u32;
            last = Instant::now();
            let mut second = Vec::with_capacity(snapshot.sites.len());
            for site in &snapshot.sites {
                if let Some(kind) = site.metrics.traffic.take(window) {
                    if let Some(counts) = rampart_console::live::Counts::from_sample(&kind) {
                        second.push((site.name.as_str().into(), counts));
                    }
                    self.runtime.events.record(&site.name, None, "", kind);
                }
            }
            self.runtime.live.push(crate::incidents::now_ms(), second);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {
                    Self::save_learned(learned).await;
                    self.runtime.events.shutdown();
                    return;
                }
            }
        }
    }
}
