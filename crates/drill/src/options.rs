//! The drill's command line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;

use crate::addrs::{HOSTS_PER_PREFIX, MAX_BROWSERS};

/// What `rampart drill --help` says after the flags: how a cold start works.
const COLD_START: &str = "\
A cold start: everything after `--` is a gateway command the drill runs itself
(e.g. -- rampart serve --upstream http://127.0.0.1:8081 --listen 127.0.0.1:8080).
Times count from its start; the drill waits until --target accepts, the browsers
start at once, and the gateway is stopped (SIGTERM, then SIGKILL after 3 s) when
the drill ends, fails or is interrupted. Its memory is watched.

TIME is a number with s, ms or m (60s, 500ms, 2m); a bare number is seconds.";

/// `rampart drill`'s flags as given. [`DrillOptions::from_args`] checks the
/// ones that depend on each other and fills in the defaults that depend on
/// whether the drill starts the gateway itself.
///
/// The defaults are set here, where `--help` shows them: 60 s is long
/// enough for an attack detector to react and settle, short enough to run
/// before every release; 1,000 req/s overwhelms a typical small campaign
/// site's origin and is within what one core of this drill can send; 5,000
/// addresses, each in its own /24, are what a rented botnet has, far beyond
/// what per-address limits alone can stop; 50 people clicking about once a
/// second is a busy evening for a small site; past 5 s a person has given
/// up on a request; and one solver, because the drill shares its machine
/// with the gateway under test while real visitors have their own CPUs.
#[derive(Parser, Clone, Debug)]
#[command(name = "rampart drill", after_help = COLD_START)]
pub struct DrillArgs {
    /// The gateway, e.g. http://127.0.0.1:8080 (only loopback unless --allow-remote)
    #[arg(long, value_name = "URL", value_parser = http_url)]
    target: HttpUrl,
    /// Allow a target that is not on loopback (sources are then not spread:
    /// every request comes from this machine's address)
    #[arg(long)]
    allow_remote: bool,
    /// How long the attack runs
    #[arg(long, value_name = "TIME", default_value = "60s", value_parser = positive_duration)]
    duration: Duration,
    /// Browsers only, before the attack, not counted (default 0s); lets an
    /// attack detector learn normal traffic first
    #[arg(long, value_name = "TIME", value_parser = parse_duration, conflicts_with = "flood_after")]
    warmup: Option<Duration>,
    /// Attack requests per second, all attackers together
    #[arg(long, value_name = "N", default_value_t = 1000)]
    attack_rate: u32,
    /// Distinct attacker addresses
    #[arg(long, value_name = "N", default_value_t = 5000,
          value_parser = clap::value_parser!(u32).range(1..))]
    attackers: u32,
    /// Attackers sharing one /24 (1: each in its own)
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(HOSTS_PER_PREFIX)))]
    attackers_per_prefix: u32,
    /// Comma-separated paths the attack requests
    #[arg(long, alias = "paths", value_name = "LIST", default_value = "/", value_parser = paths)]
    attack_paths: Paths,
    /// The attack's Accept header (default a browser's; application/json
    /// sends the flood as an API client would)
    #[arg(long, value_name = "TEXT", value_parser = header_value)]
    attack_accept: Option<String>,
    /// Browser-like visitors
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(..=i64::from(MAX_BROWSERS)))]
    browsers: u32,
    /// Each visitor's pause between page views
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = parse_duration)]
    browser_interval: Duration,
    /// Comma-separated pages visitors open
    #[arg(long, value_name = "LIST", default_value = "/,/donate,/login", value_parser = paths)]
    browser_paths: Paths,
    /// Host header (default: the target's host and port)
    #[arg(long, value_name = "NAME", value_parser = host_name)]
    host: Option<String>,
    /// Deadline of one request
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = positive_duration)]
    timeout: Duration,
    /// Threads solving challenges for the visitors, at the lowest CPU priority
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    solvers: u32,
    /// Processes whose memory to sample every 200 ms (children included),
    /// e.g. the gateway's
    #[arg(long = "watch-pid", value_name = "PID[,PID...]", value_delimiter = ',', value_parser = process_id)]
    watch_pids: Vec<u32>,
    /// The capped demo origin's counts, e.g. http://127.0.0.1:8081/.demo/stats
    #[arg(long, value_name = "URL", value_parser = http_url)]
    upstream_stats: Option<HttpUrl>,
    /// A name for this run in the report
    #[arg(long, value_name = "NAME")]
    label: Option<String>,
    /// Print the summary as one JSON object
    #[arg(long)]
    json: bool,
    /// The flood starts this long after the gateway was started (or when it
    /// first accepts, if later); browsers are counted from the start
    /// (default 3s with a gateway command, else 0s)
    #[arg(long, value_name = "TIME", value_parser = parse_duration)]
    flood_after: Option<Duration>,
    /// Stop the gateway this long after its start, mid-flood (SIGTERM, then
    /// SIGKILL after 3 s, as an operator's restart) and start it again with
    /// the same command
    #[arg(long, value_name = "TIME", value_parser = parse_duration, requires = "gateway_command")]
    restart_after: Option<Duration>,
    /// Page views per visitor: then the visitor leaves and a new one, with
    /// no cookies and a new address, arrives in its place (default 3 with a
    /// gateway command; 0: visitors stay throughout)
    #[arg(long, value_name = "N")]
    visit_steps: Option<u32>,
    /// Where the started gateway's standard error goes (appended; default
    /// rampart-drill-gateway-PID.log in the temporary directory); its
    /// standard output is discarded
    #[arg(long, value_name = "FILE", requires = "gateway_command")]
    gateway_log: Option<PathBuf>,
    /// A gateway the drill starts itself, after `--`
    #[arg(last = true, value_name = "GATEWAY-COMMAND")]
    gateway_command: Vec<String>,
}

