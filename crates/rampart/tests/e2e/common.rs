//! Helpers for end-to-end tests: a real gateway process, real upstream
//! servers on free loopback ports, and a small raw HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A loopback port nothing listens on, for a server a test starts later.
///
/// The port is free when it is handed out but not held, so two parallel
/// tests asking the kernel for `bind(0)` could be given the same one, and
/// one test's requests then reach the other's admin API. Ports therefore
/// come from below the kernel's ephemeral range (32768 and up on Linux),
/// which neither `bind(0)` nor outgoing connections use, and a process never
/// hands out the same port twice. The starting point depends on the process
/// id so that test binaries run side by side start far apart.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU32> = std::sync::OnceLock::new();
    let next = NEXT.get_or_init(|| {
        std::sync::atomic::AtomicU32::new(std::process::id().wrapping_mul(2_654_435_761) % COUNT)
    });
    for _ in 0..COUNT {
        let port = (FIRST + next.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free loopback port between {FIRST} and {}",
        FIRST + COUNT
    );
}

/// Held while a test floods a gateway: floods take the machine's cores, so
/// they run one at a time, and a slow machine running the tests in parallel
/// still sees each flood as it is. Every end-to-end suite runs in this one
/// test process, so the lock holds across them: the browser suite's floods,
/// the drills and the slowloris ramp take it.
pub fn one_flood_at_a_time() -> MutexGuard<'static, ()> {
    static FLOOD: Mutex<()> = Mutex::new(());
    FLOOD.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh directory for one test's files.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rampart-test-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// Waits until something accepts TCP connections on `addr`.
pub fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing is listening on {addr}");
}

/// A running `rampart serve --config` process, killed on drop. Its state
/// directory (`XDG_STATE_HOME`, where the admin token is made) is `state`
/// inside its test directory; [`GatewayProcess::cli`] runs `rampart`
/// commands with the same one, so they find the token.
pub struct GatewayProcess {
    pub child: Child,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

impl GatewayProcess {
    /// Starts the gateway with `config`, in which `{listen}` and `{admin}`
    /// are replaced by free ports.
    pub fn start(name: &str, config: &str) -> GatewayProcess {
        let dir = temp_dir(name);
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let text = config
            .replace("{listen}", &listen.to_string())
            .replace("{admin}", &admin.to_string());
        let config_path = dir.join("rampart.toml");
        std::fs::write(&config_path, text).unwrap();
        let child = Self::spawn(&dir, &config_path);
        wait_listening(listen);
        wait_listening(admin);
        GatewayProcess {
            child,
            dir,
            config_path,
            listen,
            admin,
        }
    }

