//! The `rampart` command: parses arguments and starts things. Everything
//! else lives in the library crates.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rampart_gateway::config::{AccessLogTarget, WafMode, DEBIAN_CRS};
use rampart_gateway::Config;

mod incidents_cmd;

/// mimalloc instead of the system allocator: the proxy allocates many small,
/// short-lived objects per request, where glibc's malloc showed as about a
/// tenth of the CPU profile under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `rampart`'s command line. Each subcommand's flags are its own; `serve`
/// and `demo` share the ones that override a configuration.
#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "rampart — a layered security gateway",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Protect one site with defaults (--upstream URL) or run from a configuration file (--config FILE)
    #[command(group(ArgGroup::new("source").required(true).args(["config", "upstream"])))]
    Serve {
        /// A configuration file
        #[arg(long, value_name = "FILE")]
        config: Option<String>,
        /// The one site's upstream, e.g. http://127.0.0.1:3000
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// Where to listen with --upstream; with --config, listeners come from the file
        #[arg(long, value_name = "ADDR", conflicts_with = "config")]
        listen: Option<String>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Report every error in a configuration
    Check {
        #[arg(long, value_name = "FILE")]
        config: String,
    },
    /// Re-read the configuration of a running gateway
    Reload(Admin),
    /// Run the bundled demo site behind the gateway
    Demo {
        /// Where the gateway listens
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the demo site (the unprotected origin) listens
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        origin_listen: String,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Switch a site's flood mode by hand
    Mode {
        /// The site's name in the flood configuration
        site: String,
        mode: FloodMode,
        #[command(flatten)]
        admin: Admin,
    },
    /// Ban a client address (escalating when --for is not given)
    Ban {
        /// The client's address
        address: String,
        /// How long the ban lasts: 600 (seconds), 10m, 1h, 7d
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        #[command(flatten)]
        admin: Admin,
    },
    /// Let a WAF rule pass for one path prefix (and one argument or header) of a site, and reload
    Allow {
        /// The rule id, e.g. 942100; more with --rule
        rule: u32,
        /// Further rule ids switched off together with RULE
        #[arg(long = "rule", value_name = "ID")]
        rules: Vec<u32>,
        /// Requests whose path starts with this, e.g. /search
        #[arg(long, value_name = "PREFIX")]
        path: String,
        /// Only for this argument (query or form field)
        #[arg(long, value_name = "NAME", conflicts_with_all = ["header", "target"])]
        arg: Option<String>,
        /// Only for this request header
        #[arg(long, value_name = "NAME", conflicts_with = "target")]
        header: Option<String>,
        /// Only for this SecLang target, e.g. REQUEST_COOKIES:session
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
        /// The site (needed when the gateway has more than one)
        #[arg(long, value_name = "NAME")]
        site: Option<String>,
        /// Why, kept with the exclusion and in the event log
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        admin: Admin,
    },
    /// Show where the admin token is, or replace it with --rotate
    AdminToken {
        /// Make a new token; the running gateway takes it at once and ends console sessions
        #[arg(long)]
        rotate: bool,
    },
    /// Lift a ban
    Unban {
        /// The client's address
        address: String,
        #[command(flatten)]
        admin: Admin,
    },
    /// List the bans
    Bans(Admin),
    /// List incidents, show one, add to its decision log
    Incidents(incidents_cmd::Incidents),
    /// Write an incident report (NCSC, ICO) or export
    Report(incidents_cmd::Report),
    /// Flood your own deployment from many loopback addresses while browser-like visitors use it
    // Boxed: its flags are many times the size of any other command's.
    Drill(Box<rampart_drill::DrillArgs>),
    /// Run a CRS regression suite through the engine, or with --http through a real gateway
    CrsTest {
        /// A CRS release with its regression tests (default ../shared/crs/v4.28.0)
        #[arg(long, value_name = "DIR")]
        suite: Option<PathBuf>,
        /// The blocking pass at paranoia level 1, instead of detection at level 4
        #[arg(long)]
        blocking: bool,
        /// Through a gateway process over HTTP
        #[arg(long)]
        http: bool,
        /// Only the tests whose names start with PREFIX
        #[arg(long, value_name = "PREFIX")]
        only: Option<String>,
        /// The tests answered differently on purpose
        #[arg(long, value_name = "FILE")]
        overrides: Option<PathBuf>,
        /// Accepted and ignored, as it always was, so that older scripts run.
        #[arg(long, hide = true)]
        verbose: bool,
    },
    /// The demo site alone, optionally capped at N requests per second with
    /// its counts at /.demo/stats; for `bench/`.
    #[command(hide = true)]
    DemoOrigin {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
        listen: String,
        /// Requests per second the site serves
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        capacity: Option<u32>,
    },
}

/// How the commands that talk to a running gateway reach it.
#[derive(Args)]
struct Admin {
    /// The gateway's admin listener
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
    admin: String,
    /// The admin token (default: RAMPART_ADMIN_TOKEN if set, else the
    /// admin-token file the gateway made, in $XDG_STATE_HOME/rampart or
    /// ~/.local/state/rampart)
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
}

/// A site's flood mode, as the admin listener names it.
#[derive(Clone, Copy, ValueEnum)]
enum FloodMode {
    UnderAttack,
    Normal,
    Auto,
}

/// A feature switched on or off. `true` and `false` are also taken because
/// `incidents --json` always took `true`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    #[value(alias = "true")]
    On,
    #[value(alias = "false")]
    Off,
}

