//! A gateway the drill starts itself (`rampart drill ... -- CMD ARGS`), so
//! that the flood can meet it cold, seconds after it started, and can meet
//! it again after a restart.
//!
//! The child is always gone when the drill is: [`GatewayChild`] stops it at
//! the end, kills it when dropped (an error, an interrupted drill), and asks
//! the kernel to kill it should the drill itself die without unwinding
//! (`PR_SET_PDEATHSIG`).
//!
//! A restart stops the gateway as an operator's `systemctl restart` does:
//! SIGTERM, a bounded wait for it to exit, then SIGKILL. On SIGTERM Pingora
//! shuts down gracefully: it stops accepting, lets requests in flight finish
//! for the gateway's grace period (1 s), then gives its runtimes up to 10 s
//! more. The drill waits [`STOP_WAIT`] (3 s) and then kills it, so a restart
//! never waits out a long grace period under a flood. (SIGINT would be
//! Pingora's fast shutdown: no grace at all, which is not what an operator's
//! restart sends.)

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How long a stopped gateway may take to exit after SIGTERM before it is
/// killed: its grace period (1 s) and some of its runtimes' shutdown.
pub const STOP_WAIT: Duration = Duration::from_secs(3);

/// How long a gateway may take to accept connections after it is started
/// (loading the Core Rule Set takes a few seconds).
pub const READY_WAIT: Duration = Duration::from_secs(60);

/// How one stop went.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stopped {
    /// From SIGTERM to the process gone.
    pub secs: f64,
    /// Whether it had to be killed after [`STOP_WAIT`].
    pub killed: bool,
}

/// A gateway process started by the drill: its command, where its standard
/// error goes, and the running child.
pub struct GatewayChild {
    command: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl GatewayChild {
    /// Starts `command` (program and arguments). Its standard output (the
    /// access log of a zero-config gateway) is discarded and its standard
    /// error appended to `log`.
    pub fn start(command: &[String], log: &Path) -> Result<GatewayChild> {
        let mut g = GatewayChild {
            command: command.to_vec(),
            log: log.to_path_buf(),
            child: None,
        };
        g.spawn()?;
        Ok(g)
    }

    /// The log its standard error goes to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> Result<()> {
        let (program, args) = self
            .command
            .split_first()
            .ok_or_else(|| anyhow!("the gateway command is empty"))?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open the gateway's log {}", self.log.display()))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the gateway `{}`", self.command.join(" ")))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `target` accepts connections, for at most [`READY_WAIT`].
    /// Fails at once if the gateway exits meanwhile, with the end of its log.
    pub async fn wait_accepting(&mut self, target: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("cannot watch the gateway")? {
                    self.child = None;
                    bail!(
                        "the gateway exited ({status}) before accepting on {target}; the end of its log ({}):\n{}",
                        self.log.display(),
                        log_tail(&self.log)
                    );
                }
            }
            let probe = tokio::time::timeout(
                Duration::from_millis(500),
                tokio::net::TcpStream::connect(target),
            );
            if let Ok(Ok(_)) = probe.await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the gateway did not accept on {target} within {} s; the end of its log ({}):\n{}",
                    READY_WAIT.as_secs(),
                    self.log.display(),
                    log_tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the gateway: SIGTERM, up to [`STOP_WAIT`] for it to exit, then
    /// SIGKILL. Does nothing when it is not running.
    pub async fn stop(&mut self) -> Stopped {
        let Some(mut child) = self.child.take() else {
            return Stopped::default();
        };
        let began = Instant::now();
        if matches!(child.try_wait(), Ok(None)) {
            signal(child.id(), libc::SIGTERM);
            while began.elapsed() < STOP_WAIT {
                if !matches!(child.try_wait(), Ok(None)) {
                    return Stopped {
                        secs: began.elapsed().as_secs_f64(),
                        killed: false,
                    };
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } else {
            return Stopped::default();
        }
        let _ = child.kill();
        let _ = child.wait();
        Stopped {
            secs: began.elapsed().as_secs_f64(),
            killed: true,
        }
    }

    /// Stops the gateway and starts it again with the same command.
    pub async fn restart(&mut self) -> Result<Stopped> {
        let stopped = self.stop().await;
        self.spawn()?;
        Ok(stopped)
    }
}

impl Drop for GatewayChild {
    /// Kills the gateway if it still runs: the drill never leaves it behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `sig` to process `pid`.
fn signal(pid: u32, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill takes plain integers and touches no memory of ours; the
    // pid is our own child's, not yet reaped (so not reused).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Asks the kernel to kill the child when the thread that started it ends:
/// the drill starts it from its main thread, so only when the drill dies.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes one async-signal-safe system call with plain integers.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// The last lines of the gateway's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The default log: `rampart-drill-gateway-PID.log` in the temporary directory.
pub fn default_log() -> PathBuf {
    std::env::temp_dir().join(format!("rampart-drill-gateway-{}.log", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_stopped_restarted_and_killed_on_drop() {
        let log = std::env::temp_dir().join(format!("drill-gw-test-{}.log", std::process::id()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut g = GatewayChild::start(&["sleep".into(), "30".into()], &log).unwrap();
        let first = g.pid().unwrap();
        let stopped = rt.block_on(g.restart()).unwrap();
        assert!(!stopped.killed, "sleep exits on SIGTERM");
        let second = g.pid().unwrap();
        assert_ne!(first, second);
        assert!(!Path::new(&format!("/proc/{first}")).exists());
        drop(g);
        assert!(!Path::new(&format!("/proc/{second}")).exists());
        // A command that does not exist is a clear error.
        assert!(GatewayChild::start(&["/nonexistent/gateway".into()], &log).is_err());
        let _ = std::fs::remove_file(log);
    }
}
