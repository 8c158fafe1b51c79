//! Several gateways sharing their bans through Redis (`[cluster]`).
//!
//! Every decision stays local: a request never waits on Redis. What is
//! shared is copied between the nodes' local states in the background:
//!
//! - a ban or unban made on one node (by an operator or by the shield) is
//!   written to the hash `rampart:bans` and published on the channel of the
//!   same name, at once for the admin API's bans and within the clock's
//!   second for the shield's own; every other node, subscribed, takes it
//!   into its own state (`Shield::adopt_ban`), which raises no event there;
//! - when a node (re)connects it takes every ban in the hash and writes
//!   every ban of its own, so bans made while Redis was away are shared once
//!   it is back (unbans made meanwhile are not: the hash still holds them
//!   until they expire);
//! - while Redis is unreachable each node keeps deciding from its own
//!   state, which is what it does anyway; `rampart_cluster_up` says so.
//!
//! Rate limits, clearance keys and the attack mode are not shared yet.
//!
//! The Redis protocol (RESP2) is spoken by hand over a blocking socket: the
//! few commands used here are arrays of strings, and the `redis` crate would
//! bring an international-URL stack into the build for them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use rampart_flood::{BanReason, Time};
use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;

/// The hash and the channel bans are shared through.
const BANS: &str = "rampart:bans";

/// How long one Redis call may take before the link counts as down.
const CALL_DEADLINE: Duration = Duration::from_millis(500);

/// How long to wait before trying Redis again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Ban changes waiting to be written; beyond it they are dropped (and the
/// next reconnection's full push catches up).
const OUTBOX: usize = 10_000;

/// One ban change, as it travels between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanChange {
    /// The node that made it.
    pub node: String,
    /// The address, or a prefix's network address for a `flood` ban.
    pub address: IpAddr,
    /// `None` for an unban.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ban: Option<SharedBan>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedBan {
    /// Unix seconds.
    pub until: u64,
    pub level: u8,
    pub reason: BanReason,
}

/// The running link to Redis: what the gateway hands ban changes to.
pub struct ClusterLink {
    pub node: String,
    outbox: SyncSender<BanChange>,
    up: Arc<AtomicBool>,
    pub shared: Arc<AtomicU64>,
    pub adopted: Arc<AtomicU64>,
}

impl ClusterLink {
    /// Starts the writer and subscriber threads. They hold the runtime to
    /// reach the shield of the current snapshot.
    pub fn start(
        runtime: Arc<Runtime>,
        node: String,
        redis: SocketAddr,
        password: Option<String>,
    ) -> std::io::Result<ClusterLink> {
        let (outbox, pending) = sync_channel(OUTBOX);
        let up = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(AtomicU64::new(0));
        let adopted = Arc::new(AtomicU64::new(0));
        let writer = Peer {
            runtime: runtime.clone(),
            node: node.clone(),
            redis,
            password: password.clone(),
        };
        let (w_up, w_shared, w_adopted) = (up.clone(), shared.clone(), adopted.clone());
        std::thread::Builder::new()
            .name("cluster-writer".into())
            .spawn(move || writer.write_loop(pending, &w_up, &w_shared, &w_adopted))?;
        let reader = Peer {
            runtime,
            node: node.clone(),
            redis,
            password,
        };
        let r_adopted = adopted.clone();
        std::thread::Builder::new()
            .name("cluster-subscriber".into())
            .spawn(move || reader.subscribe_loop(&r_adopted))?;
        Ok(ClusterLink {
            node,
            outbox,
            up,
            shared,
            adopted,
        })
    }

    /// Shares a ban (or, with `None`, an unban) made on this node. Never
    /// waits.
    pub fn share(&self, address: IpAddr, ban: Option<(Time, u8, BanReason)>) {
        let change = BanChange {
            node: self.node.clone(),
            address,
            ban: ban.map(|(until, level, reason)| SharedBan {
                until: until.as_secs(),
                level,
                reason,
            }),
        };
        let _ = self.outbox.try_send(change);
    }

    /// Whether the link to Redis is up, for the metrics.
    pub fn up(&self) -> bool {
        self.up.load(Relaxed)
    }
}

/// What both threads need to reach Redis and the shield.
struct Peer {
    runtime: Arc<Runtime>,
    node: String,
    redis: SocketAddr,
    password: Option<String>,
}