/// What the WAF does with a match.
#[derive(Clone, Copy, ValueEnum)]
enum WafArg {
    On,
    Detect,
    Off,
}

/// The flags that may override a configuration, for `serve` and `demo`.
#[derive(Args)]
struct Overrides {
    /// Admin listener for metrics, reload, modes and bans (default 127.0.0.1:9901), or off
    #[arg(long, value_name = "ADDR|off")]
    admin: Option<String>,
    /// Where the JSON access log goes (default: standard output)
    #[arg(long, value_name = "PATH|-|off")]
    access_log: Option<String>,
    /// Worker threads (default: number of CPUs)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// OWASP CRS directory (default /usr/share/modsecurity-crs when present)
    #[arg(long, value_name = "DIR")]
    crs: Option<PathBuf>,
    /// Block, only log, or skip (default on when a CRS is found)
    #[arg(long, value_name = "on|detect|off", hide_possible_values = true)]
    waf: Option<WafArg>,
    /// CRS paranoia level (default 1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=4))]
    paranoia: Option<u8>,
    /// ModSecurity-style WAF error log
    #[arg(long, value_name = "PATH")]
    waf_log: Option<PathBuf>,
    /// JSON audit log of blocked and logged transactions
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// The flood shield: rate limits, challenge, bans (default on)
    #[arg(long, value_name = "on|off", hide_possible_values = true)]
    flood: Option<Switch>,
    /// The response scan for personal data (default on, report only)
    #[arg(long, value_name = "on|off", hide_possible_values = true)]
    leak_guard: Option<Switch>,
    /// Record events and incidents (default on; the store is next to the
    /// config, or ~/.local/state/rampart/rampart-events.db without one)
    #[arg(long, value_name = "on|off", hide_possible_values = true)]
    events: Option<Switch>,
    /// Share bans with other gateways through this Redis, e.g. redis://10.0.0.5:6379
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// This node's name in the cluster (default: the host name)
    #[arg(long, value_name = "NAME", requires = "cluster")]
    node: Option<String>,
}

