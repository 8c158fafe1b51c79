//! The drill's command line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

/// The help text of `rampart drill`.
pub const USAGE: &str = "\
rampart drill — flood your own deployment and see what real visitors get

USAGE:
  rampart drill --target URL [OPTIONS]
  rampart drill --target URL [OPTIONS] -- GATEWAY-COMMAND [ARGS...]

  --target URL              the gateway, e.g. http://127.0.0.1:8080 (required;
                            only loopback unless --allow-remote)
  --allow-remote            allow a target that is not on loopback (sources are then
                            not spread: every request comes from this machine's address)
  --duration TIME           how long the attack runs (default 60s)
  --warmup TIME             browsers only, before the attack, not counted (default 0s);
                            lets an attack detector learn normal traffic first
  --attack-rate N           attack requests per second, all attackers together (default 1000)
  --attackers N             distinct attacker addresses (default 5000)
  --attackers-per-prefix N  attackers sharing one /24 (default 1: each in its own)
  --attack-paths LIST       comma-separated paths the attack requests (default /)
  --attack-accept TEXT      the attack's Accept header (default a browser's; application/json
                            sends the flood as an API client would)
  --browsers N              browser-like visitors (default 50)
  --browser-interval TIME   each visitor's pause between page views (default 1s)
  --browser-paths LIST      comma-separated pages visitors open (default /,/donate,/login)
  --host NAME               Host header (default: the target's host and port)
  --timeout TIME            per request (default 5s)
  --solvers N               threads solving challenges for the visitors, at the lowest
                            CPU priority (default 1: the drill shares the machine with
                            the gateway; real visitors have their own CPUs)
  --watch-pid PID[,PID...]  processes whose memory to sample every 200 ms (children
                            included), e.g. the gateway's
  --upstream-stats URL      the capped demo origin's counts, e.g.
                            http://127.0.0.1:8081/.demo/stats
  --label NAME              a name for this run in the report
  --json                    print the summary as one JSON object

A cold start: everything after `--` is a gateway command the drill runs itself
(e.g. -- rampart serve --upstream http://127.0.0.1:8081 --listen 127.0.0.1:8080).
Times count from its start; the drill waits until --target accepts, the browsers
start at once, and the gateway is stopped (SIGTERM, then SIGKILL after 3 s) when
the drill ends, fails or is interrupted. Its memory is watched.
  --flood-after TIME        the flood starts this long after the gateway was started (or
                            when it first accepts, if later); browsers are counted from
                            the start (default 3s with a gateway command, else 0s; not
                            with --warmup)
  --restart-after TIME      stop the gateway this long after its start, mid-flood (SIGTERM,
                            then SIGKILL after 3 s, as an operator's restart) and start it
                            again with the same command
  --visit-steps N           page views (steps) per visitor: then the visitor leaves and a new
                            one, with no cookies and a new address, arrives in its place
                            (default 3 with a gateway command; 0: visitors stay throughout)
  --gateway-log FILE        where the gateway's standard error goes (appended; default
                            rampart-drill-gateway-PID.log in the temporary directory);
                            its standard output is discarded

TIME is a number with s, ms or m (60s, 500ms, 2m); a bare number is seconds.
";

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

impl Default for DrillOptions {
    fn default() -> DrillOptions {
        DrillOptions {
            target: SocketAddr::from(([127, 0, 0, 1], 8080)),
            host: "127.0.0.1:8080".into(),
            spread_sources: true,
            // A minute is long enough for an attack detector to react and
            // settle, short enough to run before every release.
            duration: Duration::from_secs(60),
            warmup: Duration::ZERO,
            // 1,000 req/s overwhelms a typical small campaign site's origin
            // and is within what one core of this drill can send.
            attack_rate: 1000,
            // Thousands of distinct addresses, as a rented botnet has: far
            // beyond what per-address limits alone can stop.
            attackers: 5000,
            // Each in its own /24, as botnet members mostly are.
            attackers_per_prefix: 1,
            attack_paths: vec!["/".into()],
            attack_accept: crate::attack::BROWSER_ACCEPT.to_string(),
            // 50 people at once is a busy evening for a small site.
            browsers: 50,
            // About one page a second: someone clicking through the site.
            browser_interval: Duration::from_secs(1),
            browser_paths: vec!["/".into(), "/donate".into(), "/login".into()],
            // Past 5 s a person has given up on a request.
            timeout: Duration::from_secs(5),
            // The drill shares its machine with the gateway under test.
            solvers: 1,
            watch_pids: Vec::new(),
            upstream_stats: None,
            label: None,
            json: false,
            gateway_command: Vec::new(),
            gateway_log: None,
            flood_after: Duration::ZERO,
            restart_after: None,
            visit_steps: 0,
        }
    }
}

const SWITCHES: &[&str] = &["--json", "--allow-remote"];
const VALUED: &[&str] = &[
    "--target",
    "--duration",
    "--warmup",
    "--attack-rate",
    "--attackers",
    "--attackers-per-prefix",
    "--attack-paths",
    "--attack-accept",
    "--paths",
    "--browsers",
    "--browser-interval",
    "--browser-paths",
    "--host",
    "--timeout",
    "--solvers",
    "--watch-pid",
    "--upstream-stats",
    "--label",
    "--flood-after",
    "--restart-after",
    "--visit-steps",
    "--gateway-log",
];

/// How long after the gateway's start the flood begins by default: the
/// cold start of issue 17.
const DEFAULT_FLOOD_AFTER: Duration = Duration::from_secs(3);

/// Page views per visitor by default with a gateway command: a visit of
/// three pages, so that new visitors keep arriving all through the drill.
const DEFAULT_VISIT_STEPS: u32 = 3;

impl DrillOptions {
    /// Parses `rampart drill`'s arguments (`--name value` or `--name=value`).
    /// A target that is not on loopback is refused unless `--allow-remote`
    /// is given: a drill is a real flood. Everything after `--` is the
    /// gateway command, taken as it is.
    pub fn parse(args: &[String]) -> Result<DrillOptions> {
        let (args, gateway_command) = match args.iter().position(|a| a == "--") {
            Some(i) => (&args[..i], args[i + 1..].to_vec()),
            None => (args, Vec::new()),
        };
        let mut values: Vec<(&str, String)> = Vec::new();
        let mut switches: Vec<&str> = Vec::new();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            if let Some(s) = SWITCHES.iter().find(|s| **s == name) {
                if inline.is_some() {
                    bail!("`{name}` takes no value");
                }
                switches.push(s);
                continue;
            }
            let Some(known) = VALUED.iter().find(|v| **v == name) else {
                bail!("unknown argument `{arg}`\n\n{USAGE}");
            };
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("`{name}` needs a value"))?,
            };
            if values.iter().any(|(n, _)| n == known) {
                bail!("`{name}` is given twice");
            }
            values.push((known, value));
        }
        let get = |name: &str| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let mut o = DrillOptions {
            json: switches.contains(&"--json"),
            ..DrillOptions::default()
        };
        let allow_remote = switches.contains(&"--allow-remote");

        let target = get("--target").ok_or_else(|| {
            anyhow!("drill needs --target URL, e.g. --target http://127.0.0.1:8080\n\n{USAGE}")
        })?;
        let (target_addr, host_port) = parse_http_url(target, "--target")?;
        o.target = target_addr;
        o.host = host_port.to_string();
        if !o.target.ip().is_loopback() {
            if !allow_remote {
                bail!("--target {target} is not on loopback ({}); a drill is a real flood, so it only runs against this machine unless you add --allow-remote (and own the target)", o.target.ip());
            }
            o.spread_sources = false;
        }
        if let Some(v) = get("--duration") {
            o.duration = parse_duration(v).context("--duration")?;
            if o.duration.is_zero() {
                bail!("--duration must be more than zero");
            }
        }
        if let Some(v) = get("--warmup") {
            o.warmup = parse_duration(v).context("--warmup")?;
        }
        if let Some(v) = get("--attack-rate") {
            o.attack_rate = parse_number(v, "--attack-rate", 0)?;
        }
        if let Some(v) = get("--attackers") {
            o.attackers = parse_number(v, "--attackers", 1)?;
        }
        if let Some(v) = get("--attackers-per-prefix") {
            o.attackers_per_prefix = parse_number(v, "--attackers-per-prefix", 1)?;
            if o.attackers_per_prefix > crate::addrs::HOSTS_PER_PREFIX {
                bail!(
                    "--attackers-per-prefix is at most {}",
                    crate::addrs::HOSTS_PER_PREFIX
                );
            }
        }
        if o.spread_sources && o.attackers > crate::addrs::max_attackers(o.attackers_per_prefix) {
            bail!(
                "--attackers {} do not fit in 127.0.0.0/8 at {} per /24 (at most {})",
                o.attackers,
                o.attackers_per_prefix,
                crate::addrs::max_attackers(o.attackers_per_prefix)
            );
        }
        if get("--attack-paths").is_some() && get("--paths").is_some() {
            bail!("give --attack-paths (or its other name --paths) once");
        }
        if let Some(v) = get("--attack-paths").or(get("--paths")) {
            o.attack_paths = parse_paths(v, "--attack-paths")?;
        }
        if let Some(v) = get("--attack-accept") {
            if v.is_empty() || v.contains(['\r', '\n']) {
                bail!("--attack-accept must be one header value, e.g. application/json");
            }
            o.attack_accept = v.to_string();
        }
        if let Some(v) = get("--browsers") {
            o.browsers = parse_number(v, "--browsers", 0)?;
            if o.browsers > crate::addrs::MAX_BROWSERS {
                bail!("--browsers is at most {}", crate::addrs::MAX_BROWSERS);
            }
        }
        if let Some(v) = get("--browser-interval") {
            o.browser_interval = parse_duration(v).context("--browser-interval")?;
        }
        if let Some(v) = get("--browser-paths") {
            o.browser_paths = parse_paths(v, "--browser-paths")?;
        }
        if let Some(v) = get("--host") {
            if v.is_empty() || v.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                bail!("--host {v:?} is not a host name");
            }
            o.host = v.to_string();
        }
        if let Some(v) = get("--timeout") {
            o.timeout = parse_duration(v).context("--timeout")?;
            if o.timeout.is_zero() {
                bail!("--timeout must be more than zero");
            }
        }
        if let Some(v) = get("--solvers") {
            o.solvers = parse_number(v, "--solvers", 1)? as usize;
        }
        if let Some(v) = get("--watch-pid") {
            o.watch_pids = v
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<u32>()
                        .map_err(|_| anyhow!("--watch-pid {v}: `{p}` is not a process id"))
                })
                .collect::<Result<_>>()?;
        }
        if let Some(v) = get("--upstream-stats") {
            let (addr, _) = parse_http_url(v, "--upstream-stats")?;
            let path = url_path(v);
            o.upstream_stats = Some((addr, path.to_string()));
        }
        o.label = get("--label").map(str::to_string);

        let started_here = !gateway_command.is_empty();
        o.gateway_command = gateway_command;
        if let Some(v) = get("--flood-after") {
            if get("--warmup").is_some() {
                bail!("give --warmup (browsers not counted before the flood) or --flood-after (browsers counted from the start), not both");
            }
            o.flood_after = parse_duration(v).context("--flood-after")?;
        } else if started_here && get("--warmup").is_none() {
            o.flood_after = DEFAULT_FLOOD_AFTER;
        }
        if let Some(v) = get("--restart-after") {
            if !started_here {
                bail!("--restart-after needs a gateway the drill starts itself: add `-- COMMAND ARGS` at the end");
            }
            let at = parse_duration(v).context("--restart-after")?;
            let flood_from = o.warmup + o.flood_after;
            if at <= flood_from || at >= flood_from + o.duration {
                bail!(
                    "--restart-after {v} is not mid-flood: the flood runs from {} s to {} s after the gateway's start",
                    flood_from.as_secs_f64(),
                    (flood_from + o.duration).as_secs_f64()
                );
            }
            o.restart_after = Some(at);
        }
        if let Some(v) = get("--visit-steps") {
            o.visit_steps = parse_number(v, "--visit-steps", 0)?;
        } else if started_here {
            o.visit_steps = DEFAULT_VISIT_STEPS;
        }
        if let Some(v) = get("--gateway-log") {
            if !started_here {
                bail!("--gateway-log goes with a gateway the drill starts itself (`-- COMMAND ARGS` at the end)");
            }
            o.gateway_log = Some(PathBuf::from(v));
        }
        Ok(o)
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