/// Everything a drill needs to know.
#[derive(Clone, Debug)]
pub struct DrillOptions {
    /// The gateway's address.
    pub target: SocketAddr,
    /// The `Host` header to send.
    pub host: String,
    /// Bind sources across 127.0.0.0/8 (only when the target is on loopback).
    pub spread_sources: bool,
    /// How long the attack runs.
    pub duration: Duration,
    /// Browsers-only time before the attack, not counted.
    pub warmup: Duration,
    /// Attack requests per second, in all.
    pub attack_rate: u32,
    /// Distinct attacker addresses.
    pub attackers: u32,
    /// Attackers sharing one /24.
    pub attackers_per_prefix: u32,
    /// Paths the attack requests, in turn.
    pub attack_paths: Vec<String>,
    /// The attack's `Accept` header: a browser's by default; an API
    /// client's (`application/json`) tries the header that once skipped
    /// the challenge.
    pub attack_accept: String,
    /// Browser-like visitors.
    pub browsers: u32,
    /// Each visitor's pause between page views.
    pub browser_interval: Duration,
    /// Pages visitors open, chosen in turn.
    pub browser_paths: Vec<String>,
    /// Deadline of one request.
    pub timeout: Duration,
    /// Visitors solving a challenge at once.
    pub solvers: usize,
    /// Processes whose memory to sample.
    pub watch_pids: Vec<u32>,
    /// The capped origin's counts: its address and path.
    pub upstream_stats: Option<(SocketAddr, String)>,
    /// A name for the run.
    pub label: Option<String>,
    /// Print JSON instead of a table.
    pub json: bool,
    /// A gateway the drill starts itself (program and arguments), or none.
    pub gateway_command: Vec<String>,
    /// Where the started gateway's standard error goes.
    pub gateway_log: Option<PathBuf>,
    /// The flood starts this long after the start (the gateway's, when the
    /// drill starts it); browsers are counted meanwhile.
    pub flood_after: Duration,
    /// Restart the started gateway this long after its start.
    pub restart_after: Option<Duration>,
    /// Page views per visitor before a new visitor takes its place (0: the
    /// same visitors throughout).
    pub visit_steps: u32,
}