fn main() -> ExitCode {
    without_transparent_huge_pages();
    match dispatch(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them
/// on its arenas, and the kernel then zeroes, and at times first compacts,
/// 2 MiB on the first touch of each. Loading the Core Rule Set, ten
/// interleaved runs each way: with them, three loads took 175 to 267 ms,
/// nearly all of the excess kernel time (`clear_page_erms`), and peak memory
/// was 92 MB; without, 94 to 139 ms and 46 MB. Proxy throughput and the WAF's
/// time per request did not change measurably. Servers that care about
/// latency commonly run without them.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only how
    // the kernel backs this process's future page faults.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Serve {
            config,
            upstream,
            listen,
            overrides,
        } => serve(config, upstream, listen, &overrides),
        Command::Check { config } => check(&config),
        Command::Reload(admin) => reload(&admin),
        Command::Demo {
            listen,
            origin_listen,
            overrides,
        } => demo(&listen, &origin_listen, &overrides),
        Command::CrsTest {
            suite,
            blocking,
            http,
            only,
            overrides,
            verbose: _,
        } => crs_test(suite, blocking, http, only, overrides),
        Command::Drill(args) => rampart_drill::command(*args),
        Command::DemoOrigin { listen, capacity } => demo_origin(&listen, capacity),
        Command::Mode { site, mode, admin } => {
            let mode = mode.to_possible_value().expect("no mode is skipped");
            let path = format!("/api/v1/sites/{}/mode", enc(&site));
            let body = serde_json::json!({ "mode": mode.get_name() });
            api_command(&admin, "PUT", &path, Some(body))
        }
        Command::Ban {
            address,
            duration,
            admin,
        } => {
            // A bare number is seconds, as `--for` always took.
            let duration = duration.map(|d| match d.parse::<u64>() {
                Ok(secs) => format!("{secs}s"),
                Err(_) => d,
            });
            let body = serde_json::json!({ "address": address, "for": duration });
            api_command(&admin, "POST", "/api/v1/bans", Some(body))
        }
        Command::Unban { address, admin } => {
            let path = format!("/api/v1/bans/{}", enc(&address));
            api_command(&admin, "DELETE", &path, None)
        }
        Command::Bans(admin) => api_command(&admin, "GET", "/api/v1/bans", None),
        Command::Allow {
            rule,
            rules,
            path,
            arg,
            header,
            target,
            site,
            reason,
            admin,
        } => allow(
            rule,
            rules,
            path,
            arg.map(|a| format!("ARGS:{a}"))
                .or(header.map(|h| format!("REQUEST_HEADERS:{h}")))
                .or(target),
            site,
            reason,
            &admin,
        ),
        Command::AdminToken { rotate } => admin_token_command(rotate),
        Command::Incidents(args) => incidents_cmd::incidents(args),
        Command::Report(args) => incidents_cmd::report(args),
    }
}

fn resolve(text: &str, what: &str) -> Result<SocketAddr> {
    let bare = text
        .strip_prefix("http://")
        .unwrap_or(text)
        .trim_end_matches('/');
    if bare.starts_with("https://") {
        bail!("{what} `{text}`: TLS to the upstream needs a configuration file (`tls_sni` in `[[upstream]]`)");
    }
    bare.to_socket_addrs()
        .with_context(|| {
            format!("{what} `{text}` is not an address with a port, e.g. http://127.0.0.1:3000")
        })?
        .next()
        .ok_or_else(|| anyhow!("{what} `{text}` did not resolve to any address"))
}