    /// Runs `rampart serve` on the test directory's configuration, access
    /// log and state directory; standard error is appended to `stderr.log`.
    fn spawn(dir: &Path, config_path: &Path) -> Child {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .unwrap();
        Command::new(binary())
            .args(["serve", "--config"])
            .arg(config_path)
            .arg("--access-log")
            .arg(dir.join("access.log"))
            .arg("--threads")
            .arg("2")
            .env("XDG_STATE_HOME", dir.join("state"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start rampart")
    }

    /// Stops the gateway as an operator would, with SIGTERM, and waits
    /// until it has exited (at most a minute: its graceful shutdown takes
    /// seconds).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit within a minute of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the gateway again after [`GatewayProcess::terminate`]: the
    /// same ports, configuration, key and state files, and state directory;
    /// the access log and `stderr.log` go on where they stopped.
    pub fn restart(&mut self) {
        self.child = Self::spawn(&self.dir, &self.config_path);
        wait_listening(self.listen);
        wait_listening(self.admin);
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        get(self.admin, "/metrics").body_text()
    }

    /// The gateway's state directory (its `XDG_STATE_HOME`).
    pub fn state_home(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Where the gateway keeps its admin token.
    pub fn admin_token_file(&self) -> PathBuf {
        self.state_home().join("rampart/admin-token")
    }

    /// The gateway's admin token, as it wrote it at start.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.admin_token_file())
            .expect("the gateway writes its admin token at start")
            .trim()
            .to_string()
    }

    /// A `rampart` command run as the gateway's operator: with the
    /// gateway's state directory, so the admin commands find its token.
    pub fn cli(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .env("XDG_STATE_HOME", self.state_home())
            .env_remove("RAMPART_ADMIN_TOKEN");
        command
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw request bytes on a new connection and reads one response.
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(request)?;
    read_reply(&mut stream)
}

pub fn read_reply(stream: &mut TcpStream) -> std::io::Result<Reply> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                let mut end = String::new();
                reader.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else if status != 204 && status != 304 && status != 101 {
        reader.read_to_end(&mut body)?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("GET")
}

pub fn get_with(addr: SocketAddr, path: &str, extra_headers: &str) -> Reply {
    raw(
        addr,
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("GET")
}

/// A tiny upstream that answers every request with its own name, and
/// `/slow` after two seconds; it counts the requests it served.
pub struct NamedUpstream {
    pub addr: SocketAddr,
    pub served: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl NamedUpstream {
    pub fn start(name: &'static str) -> NamedUpstream {
        Self::start_on(name, "127.0.0.1:0".parse().unwrap())
    }

    pub fn start_on(name: &'static str, addr: SocketAddr) -> NamedUpstream {
        let listener = TcpListener::bind(addr).expect("bind upstream");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (stop2, served2) = (stop.clone(), served.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let served = served2.clone();
                        std::thread::spawn(move || serve_named(stream, name, served));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        NamedUpstream {
            addr,
            served,
            stop,
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) -> SocketAddr {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.addr
    }
}

impl Drop for NamedUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_named(stream: TcpStream, name: &str, served: Arc<AtomicUsize>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        let mut upgrade = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("upgrade: websocket") {
                upgrade = true;
            }
            if h.trim().is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        served.fetch_add(1, Ordering::Relaxed);
        if upgrade {
            // A minimal WebSocket-style upgrade: after 101 the connection
            // is a raw byte pipe, echoed back.
            let _ = writer.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
            let mut buf = [0u8; 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if writer.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if path.starts_with("/slow") {
            std::thread::sleep(Duration::from_secs(2));
        }
        let text = format!("{name} {path} {}", body.len());
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Runs curl with the given arguments; returns (exit ok, stdout, stderr).
pub fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl must be installed (apt install curl)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A self-signed certificate for `host`, written as PEM into `dir`.
pub fn certificate(dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{host}.crt"));
    let key = dir.join(format!("{host}.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ])
        .arg(format!("/CN={host}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{host}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success());
    (cert, key)
}

/// Waits for a condition, polling; panics with `what` if it never holds.
pub fn eventually(what: &str, condition: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(15), condition)
}

/// Like [`eventually`], with a deadline of the caller's choosing.
pub fn eventually_within(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("never happened: {what}");
}

/// A configuration with one site `www` for any host in front of `upstream`,
/// with `{listen}` and `{admin}` left for [`GatewayProcess::start`]; `tail`
/// adds routes and layer sections after the site.
pub fn one_site_config(upstream: SocketAddr, tail: &str) -> String {
    format!(
        "[server]\nadmin_listen = \"{{admin}}\"\n\n[[listener]]\naddress = \"{{listen}}\"\n\n[[upstream]]\nname = \"app\"\nservers = [\"{upstream}\"]\n\n[[site]]\nname = \"www\"\nhosts = [\"*\"]\nupstream = \"app\"\n{tail}\n"
    )
}

/// Runs `rampart check` on a configuration with `{listen}` and `{admin}`
/// filled in; returns whether it passed and everything it printed.
pub fn check_config(name: &str, config: &str) -> (bool, String) {
    let path = temp_dir(name).join("rampart.toml");
    std::fs::write(
        &path,
        config
            .replace("{admin}", "127.0.0.1:1")
            .replace("{listen}", "127.0.0.1:2"),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// A `rampart drill` flood running in the background, killed on drop. Its
/// output goes to `drill.out` and `drill.err` in `dir`.
pub struct DrillProcess {
    pub child: Child,
}

impl DrillProcess {
    /// Floods `target` (`http://host:port`) with `args` added to `--target`.
    pub fn start(dir: &Path, target: &str, args: &[&str]) -> DrillProcess {
        let child = Command::new(binary())
            .arg("drill")
            .args(["--target", target])
            .args(args)
            .stdout(std::fs::File::create(dir.join("drill.out")).unwrap())
            .stderr(std::fs::File::create(dir.join("drill.err")).unwrap())
            .spawn()
            .expect("start rampart drill");
        DrillProcess { child }
    }

    /// Whether the drill is still flooding.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for DrillProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory of the browser scripts, with their npm packages installed.
pub fn browser_scripts() -> PathBuf {
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests-browser");
    assert!(
        scripts.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/setup (npm ci in tests-browser/)"
    );
    scripts
}

/// Runs `tests-browser/visit.mjs` (one Chromium visitor) with `args`;
/// returns whether every check passed and everything it printed.
pub fn chromium_visit(args: &[&str]) -> (bool, String) {
    let run = Command::new("node")
        .arg(browser_scripts().join("visit.mjs"))
        .args(args)
        .output()
        .expect("node must be installed");
    let report =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    (run.status.success(), report)
}

/// The flood shield's events the gateway wrote on standard error
/// (`rampart: event {...}`), in order.
pub fn flood_events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("rampart: event "))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect()
}

/// Whether `stderr` has a switch into under-attack mode for `reason` (the
/// reason's kind: `distress`, `restored`, ...).
pub fn switched_under_attack(stderr: &str, reason: &str) -> bool {
    flood_events(stderr)
        .iter()
        .any(|e| e["event"] == "mode" && e["under_attack"] == true && e["reason"]["kind"] == reason)
}

/// The access log's lines, parsed.
pub fn access_records(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// A request to the gateway from another loopback address (a different
/// client), through curl; returns the status.
pub fn status_from(source: &str, url: &str) -> u16 {
    let (_, out, err) = curl(&[
        "--interface",
        source,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
    ]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl: {out} {err}"))
}