impl Peer {
    fn connect(&self, read_timeout: Option<Duration>) -> std::io::Result<Resp> {
        let stream = TcpStream::connect_timeout(&self.redis, CALL_DEADLINE)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(CALL_DEADLINE))?;
        stream.set_read_timeout(read_timeout)?;
        let mut resp = Resp {
            reader: BufReader::new(stream.try_clone()?),
            stream,
        };
        if let Some(password) = &self.password {
            resp.call(&[b"AUTH", password.as_bytes()])?;
        }
        Ok(resp)
    }

    /// Applies a change from another node to this node's shield.
    fn adopt(&self, change: &BanChange, adopted: &AtomicU64) {
        if change.node == self.node {
            return;
        }
        let snapshot = self.runtime.snapshot();
        let Some(flood) = &snapshot.flood else { return };
        let now = crate::flood::now();
        match change.ban {
            Some(ban) => flood.shield.adopt_ban(
                change.address,
                Time::from_secs(ban.until),
                ban.level,
                ban.reason,
                now,
            ),
            None => flood.shield.adopt_unban(change.address),
        }
        adopted.fetch_add(1, Relaxed);
    }

    /// Writes this node's ban changes to Redis; on each (re)connection,
    /// first takes every ban in the hash and writes every ban of its own.
    fn write_loop(
        &self,
        pending: Receiver<BanChange>,
        up: &AtomicBool,
        shared: &AtomicU64,
        adopted: &AtomicU64,
    ) {
        let mut was_up = true;
        loop {
            let session = self.connect(Some(CALL_DEADLINE)).and_then(|mut resp| {
                self.resync(&mut resp, adopted)?;
                up.store(true, Relaxed);
                if !was_up {
                    tracing::info!(
                        "cluster: Redis at {} is reachable again; bans are shared again",
                        self.redis
                    );
                }
                was_up = true;
                loop {
                    match pending.recv_timeout(Duration::from_secs(1)) {
                        Ok(change) => {
                            write_change(&mut resp, &change)?;
                            shared.fetch_add(1, Relaxed);
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            resp.call(&[b"PING"])?;
                        }
                        Err(RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
            });
            match session {
                Ok(()) => return,
                Err(e) => {
                    up.store(false, Relaxed);
                    if was_up {
                        tracing::warn!("cluster: Redis at {} is unreachable ({e}); every node decides from its own state until it is back", self.redis);
                    }
                    was_up = false;
                    std::thread::sleep(RETRY_AFTER);
                }
            }
        }
    }

    /// Takes every ban in the cluster's hash.
    fn take_all(&self, resp: &mut Resp, adopted: &AtomicU64) -> std::io::Result<()> {
        if let Value::Array(Some(items)) = resp.call(&[b"HGETALL", BANS.as_bytes()])? {
            for pair in items.chunks(2) {
                if let [_, Value::Bulk(Some(json))] = pair {
                    if let Ok(change) = serde_json::from_slice::<BanChange>(json) {
                        self.adopt(&change, adopted);
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes the cluster's bans and writes this node's.
    fn resync(&self, resp: &mut Resp, adopted: &AtomicU64) -> std::io::Result<()> {
        self.take_all(resp, adopted)?;
        let snapshot = self.runtime.snapshot();
        if let Some(flood) = &snapshot.flood {
            for (address, record) in flood.shield.bans(crate::flood::now(), 100_000) {
                let change = BanChange {
                    node: self.node.clone(),
                    address,
                    ban: Some(SharedBan {
                        until: record.until.as_secs(),
                        level: record.level,
                        reason: record.reason,
                    }),
                };
                write_change(resp, &change)?;
            }
        }
        Ok(())
    }

    /// Listens on the channel and takes every other node's changes.
    fn subscribe_loop(&self, adopted: &AtomicU64) {
        loop {
            let session: std::io::Result<()> = self.connect(None).and_then(|mut resp| {
                resp.call(&[b"SUBSCRIBE", BANS.as_bytes()])?;
                // Subscribed first, then the hash: a ban written while this
                // node was away is either in the hash now or published
                // from here on, never neither.
                self.take_all(&mut self.connect(Some(CALL_DEADLINE))?, adopted)?;
                loop {
                    if let Value::Array(Some(parts)) = resp.read()? {
                        if let [Value::Bulk(Some(kind)), _, Value::Bulk(Some(json))] =
                            parts.as_slice()
                        {
                            if kind == b"message" {
                                if let Ok(change) = serde_json::from_slice::<BanChange>(json) {
                                    self.adopt(&change, adopted);
                                }
                            }
                        }
                    }
                }
            });
            if let Err(e) = session {
                tracing::debug!("cluster: subscription to {} ended ({e})", self.redis);
            }
            std::thread::sleep(RETRY_AFTER);
        }
    }
}

fn write_change(resp: &mut Resp, change: &BanChange) -> std::io::Result<()> {
    let json = serde_json::to_vec(change).map_err(std::io::Error::other)?;
    let field = change.address.to_string();
    match change.ban {
        Some(_) => resp.call(&[b"HSET", BANS.as_bytes(), field.as_bytes(), &json])?,
        None => resp.call(&[b"HDEL", BANS.as_bytes(), field.as_bytes()])?,
    };
    resp.call(&[b"PUBLISH", BANS.as_bytes(), &json])?;
    Ok(())
}

/// A Redis reply.
#[derive(Debug)]
enum Value {
    Simple,
    Int,
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// The largest string and array this client reads: the ban hash of a
/// large cluster fits; a misbehaving server cannot make it allocate more.
const MAX_BULK: usize = 1 << 20;
const MAX_ARRAY: usize = 1 << 20;

struct Resp {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Resp {
    fn send(&mut self, args: &[&[u8]]) -> std::io::Result<()> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out)
    }

    fn call(&mut self, args: &[&[u8]]) -> std::io::Result<Value> {
        self.send(args)?;
        self.read()
    }

    fn read(&mut self) -> std::io::Result<Value> {
        read_value(&mut self.reader, 0)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("Redis sent {what}"),
    )
}

fn read_value(reader: &mut impl BufRead, depth: usize) -> std::io::Result<Value> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(if line.is_empty() {
            std::io::ErrorKind::UnexpectedEof.into()
        } else {
            bad("a line without its end")
        });
    }
    let (kind, rest) = (line[0], &line[1..line.len() - 2]);
    let number = || -> std::io::Result<i64> {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("a bad number"))
    };
    match kind {
        b'+' => Ok(Value::Simple),
        b'-' => Err(std::io::Error::other(format!(
            "Redis answered: {}",
            String::from_utf8_lossy(rest)
        ))),
        b':' => number().map(|_| Value::Int),
        b'$' => match number()? {
            -1 => Ok(Value::Bulk(None)),
            n if n < 0 || n as usize > MAX_BULK => Err(bad("a string too long")),
            n => {
                let mut data = vec![0; n as usize + 2];
                reader.read_exact(&mut data)?;
                data.truncate(n as usize);
                Ok(Value::Bulk(Some(data)))
            }
        },
        b'*' => match number()? {
            -1 => Ok(Value::Array(None)),
            n if n < 0 || n as usize > MAX_ARRAY || depth > 4 => {
                Err(bad("an array too long or too deep"))
            }
            n => (0..n)
                .map(|_| read_value(reader, depth + 1))
                .collect::<std::io::Result<Vec<_>>>()
                .map(|v| Value::Array(Some(v))),
        },
        _ => Err(bad("an unknown reply type")),
    }
}

/// Reads `redis://host:port` (the only form taken for now).
pub fn parse_redis_url(text: &str) -> Result<SocketAddr, String> {
    if text.starts_with("rediss://") {
        return Err(format!("`{text}`: TLS to Redis (rediss://) is not supported yet; reach Redis over a private network or a local tunnel"));
    }
    let Some(rest) = text.strip_prefix("redis://") else {
        return Err(format!(
            "`{text}` is not a Redis address; write redis://HOST:PORT"
        ));
    };
    let rest = rest.trim_end_matches('/');
    use std::net::ToSocketAddrs;
    rest.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("`{text}`: `{rest}` is not HOST:PORT that resolves"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_and_bad_ones_refused() {
        let mut input: &[u8] = b"*3\r\n$7\r\nmessage\r\n$4\r\nbans\r\n$2\r\n{}\r\n";
        match read_value(&mut input, 0).unwrap() {
            Value::Array(Some(v)) => assert_eq!(v.len(), 3),
            other => panic!("{other:?}"),
        }
        for bad in [
            &b"$99999999\r\n"[..],
            b"*-5\r\n",
            b"?\r\n",
            b"+OK",
            b"$3\r\nab",
        ] {
            let mut input = bad;
            assert!(
                read_value(&mut input, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut error: &[u8] = b"-NOAUTH Authentication required.\r\n";
        assert!(read_value(&mut error, 0)
            .unwrap_err()
            .to_string()
            .contains("NOAUTH"));
    }

    #[test]
    fn redis_addresses_are_read_or_refused_with_the_reason() {
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:6379").unwrap(),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert!(parse_redis_url("rediss://127.0.0.1:6379")
            .unwrap_err()
            .contains("not supported"));
        assert!(parse_redis_url("127.0.0.1:6379")
            .unwrap_err()
            .contains("redis://"));
    }
}