/// How long after the gateway's start the flood begins by default: the
/// cold start of issue 17.
const DEFAULT_FLOOD_AFTER: Duration = Duration::from_secs(3);

/// Page views per visitor by default with a gateway command: a visit of
/// three pages, so that new visitors keep arriving all through the drill.
const DEFAULT_VISIT_STEPS: u32 = 3;

impl DrillOptions {
    /// Parses `rampart drill`'s arguments, as [`DrillArgs`] and then
    /// [`DrillOptions::from_args`].
    pub fn parse(args: &[String]) -> Result<DrillOptions> {
        let args = DrillArgs::try_parse_from(
            std::iter::once("drill").chain(args.iter().map(String::as_str)),
        )?;
        DrillOptions::from_args(args)
    }

    /// Checks what the flags cannot check one by one. A target that is not
    /// on loopback is refused unless `--allow-remote` is given: a drill is a
    /// real flood.
    pub fn from_args(a: DrillArgs) -> Result<DrillOptions> {
        let spread_sources = a.target.addr.ip().is_loopback();
        if !spread_sources && !a.allow_remote {
            bail!("--target {} is not on loopback ({}); a drill is a real flood, so it only runs against this machine unless you add --allow-remote (and own the target)", a.target.text, a.target.addr.ip());
        }
        if spread_sources && a.attackers > crate::addrs::max_attackers(a.attackers_per_prefix) {
            bail!(
                "--attackers {} do not fit in 127.0.0.0/8 at {} per /24 (at most {})",
                a.attackers,
                a.attackers_per_prefix,
                crate::addrs::max_attackers(a.attackers_per_prefix)
            );
        }
        let started_here = !a.gateway_command.is_empty();
        let warmup = a.warmup.unwrap_or_default();
        let flood_after = match (a.flood_after, a.warmup) {
            (Some(after), _) => after,
            (None, None) if started_here => DEFAULT_FLOOD_AFTER,
            (None, _) => Duration::ZERO,
        };
        if let Some(at) = a.restart_after {
            let flood_from = warmup + flood_after;
            if at <= flood_from || at >= flood_from + a.duration {
                bail!(
                    "--restart-after {} s is not mid-flood: the flood runs from {} s to {} s after the gateway's start",
                    at.as_secs_f64(),
                    flood_from.as_secs_f64(),
                    (flood_from + a.duration).as_secs_f64()
                );
            }
        }
        let default_visit_steps = if started_here { DEFAULT_VISIT_STEPS } else { 0 };
        Ok(DrillOptions {
            target: a.target.addr,
            host: a.host.unwrap_or(a.target.host),
            spread_sources,
            duration: a.duration,
            warmup,
            attack_rate: a.attack_rate,
            attackers: a.attackers,
            attackers_per_prefix: a.attackers_per_prefix,
            attack_paths: a.attack_paths.0,
            attack_accept: a
                .attack_accept
                .unwrap_or_else(|| crate::attack::BROWSER_ACCEPT.to_string()),
            browsers: a.browsers,
            browser_interval: a.browser_interval,
            browser_paths: a.browser_paths.0,
            timeout: a.timeout,
            solvers: a.solvers as usize,
            watch_pids: a.watch_pids,
            upstream_stats: a.upstream_stats.map(|u| (u.addr, u.path)),
            label: a.label,
            json: a.json,
            gateway_command: a.gateway_command,
            gateway_log: a.gateway_log,
            flood_after,
            restart_after: a.restart_after,
            visit_steps: a.visit_steps.unwrap_or(default_visit_steps),
        })
    }