/// Applies the flags that may override a configuration.
fn apply_overrides(config: &mut Config, flags: &Overrides) -> Result<()> {
    if let Some(redis) = &flags.cluster {
        rampart_gateway::cluster::parse_redis_url(redis).map_err(|e| anyhow!("--cluster {e}"))?;
        let mut cluster =
            config
                .cluster
                .take()
                .unwrap_or(rampart_gateway::config::ClusterSettings {
                    node: rampart_gateway::config::host_name(),
                    redis: String::new(),
                    password_file: None,
                });
        cluster.redis = redis.clone();
        if let Some(node) = &flags.node {
            cluster.node = node.clone();
        }
        config.cluster = Some(cluster);
    }
    if let Some(admin) = &flags.admin {
        config.server.admin_listen = if admin == "off" {
            None
        } else {
            Some(resolve(admin, "--admin")?)
        };
    }
    if let Some(log) = &flags.access_log {
        config.server.access_log = match log.as_str() {
            "-" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            path => AccessLogTarget::File(PathBuf::from(path)),
        };
    }
    if let Some(path) = &flags.waf_log {
        config.server.waf_log = Some(path.clone());
    }
    if let Some(path) = &flags.audit_log {
        config.server.audit_log = Some(path.clone());
    }
    for site in &mut config.sites {
        if let Some(dir) = &flags.crs {
            site.waf.crs = Some(dir.clone());
            if site.waf.mode == WafMode::Off && flags.waf.is_none() {
                site.waf.mode = WafMode::On;
            }
        }
        if let Some(mode) = flags.waf {
            site.waf.mode = match mode {
                WafArg::On => WafMode::On,
                WafArg::Detect => WafMode::DetectionOnly,
                WafArg::Off => WafMode::Off,
            };
        }
        if let Some(level) = flags.paranoia {
            site.waf.paranoia = level;
        }
        if site.waf.mode != WafMode::Off
            && site.waf.crs.is_none()
            && site.waf.rules_after.is_empty()
            && site.waf.rules_before.is_empty()
        {
            bail!("the WAF is on but no CRS was found at {DEBIAN_CRS}; give --crs DIR (a CRS release directory) or --waf off");
        }
    }
    match flags.flood {
        Some(Switch::Off) => config.flood = None,
        Some(Switch::On) if config.flood.is_none() => {
            bail!("--flood on needs a [flood] section when a configuration file is used")
        }
        Some(Switch::On) | None => {}
    }
    match flags.leak_guard {
        Some(Switch::Off) => config.leak_guard = None,
        Some(Switch::On) if config.leak_guard.is_none() => {
            bail!("--leak-guard on needs a [leak_guard] section when a configuration file is used")
        }
        Some(Switch::On) | None => {}
    }
    if let Some(events) = flags.events {
        config.incidents.record = events == Switch::On;
    }
    if let Some(threads) = flags.threads {
        config.server.threads = threads.into();
    }
    Ok(())
}

fn load_config(path: &str) -> Result<Config, ExitCode> {
    Config::load(&PathBuf::from(path)).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("rampart: {} error(s) in {path}", errors.0.len());
        ExitCode::from(1)
    })
}

fn serve(
    config_path: Option<String>,
    upstream: Option<String>,
    listen: Option<String>,
    overrides: &Overrides,
) -> Result<ExitCode> {
    // clap has made sure that exactly one of --config and --upstream is
    // given, and --listen only with --upstream.
    let mut config = match (config_path, upstream) {
        (Some(path), _) => match load_config(&path) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        },
        (None, upstream) => {
            let listen = resolve(listen.as_deref().unwrap_or("127.0.0.1:8080"), "--listen")?;
            let upstream = upstream.unwrap_or_default();
            Config::single_site(resolve(&upstream, "--upstream")?, listen)
        }
    };
    apply_overrides(&mut config, overrides)?;
    let _logging = start_logging();
    rampart_gateway::run(config)?;
    Ok(ExitCode::SUCCESS)
}

/// Sends the gateway's operational messages, and Pingora's own (through the
/// `log` bridge), to standard error, filtered by `RUST_LOG` (`info` when it
/// is unset). A thread of its own writes them, so no request waits on a
/// slow terminal or pipe; when it falls behind, messages are dropped rather
/// than queued without end. The returned guard flushes what is queued when
/// it is dropped.
fn start_logging() -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // `try_init` fails only if a subscriber is already set, which nothing in
    // this process does before us; the messages would then go there.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    guard
}

