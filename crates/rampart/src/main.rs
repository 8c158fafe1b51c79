//! The `rampart` command: parses arguments and starts things. Everything
//! else lives in the library crates.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use rampart_gateway::config::{AccessLogTarget, WafMode, DEBIAN_CRS};
use rampart_gateway::Config;

mod incidents_cmd;

/// mimalloc instead of the system allocator: the proxy allocates many small,
/// short-lived objects per request, where glibc's malloc showed as about a
/// tenth of the CPU profile under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
rampart — a layered security gateway

USAGE:
  rampart serve --upstream URL [--listen ADDR]   protect one site with defaults
  rampart serve --config FILE                    run from a configuration file
  rampart check --config FILE                    report every error in a configuration
  rampart reload [--admin ADDR] [--token-file PATH]
                                                 re-read the configuration of a running gateway
  rampart demo [--listen ADDR] [--origin-listen ADDR]
                                                 run the bundled demo site behind the gateway
  rampart mode SITE under-attack|normal|auto [--admin ADDR] [--token-file PATH]
                                                 switch a site's flood mode by hand
  rampart ban ADDRESS [--for SECONDS] | unban ADDRESS | bans [--admin ADDR] [--token-file PATH]
                                                 manage bans (escalating when --for is not given)
  rampart incidents [show ID | note ID TEXT [--told PARTY] | aware ID --at TIME] [--store FILE | --config FILE]
                                                 list incidents, show one, add to its decision log
  rampart report ID --format md|html|json|stix|misp [--out FILE] [--store FILE | --config FILE]
                                                 write an incident report (NCSC, ICO) or export
  rampart drill --target URL [--duration 60s] [--attack-rate N] [--attackers N] [--browsers N] [--json] ...
                                                 flood your own deployment from many loopback addresses while
                                                 browser-like visitors use it; `rampart drill --help` for all flags
  rampart crs-test [--suite DIR] [--blocking] [--http] [--only PREFIX] [--overrides FILE]
                                                 run a CRS regression suite (default ../shared/crs/v4.28.0)
                                                 through the engine, or with --http through a real gateway

OPTIONS for reload, mode, ban, unban and bans:
  --admin ADDR            the gateway's admin listener (default 127.0.0.1:9901)
  --token-file PATH       the admin token (default: RAMPART_ADMIN_TOKEN if set, else the
                          admin-token file the gateway made, in $XDG_STATE_HOME/rampart
                          or ~/.local/state/rampart)

OPTIONS for serve and demo:
  --admin ADDR|off        admin listener for metrics, reload, modes and bans (default 127.0.0.1:9901)
  --access-log PATH|-|off where the JSON access log goes (default: standard output)
  --threads N             worker threads (default: number of CPUs)
  --crs DIR               OWASP CRS directory (default /usr/share/modsecurity-crs when present)
  --waf on|detect|off     block, only log, or skip (default on when a CRS is found)
  --paranoia N            CRS paranoia level 1-4 (default 1)
  --waf-log PATH          ModSecurity-style WAF error log
  --flood on|off          the flood shield (rate limits, challenge, bans); default on
  --leak-guard on|off     the response scan for personal data; default on (report only)
  --audit-log PATH        JSON audit log of blocked and logged transactions
  --events on|off         record events and incidents (default on; store next to the config,
                          or ~/.local/state/rampart/rampart-events.db without one)
";