    /// One line saying what is about to happen.
    pub fn describe(&self) -> String {
        format!(
            "rampart drill: http://{} (Host {}): {} s attack at {} req/s from {} address(es){}, {} browser(s) every {} ms{}",
            self.target,
            self.host,
            self.duration.as_secs_f64(),
            self.attack_rate,
            if self.spread_sources { self.attackers } else { 1 },
            if self.spread_sources && self.attackers_per_prefix > 1 { format!(" ({} per /24)", self.attackers_per_prefix) } else { String::new() },
            self.browsers,
            self.browser_interval.as_millis(),
            if self.warmup.is_zero() { String::new() } else { format!(", after {} s of browsers only", self.warmup.as_secs_f64()) },
        ) + &self.describe_cold()
    }

    fn describe_cold(&self) -> String {
        let mut s = String::new();
        if self.visit_steps > 0 {
            s += &format!(
                "; each visitor views {} page(s), then a new one arrives",
                self.visit_steps
            );
        }
        if !self.gateway_command.is_empty() {
            s += &format!(
                "; starting the gateway `{}`, flood {} s after its start",
                self.gateway_command.join(" "),
                self.flood_after.as_secs_f64()
            );
        } else if !self.flood_after.is_zero() {
            s += &format!(", flood after {} s", self.flood_after.as_secs_f64());
        }
        if let Some(r) = self.restart_after {
            s += &format!(", restarted {} s after its start", r.as_secs_f64());
        }
        s
    }
}

/// A plain-HTTP URL as the drill uses it: where to connect, the `host:port`
/// for the `Host` header, the path, and the text as given (for messages).
#[derive(Clone, Debug)]
pub struct HttpUrl {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub text: String,
}

/// Reads `http://host:port[/path]`. `https://` is refused: the drill speaks
/// plain HTTP/1.1.
pub fn http_url(url: &str) -> Result<HttpUrl> {
    if url.starts_with("https://") {
        bail!("the drill speaks plain HTTP; point it at a plain-HTTP listener");
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.is_empty() {
        bail!("no host");
    }
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty())
        && !host_port.ends_with(']')
    {
        host_port.to_string()
    } else {
        format!("{host_port}:80")
    };
    let addr = with_port
        .to_socket_addrs()
        .context("not a reachable host:port, e.g. http://127.0.0.1:8080")?
        .next()
        .ok_or_else(|| anyhow!("did not resolve to any address"))?;
    Ok(HttpUrl {
        addr,
        host: host_port.to_string(),
        path: rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
        text: url.to_string(),
    })
}

/// Reads a duration as the configuration file writes them (`60s`, `500ms`,
/// `2m`, `1h 30m`), or a bare number of seconds (`1.5`).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let duration = match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 && secs <= WEEK.as_secs_f64() => {
            Duration::from_secs_f64(secs)
        }
        Ok(_) => bail!("`{text}` is too long"),
        Err(_) => humantime::parse_duration(t)
            .map_err(|e| anyhow!("`{text}` is not a time like 60s or 500ms ({e})"))?,
    };
    if duration > WEEK {
        bail!("`{text}` is too long");
    }
    Ok(duration)
}

/// The longest time a drill flag takes.
const WEEK: Duration = Duration::from_secs(7 * 86_400);

/// A duration that is more than zero.
fn positive_duration(text: &str) -> Result<Duration> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        bail!("must be more than zero");
    }
    Ok(d)
}

/// A comma-separated list of paths, as one flag's value (so that the flag,
/// like every other, is given at most once).
#[derive(Clone, Debug)]
pub struct Paths(pub Vec<String>);

fn paths(text: &str) -> Result<Paths> {
    let paths: Vec<String> = text
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        bail!("no paths");
    }
    for p in &paths {
        if !p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            bail!("`{p}` is not a path starting with / (spaces must be %20)");
        }
    }
    Ok(Paths(paths))
}

fn header_value(text: &str) -> Result<String> {
    if text.is_empty() || text.contains(['\r', '\n']) {
        bail!("must be one header value, e.g. application/json");
    }
    Ok(text.to_string())
}

fn host_name(text: &str) -> Result<String> {
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        bail!("not a host name");
    }
    Ok(text.to_string())
}