/// Reads `http://host:port[/path]` into an address and the `host:port` text.
/// `https://` is refused: the drill speaks plain HTTP/1.1.
pub fn parse_http_url<'a>(url: &'a str, what: &str) -> Result<(SocketAddr, &'a str)> {
    if url.starts_with("https://") {
        bail!("{what} {url}: the drill speaks plain HTTP; point it at a plain-HTTP listener");
    }
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.is_empty() {
        bail!("{what} {url}: no host");
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
        .with_context(|| {
            format!("{what} {url} is not a reachable host:port, e.g. http://127.0.0.1:8080")
        })?
        .next()
        .ok_or_else(|| anyhow!("{what} {url} did not resolve to any address"))?;
    Ok((addr, host_port))
}

/// The path part of a URL (`/` when it has none).
fn url_path(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// Reads `60s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| anyhow!("`{text}` is not a time like 60s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("`{text}`: the unit must be ms, s, m or h"),
    };
    if !secs.is_finite() || secs > 86_400.0 * 7.0 {
        bail!("`{text}` is too long");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_number(text: &str, what: &str, min: u32) -> Result<u32> {
    let n: u32 = text
        .trim()
        .parse()
        .map_err(|_| anyhow!("{what} {text}: not a whole number"))?;
    if n < min {
        bail!("{what} must be at least {min}");
    }
    Ok(n)
}

fn parse_paths(text: &str, what: &str) -> Result<Vec<String>> {
    let paths: Vec<String> = text
        .split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if paths.is_empty() {
        bail!("{what} is empty");
    }
    for p in &paths {
        if !p.starts_with('/') || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            bail!("{what}: `{p}` is not a path starting with / (spaces must be %20)");
        }
    }
    Ok(paths)
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