fn main() -> ExitCode {
    without_transparent_huge_pages();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
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

/// Command-line flags, each given at most once.
pub(crate) struct Flags {
    values: Vec<(String, String)>,
}

impl Flags {
    pub(crate) fn parse(args: &[String], known: &[&str]) -> Result<Flags> {
        let mut values = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            if !known.contains(&name.as_str()) {
                bail!(
                    "unknown argument `{arg}`; this command takes: {}\n\n{USAGE}",
                    known.join(", ")
                );
            }
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("`{name}` needs a value"))?,
            };
            if values.iter().any(|(n, _)| n == &name) {
                bail!("`{name}` is given twice");
            }
            values.push((name, value));
        }
        Ok(Flags { values })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    };
    let rest = &args[1..];
    match command.as_str() {
        "serve" => serve(&Flags::parse(
            rest,
            &[&["--config", "--upstream", "--listen"][..], OVERRIDE_FLAGS].concat(),
        )?),
        "check" => check(&Flags::parse(rest, &["--config"])?),
        "reload" => reload(&Flags::parse(rest, &["--admin", "--token-file"])?),
        "demo" => demo(&Flags::parse(
            rest,
            &[&["--listen", "--origin-listen"][..], OVERRIDE_FLAGS].concat(),
        )?),
        "crs-test" => crs_test(rest),
        "drill" => rampart_drill::command(rest),
        "demo-origin" => demo_origin(&Flags::parse(rest, &["--listen", "--capacity"])?),
        "mode" | "ban" | "unban" | "bans" => flood_command(command, rest),
        "incidents" => incidents_cmd::incidents(rest),
        "report" => incidents_cmd::report(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        "-V" | "--version" => {
            println!("rampart {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
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

/// The flags `serve` and `demo` share: the ones `apply_overrides` reads.
const OVERRIDE_FLAGS: &[&str] = &[
    "--admin",
    "--access-log",
    "--threads",
    "--crs",
    "--waf",
    "--paranoia",
    "--waf-log",
    "--audit-log",
    "--flood",
    "--leak-guard",
    "--events",
];

/// Applies the flags that may override a configuration.
fn apply_overrides(config: &mut Config, flags: &Flags) -> Result<()> {
    if let Some(admin) = flags.get("--admin") {
        config.server.admin_listen = if admin == "off" {
            None
        } else {
            Some(resolve(admin, "--admin")?)
        };
    }
    if let Some(log) = flags.get("--access-log") {
        config.server.access_log = match log {
            "-" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            path => AccessLogTarget::File(PathBuf::from(path)),
        };
    }
    if let Some(path) = flags.get("--waf-log") {
        config.server.waf_log = Some(PathBuf::from(path));
    }
    if let Some(path) = flags.get("--audit-log") {
        config.server.audit_log = Some(PathBuf::from(path));
    }
    for site in &mut config.sites {
        if let Some(dir) = flags.get("--crs") {
            site.waf.crs = Some(PathBuf::from(dir));
            if site.waf.mode == WafMode::Off && flags.get("--waf").is_none() {
                site.waf.mode = WafMode::On;
            }
        }
        if let Some(mode) = flags.get("--waf") {
            site.waf.mode = match mode {
                "on" => WafMode::On,
                "detect" => WafMode::DetectionOnly,
                "off" => WafMode::Off,
                other => bail!("--waf {other}: use on (block), detect (log only) or off"),
            };
        }
        if let Some(level) = flags.get("--paranoia") {
            site.waf.paranoia = level
                .parse()
                .ok()
                .filter(|n| (1..=4).contains(n))
                .ok_or_else(|| anyhow!("--paranoia must be 1, 2, 3 or 4"))?;
        }
        if site.waf.mode != WafMode::Off
            && site.waf.crs.is_none()
            && site.waf.rules_after.is_empty()
            && site.waf.rules_before.is_empty()
        {
            bail!("the WAF is on but no CRS was found at {DEBIAN_CRS}; give --crs DIR (a CRS release directory) or --waf off");
        }
    }
    match flags.get("--flood") {
        Some("off") => config.flood = None,
        Some("on") if config.flood.is_none() => {
            bail!("--flood on needs a [flood] section when a configuration file is used")
        }
        Some("on") | None => {}
        Some(other) => bail!("--flood {other}: use on or off"),
    }
    match flags.get("--leak-guard") {
        Some("off") => config.leak_guard = None,
        Some("on") if config.leak_guard.is_none() => {
            bail!("--leak-guard on needs a [leak_guard] section when a configuration file is used")
        }
        Some("on") | None => {}
        Some(other) => bail!("--leak-guard {other}: use on or off"),
    }
    match flags.get("--events") {
        Some("off") => config.incidents.record = false,
        Some("on") => config.incidents.record = true,
        None => {}
        Some(other) => bail!("--events {other}: use on or off"),
    }
    if let Some(threads) = flags.get("--threads") {
        config.server.threads = threads
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| anyhow!("--threads must be a positive number"))?;
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

fn serve(flags: &Flags) -> Result<ExitCode> {
    let mut config = match (flags.get("--config"), flags.get("--upstream")) {
        (Some(path), None) => match load_config(path) {
            Ok(c) => c,
            Err(code) => return Ok(code),
        },
        (None, Some(upstream)) => {
            let listen = resolve(
                flags.get("--listen").unwrap_or("127.0.0.1:8080"),
                "--listen",
            )?;
            Config::single_site(resolve(upstream, "--upstream")?, listen)
        }
        (Some(_), Some(_)) => bail!("give either --config or --upstream, not both"),
        (None, None) => {
            bail!("serve needs --upstream URL (one site with defaults) or --config FILE\n\n{USAGE}")
        }
    };
    if flags.get("--config").is_some() && flags.get("--listen").is_some() {
        bail!("--listen goes with --upstream; with --config, listeners come from the file");
    }
    apply_overrides(&mut config, flags)?;
    rampart_gateway::run(config)?;
    Ok(ExitCode::SUCCESS)
}

fn check(flags: &Flags) -> Result<ExitCode> {
    let path = flags
        .get("--config")
        .ok_or_else(|| anyhow!("check needs --config FILE"))?;
    match load_config(path) {
        Ok(config) => {
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

fn reload(flags: &Flags) -> Result<ExitCode> {
    let admin = flags.get("--admin").unwrap_or("127.0.0.1:9901");
    let (_, body) = admin_call(admin, &admin_token(flags)?, "POST", "/reload")?;
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

fn demo(flags: &Flags) -> Result<ExitCode> {
    let listen = resolve(
        flags.get("--listen").unwrap_or("127.0.0.1:8080"),
        "--listen",
    )?;
    let origin_listen = resolve(
        flags.get("--origin-listen").unwrap_or("127.0.0.1:8081"),
        "--origin-listen",
    )?;
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
    rampart_gateway::run(config)?;
    Ok(ExitCode::SUCCESS)
}

fn crs_test(args: &[String]) -> Result<ExitCode> {
    use rampart_crstest::{self as crs, Overrides, Suite};
    let mut switches = Vec::new();
    let mut rest = Vec::new();
    for a in args {
        if a == "--blocking" || a == "--http" || a == "--verbose" {
            switches.push(a.as_str());
        } else {
            rest.push(a.clone());
        }
    }
    let flags = Flags::parse(&rest, &["--suite", "--only", "--overrides"])?;
    let blocking = switches.contains(&"--blocking");
    let http = switches.contains(&"--http");
    let suite_dir = match flags.get("--suite") {
        Some(dir) => PathBuf::from(dir),
        None => crs::crs_root().join("v4.28.0"),
    };
    // The gateway's configuration resolves relative paths from its own
    // directory, so hand it an absolute one.
    let suite_dir = std::fs::canonicalize(&suite_dir).unwrap_or(suite_dir);
    if !suite_dir.join("tests").is_dir() {
        bail!("`{}` is not a CRS release with its regression tests (no tests/ folder); give --suite DIR", suite_dir.display());
    }
    let suite = Suite::new(suite_dir.clone());
    let overrides_path = match flags.get("--overrides") {
        Some(p) => PathBuf::from(p),
        None if http => rampart_crstest::default_http_overrides_path(),
        None => crs::default_overrides_path(),
    };
    let overrides = Overrides::load(&overrides_path).map_err(|e| anyhow!(e))?;
    let mut cases = crs::read_cases(&suite).map_err(|e| anyhow!(e))?;
    if let Some(prefix) = flags.get("--only") {
        cases.retain(|c| c.name.starts_with(prefix));
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

fn admin_token(flags: &Flags) -> Result<AdminToken> {
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
    if let Some(path) = flags.get("--token-file") {
        return from_file(PathBuf::from(path), true);
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
fn admin_call(admin: &str, token: &AdminToken, method: &str, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let admin = resolve(admin, "--admin")?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&admin, std::time::Duration::from_secs(5))
            .with_context(|| {
                format!(
            "cannot reach the admin listener at {admin}; is rampart running with --admin {admin}?"
        )
            })?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", token.token)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    if status == 401 {
        bail!(
            "the admin listener at {admin} refused the admin token from {}: it is not the token of \
             that gateway (a gateway reads its token from the admin-token file in its own state \
             directory; give that file with --token-file PATH)",
            token.source
        );
    }
    Ok((status, body))
}

fn flood_command(command: &str, args: &[String]) -> Result<ExitCode> {
    let positional: Vec<&String> = args.iter().take_while(|a| !a.starts_with("--")).collect();
    let flags = Flags::parse(
        &args[positional.len()..],
        &["--admin", "--for", "--token-file"],
    )?;
    let admin = flags.get("--admin").unwrap_or("127.0.0.1:9901");
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._:".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    let (method, path) = match (command, positional.as_slice()) {
        ("mode", [site, mode]) => (
            "POST",
            format!("/mode?site={}&mode={}", enc(site), enc(mode)),
        ),
        ("ban", [client]) => match flags.get("--for") {
            Some(secs) => (
                "POST",
                format!("/ban?client={}&secs={}", enc(client), enc(secs)),
            ),
            None => ("POST", format!("/ban?client={}", enc(client))),
        },
        ("unban", [client]) => ("POST", format!("/unban?client={}", enc(client))),
        ("bans", []) => ("GET", "/bans".to_string()),
        _ => bail!("usage:\n{USAGE}"),
    };
    let (status, body) = admin_call(admin, &admin_token(&flags)?, method, &path)?;
    println!("{body}");
    Ok(if status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `rampart demo-origin`: the demo site alone, optionally capped at N
/// requests per second with its counts at /.demo/stats; for `bench/`.
fn demo_origin(flags: &Flags) -> Result<ExitCode> {
    let listen = resolve(
        flags.get("--listen").unwrap_or("127.0.0.1:8081"),
        "--listen",
    )?;
    let mut options = rampart_demo::Options::default();
    if let Some(n) = flags.get("--capacity") {
        options =
            rampart_demo::Options::with_capacity(n.parse().ok().filter(|n| *n > 0).ok_or_else(
                || anyhow!("--capacity must be a positive number of requests per second"),
            )?);
    }
    let site = rampart_demo::DemoSite::start_with(listen, options)
        .with_context(|| format!("cannot start the demo site on {listen}"))?;
    println!("demo site on http://{}/", site.local_addr());
    loop {
        std::thread::park();
    }
}