fn process_id(text: &str) -> Result<u32> {
    text.trim()
        .parse()
        .map_err(|_| anyhow!("`{text}` is not a process id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<DrillOptions> {
        DrillOptions::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn a_remote_target_is_refused_without_the_flag() {
        let e = parse(&["--target", "http://192.0.2.1:80"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not on loopback") && e.contains("--allow-remote"),
            "{e}"
        );
        let o = parse(&["--target", "http://192.0.2.1:80", "--allow-remote"]).unwrap();
        assert!(
            !o.spread_sources,
            "remote targets see this machine's own address"
        );
    }

    #[test]
    fn loopback_targets_spread_their_sources() {
        let o = parse(&[
            "--target",
            "http://127.0.0.1:8080/",
            "--duration",
            "5s",
            "--attack-rate=300",
            "--paths",
            "/,/news",
            "--watch-pid",
            "12,34",
            "--upstream-stats",
            "http://127.0.0.1:9000/.demo/stats",
        ])
        .unwrap();
        assert!(o.spread_sources);
        assert_eq!(o.target, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(o.host, "127.0.0.1:8080");
        assert_eq!(o.duration, Duration::from_secs(5));
        assert_eq!(o.attack_rate, 300);
        assert_eq!(o.attack_paths, ["/", "/news"]);
        assert_eq!(o.watch_pids, [12, 34]);
        assert_eq!(
            o.upstream_stats,
            Some((
                SocketAddr::from(([127, 0, 0, 1], 9000)),
                "/.demo/stats".to_string()
            ))
        );
        let o = parse(&["--target", "localhost:8080"]).unwrap();
        assert!(o.target.ip().is_loopback());
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(parse(&[]).unwrap_err().to_string().contains("--target"));
        assert!(parse(&["--target", "http://127.0.0.1:1", "--bogus", "1"])
            .unwrap_err()
            .to_string()
            .contains("--bogus"));
        assert!(parse(&["--target", "https://127.0.0.1:1"]).is_err());
        assert!(parse(&["--target", "http://127.0.0.1:1", "--paths", "news"]).is_err());
        assert!(parse(&["--target", "http://127.0.0.1:1", "--duration", "0s"]).is_err());
        assert!(parse(&["--target", "http://127.0.0.1:1", "--attackers", "70000"]).is_err());
    }

    #[test]
    fn everything_after_the_double_dash_is_the_gateway_command() {
        let o = parse(&[
            "--target",
            "http://127.0.0.1:8080",
            "--duration",
            "30s",
            "--restart-after",
            "15s",
            "--",
            "rampart",
            "serve",
            "--upstream",
            "http://127.0.0.1:8081",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            o.gateway_command,
            [
                "rampart",
                "serve",
                "--upstream",
                "http://127.0.0.1:8081",
                "--json"
            ]
        );
        assert!(!o.json, "--json after -- is the gateway's");
        assert_eq!(o.flood_after, Duration::from_secs(3));
        assert_eq!(o.restart_after, Some(Duration::from_secs(15)));
        assert_eq!(o.visit_steps, 3);
        assert!(o.describe().contains("restarted 15 s after its start"));

        let base = ["--target", "http://127.0.0.1:8080", "--duration", "10s"];
        let with = |extra: &[&str]| parse(&[&base[..], extra].concat());
        assert!(
            with(&["--restart-after", "5s"]).is_err(),
            "needs a gateway command"
        );
        assert!(
            with(&["--restart-after", "2s", "--", "gw"]).is_err(),
            "before the flood"
        );
        assert!(
            with(&["--restart-after", "14s", "--", "gw"]).is_err(),
            "after the flood"
        );
        assert!(with(&["--warmup", "5s", "--flood-after", "1s"]).is_err());
        let o = with(&["--flood-after", "1s", "--visit-steps", "0", "--", "gw"]).unwrap();
        assert_eq!((o.flood_after, o.visit_steps), (Duration::from_secs(1), 0));
        let o = with(&[]).unwrap();
        assert_eq!((o.flood_after, o.visit_steps), (Duration::ZERO, 0));
        assert!(o.gateway_command.is_empty());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