fn check(path: &str) -> Result<ExitCode> {
    match load_config(path) {
        Ok(mut config) => {
            if let Err(errors) = rampart_gateway::config::exclusions::read_into(&mut config) {
                eprintln!("{errors}");
                return Ok(ExitCode::from(1));
            }
            // Certificates are loaded here too, so that a bad key is found
            // by `check` rather than at start.
            let metrics = std::sync::Arc::new(Default::default());
            if let Err(errors) =
                rampart_gateway::runtime::build(config.clone(), 0, &metrics, None, None)
            {
                eprintln!("{errors}");
                return Ok(ExitCode::from(1));
            }
            println!(
                "{path}: ok ({} listener(s), {} site(s), {} upstream pool(s))",
                config.listeners.len(),
                config.sites.len(),
                config.upstreams.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn reload(flags: &Admin) -> Result<ExitCode> {
    let admin = &flags.admin;
    let (_, body) = admin_call(admin, &admin_token(flags)?, "POST", "/api/v1/reload", None)?;
    let outcome: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("unexpected answer from {admin}: {body}"))?;
    if outcome["reloaded"] == true {
        println!("reloaded (generation {})", outcome["generation"]);
        for w in outcome["warnings"].as_array().into_iter().flatten() {
            println!("warning: {}", w.as_str().unwrap_or_default());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("reload rejected; the running configuration stays:");
        for e in outcome["errors"].as_array().into_iter().flatten() {
            eprintln!("{}", e.as_str().unwrap_or_default());
        }
        Ok(ExitCode::from(1))
    }
}

fn demo(listen: &str, origin_listen: &str, flags: &Overrides) -> Result<ExitCode> {
    let listen = resolve(listen, "--listen")?;
    let origin_listen = resolve(origin_listen, "--origin-listen")?;
    let site = rampart_demo::DemoSite::start(origin_listen)
        .with_context(|| format!("cannot start the demo site on {origin_listen}"))?;
    let origin = site.local_addr();
    let mut config = Config::single_site(origin, listen);
    // The demo's donor feed is the leak this product exists to catch: block
    // it, under whichever name the visitor uses for the demo's address.
    let hosts = [
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        listen.ip().to_string(),
    ];
    let mut policies = String::from("[default]\naction = \"alert\"\n");
    for host in hosts.iter().collect::<std::collections::BTreeSet<_>>() {
        policies.push_str(&format!("[[sites]]\nhost = \"{host}\"\n[[sites.routes]]\npath_prefix = \"/donations/feed\"\naction = \"block\"\n"));
    }
    config.leak_guard = Some(toml::from_str(&policies).context("the demo's leak-guard policy")?);
    apply_overrides(&mut config, flags)?;
    println!("demo site (the origin, unprotected): http://{origin}/");
    println!("protected by rampart:                http://{listen}/");
    println!("press Ctrl-C to stop");
    // The demo site's threads live until the process exits with the gateway.
    std::mem::forget(site);
    let _logging = start_logging();
    rampart_gateway::run(config)?;
    Ok(ExitCode::SUCCESS)
}

fn crs_test(
    suite: Option<PathBuf>,
    blocking: bool,
    http: bool,
    only: Option<String>,
    overrides: Option<PathBuf>,
) -> Result<ExitCode> {
    use rampart_crstest::{self as crs, Overrides, Suite};
    let suite_dir = suite.unwrap_or_else(|| crs::crs_root().join("v4.28.0"));
    // The gateway's configuration resolves relative paths from its own
    // directory, so hand it an absolute one.
    let suite_dir = std::fs::canonicalize(&suite_dir).unwrap_or(suite_dir);
    if !suite_dir.join("tests").is_dir() {
        bail!("`{}` is not a CRS release with its regression tests (no tests/ folder); give --suite DIR", suite_dir.display());
    }
    let suite = Suite::new(suite_dir.clone());
    let overrides_path = match overrides {
        Some(p) => p,
        None if http => rampart_crstest::default_http_overrides_path(),
        None => crs::default_overrides_path(),
    };
    let overrides = Overrides::load(&overrides_path).map_err(|e| anyhow!(e))?;
    let mut cases = crs::read_cases(&suite).map_err(|e| anyhow!(e))?;
    if let Some(prefix) = only {
        cases.retain(|c| c.name.starts_with(&prefix));
    }
    let paranoia = if blocking { 1 } else { 4 };
    let report = if http {
        crs_test_http(&suite, &cases, &overrides, blocking, paranoia)?
    } else {
        let engine = crs::load_engine(&suite, !blocking, paranoia).map_err(|e| anyhow!("{e}"))?;
        if blocking {
            crs::run_blocking(&engine, &suite, &cases, &overrides)
        } else {
            crs::run_suite(&engine, &suite, &cases, &overrides)
        }
    };
    print!("{}", report.render());
    let listing = overrides.listing(&suite.name);
    if !listing.is_empty() {
        println!(
            "answered differently on purpose (from {}):",
            overrides_path.display()
        );
        print!("{listing}");
    }
    println!("pass rate {:.2}% ({})", report.pass_rate(), suite.name);
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Starts CRS's reflecting backend and a gateway process in front of it,
/// configured as CRS's test README asks, and runs the suite over HTTP.
fn crs_test_http(
    suite: &rampart_crstest::Suite,
    cases: &[rampart_crstest::Case],
    overrides: &rampart_crstest::Overrides,
    blocking: bool,
    paranoia: u8,
) -> Result<rampart_crstest::Report> {
    use std::time::Duration;
    let backend = rampart_crstest::ReflectBackend::start("127.0.0.1:0".parse()?)?;
    let dir = std::env::temp_dir().join(format!("rampart-crs-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let setup = dir.join("crs-test-setup.conf");
    std::fs::write(
        &setup,
        format!(
            "{}\n{}\n",
            rampart_crstest::setup_rule(suite.schema, !blocking, paranoia),
            rampart_crstest::MARKER_RULE
        ),
    )?;
    let waf_log = dir.join("waf.log");
    let _ = std::fs::remove_file(&waf_log);
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nadmin_listen = \"off\"\naccess_log = \"off\"\nwaf_log = {:?}\nthreads = 2\n\n[limits]\nmax_header_bytes = 65536\n\n[[listener]]\naddress = \"{listen}\"\n\n[[upstream]]\nname = \"backend\"\nservers = [\"{}\"]\n\n[[site]]\nname = \"crs-test\"\nhosts = [\"*\"]\nupstream = \"backend\"\n[site.waf]\nmode = \"on\"\ncrs = {:?}\nparanoia = {paranoia}\nrules_before = [{:?}]\n",
            waf_log.display().to_string(),
            backend.local_addr(),
            suite.root.display().to_string(),
            setup.display().to_string()
        ),
    )?;
    let mut gateway = std::process::Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("gateway.err"))?)
        .spawn()
        .context("cannot start the gateway")?;
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
        if started.elapsed() > Duration::from_secs(60) || gateway.try_wait()?.is_some() {
            let _ = gateway.kill();
            bail!(
                "the gateway did not start: {}",
                std::fs::read_to_string(dir.join("gateway.err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let target = rampart_crstest::HttpTarget {
        gateway: listen,
        waf_log,
        timeout: Duration::from_secs(5),
    };
    let report = if blocking {
        let _ = gateway.kill();
        bail!("--http runs the detection suite; the blocking pass runs through the engine (drop --http)");
    } else {
        rampart_crstest::run_suite_http(&target, suite, cases, overrides)
    };
    let _ = gateway.kill();
    let _ = gateway.wait();
    Ok(report)
}

/// The admin token and where it came from: `--token-file PATH`, else the
/// variable `RAMPART_ADMIN_TOKEN` (the token itself), else the file the
/// gateway made in the state directory.
struct AdminToken {
    token: String,
    source: String,
}

const TOKEN_VARIABLE: &str = "RAMPART_ADMIN_TOKEN";

fn admin_token(flags: &Admin) -> Result<AdminToken> {
    use rampart_gateway::admin::{parse_token, read_token_file, token_file};
    let from_file = |path: PathBuf, given: bool| -> Result<AdminToken> {
        let token = read_token_file(&path).map_err(|why| {
            let what_to_do = if given {
                "check the path given to --token-file".to_string()
            } else {
                format!(
                    "the gateway writes it there at its first start with an admin listener; run this \
                     command as the gateway's user with the same XDG_STATE_HOME (or HOME), or give \
                     --token-file PATH or set {TOKEN_VARIABLE}"
                )
            };
            anyhow!(
                "cannot read the admin token from {}: {why}; {what_to_do}",
                path.display()
            )
        })?;
        Ok(AdminToken {
            token,
            source: path.display().to_string(),
        })
    };
    if let Some(path) = &flags.token_file {
        return from_file(path.clone(), true);
    }
    match std::env::var(TOKEN_VARIABLE) {
        Ok(text) if !text.trim().is_empty() => {
            let token = parse_token(&text)
                .map_err(|why| anyhow!("{TOKEN_VARIABLE} is not an admin token: {why}"))?;
            Ok(AdminToken {
                token,
                source: TOKEN_VARIABLE.to_string(),
            })
        }
        Ok(_) => from_file(token_file(), false),
        Err(std::env::VarError::NotUnicode(_)) => {
            bail!("{TOKEN_VARIABLE} is not an admin token: it is not valid UTF-8")
        }
        Err(std::env::VarError::NotPresent) => from_file(token_file(), false),
    }
}

/// Sends one request to the admin listener, with the token, and returns
/// (status, body); a refused token is an error that says where it came from.
fn admin_call(
    admin: &str,
    token: &AdminToken,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, String)> {
    let admin = resolve(admin, "--admin")?;
    let method = method.parse().context("an HTTP method")?;
    let bearer = format!("Bearer {}", token.token);
    let answer = rampart_gateway::client::call(
        method,
        &format!("http://{admin}{path}"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        body.map(|b| b.to_string()).unwrap_or_default(),
        std::time::Duration::from_secs(30),
    )
    .map_err(|e| {
        anyhow!("cannot reach the admin listener at {admin} ({e}); is rampart running with --admin {admin}?")
    })?;
    if answer.status == 401 {
        bail!(
            "the admin listener at {admin} refused the admin token from {}: it is not the token of \
             that gateway (a gateway reads its token from the admin-token file in its own state \
             directory; give that file with --token-file PATH)",
            token.source
        );
    }
    Ok((answer.status, answer.body))
}

/// What is left as it is in a value in the admin listener's query string.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b':');

/// Percent-encodes a value for the admin listener's query string.
fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// `mode`, `ban`, `unban` and `bans`: one call to the admin API, whose
/// answer is printed as it is.
fn api_command(
    flags: &Admin,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<ExitCode> {
    let (status, answer) = admin_call(&flags.admin, &admin_token(flags)?, method, path, body)?;
    println!("{answer}");
    Ok(if (200..300).contains(&status) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `rampart allow`: adds a scoped WAF exclusion through the admin API,
/// which writes it to the exclusions file and reloads.
fn allow(
    rule: u32,
    mut rules: Vec<u32>,
    path: String,
    target: Option<String>,
    site: Option<String>,
    reason: String,
    flags: &Admin,
) -> Result<ExitCode> {
    let token = admin_token(flags)?;
    let site = match site {
        Some(s) => s,
        None => {
            let (_, body) = admin_call(&flags.admin, &token, "GET", "/api/v1/sites", None)?;
            let sites: Vec<serde_json::Value> = serde_json::from_str(&body)
                .with_context(|| format!("unexpected answer from {}: {body}", flags.admin))?;
            match sites.as_slice() {
                [one] => one["name"].as_str().unwrap_or_default().to_string(),
                _ => bail!(
                    "the gateway has {} sites; say which with --site NAME",
                    sites.len()
                ),
            }
        }
    };
    rules.insert(0, rule);
    let by = std::env::var("USER").unwrap_or_else(|_| "rampart allow".into());
    let body = serde_json::json!({
        "site": site, "prefix": path, "rule_ids": rules, "target": target, "reason": reason, "by": by,
    });
    api_command(flags, "POST", "/api/v1/exclusions", Some(body))
}

/// `rampart admin-token`: where the token is, or a new one.
fn admin_token_command(rotate: bool) -> Result<ExitCode> {
    let path = rampart_gateway::admin::token_file();
    if rotate {
        let token = rampart_gateway::admin::rotate_token(&path).map_err(|e| anyhow!("{e}"))?;
        println!("new admin token {token} written to {}", path.display());
        println!("a running gateway takes it at its next admin call; console sessions made with the old one end");
    } else {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `rampart demo-origin`: the demo site alone, optionally capped at N
/// requests per second with its counts at /.demo/stats; for `bench/`.
fn demo_origin(listen: &str, capacity: Option<u32>) -> Result<ExitCode> {
    let listen = resolve(listen, "--listen")?;
    let options = capacity.map_or_else(
        rampart_demo::Options::default,
        rampart_demo::Options::with_capacity,
    );
    let site = rampart_demo::DemoSite::start_with(listen, options)
        .with_context(|| format!("cannot start the demo site on {listen}"))?;
    println!("demo site on http://{}/", site.local_addr());
    loop {
        std::thread::park();
    }
}
