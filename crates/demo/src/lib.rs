//! A small, deliberately careless demo donation site for the "Fairshare Party".
//!
//! `rampart demo` starts this site as the origin behind the gateway, and the end-to-end tests use
//! it as a real upstream. It makes the two mistakes rampart exists to catch: its `/search` page
//! builds SQL by string concatenation, and its `/donations/feed` RSS feed publishes donors' names
//! and amounts. Everything else about it tries to be a correct, if minimal, HTTP/1.1 origin, so
//! that a test failure points at the gateway rather than at the site behind it.
//!
//! The site uses only `std::net` and one thread per connection. It has no async runtime so that it
//! compiles in seconds and its behaviour under a test is easy to reason about.
//!
//! ```no_run
//! let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
//! println!("demo site on http://{}", site.local_addr());
//! site.shutdown();
//! ```

mod capacity;
mod clock;
mod escape;
mod form;
mod http;
mod pages;
mod routes;
mod store;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use capacity::STATS_PATH;
pub use http::{MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// The most client connections served at once. Each connection holds one thread, so this bounds
/// the site's threads and memory; 256 is far above what a gateway's upstream pool or an end-to-end
/// test opens, while a flood of connections gets a quick 503 instead of exhausting the machine.
pub const MAX_CONNECTIONS: usize = 256;

/// How long the accept thread waits to hand a refused client its 503. It must never block for
/// long, because while it writes it is not accepting anyone else.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// How long `shutdown` waits for its wake-up connection to reach the accept thread.
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// A running demo site.
///
/// Dropping it stops the site just as [`DemoSite::shutdown`] does, so a test that panics half-way
/// does not leave an accept thread behind.
pub struct DemoSite {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

/// State shared by the accept thread and every connection thread.
pub(crate) struct Shared {
    /// The site's SQLite database: donations, users and news articles.
    pub(crate) store: store::Store,
    /// Set when the site is shutting down: the accept loop exits and connections close after the
    /// response they are writing.
    pub(crate) stopping: AtomicBool,
    /// How many connection threads are alive, for the [`MAX_CONNECTIONS`] cap.
    live_connections: AtomicUsize,
    /// The requests-per-second cap, when the site was started with one.
    pub(crate) capacity: Option<capacity::Capacity>,
}

/// How to run the site; [`DemoSite::start`] uses the defaults.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Options {
    /// Serve at most this many requests in any one wall-clock second and answer the rest with a
    /// quick 503, like a small origin at the end of its strength; count arrivals per second and
    /// serve the counts as JSON at [`STATS_PATH`]. `None` (the default): no cap, no counts.
    pub capacity_per_sec: Option<u32>,
}

impl Options {
    /// Options with a capacity of `per_sec` requests per second.
    pub fn with_capacity(per_sec: u32) -> Options {
        Options {
            capacity_per_sec: Some(per_sec),
        }
    }
}

impl DemoSite {
    /// Binds `addr` and serves the site from background threads.
    ///
    /// Use `127.0.0.1:0` to get a free port, then ask [`DemoSite::local_addr`] which one it was.
    /// The site is deliberately vulnerable to SQL injection, so bind it to loopback only, as
    /// `rampart demo` does, and let the gateway be the only thing that reaches it.
    ///
    /// Each `DemoSite` gets its own freshly seeded in-memory database, so tests running in
    /// parallel don't see each other's donations.
    pub fn start(addr: SocketAddr) -> io::Result<DemoSite> {
        DemoSite::start_with(addr, Options::default())
    }

    /// Like [`DemoSite::start`], with [`Options`]: for benchmarks, a fixed capacity in requests
    /// per second and its counts at [`STATS_PATH`].
    pub fn start_with(addr: SocketAddr, options: Options) -> io::Result<DemoSite> {
        let store = store::Store::open_seeded().map_err(io::Error::other)?;
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store,
            stopping: AtomicBool::new(false),
            live_connections: AtomicUsize::new(0),
            capacity: options.capacity_per_sec.map(capacity::Capacity::new),
        });
        let accept_shared = Arc::clone(&shared);
        let accept_thread = thread::Builder::new()
            .name(format!("demo-accept-{}", local_addr.port()))
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(DemoSite {
            local_addr,
            shared,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address the site is listening on, with the real port when `start` was given port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits for the accept thread to finish.
    ///
    /// Connections already open finish the request they are on and then close; they are not
    /// waited for, because a client holding a keep-alive connection open should not be able to
    /// stall a test's teardown.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The accept thread is blocked in `accept()`, which has no portable timeout. A connection
        // of our own wakes it up, and it sees `stopping` before serving anything.
        let woke = TcpStream::connect_timeout(&wake_addr(self.local_addr), WAKE_TIMEOUT).is_ok();
        if woke {
            // Joining only fails if the thread panicked, and there is nothing left to clean up.
            let _ = accept_thread.join();
        }
        // If the wake-up connection could not be made, the thread is left detached rather than
        // hanging the caller forever; it exits on the next connection it accepts.
    }
}

impl std::fmt::Debug for DemoSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoSite")
            .field("local_addr", &self.local_addr)
            .field(
                "live_connections",
                &self.shared.live_connections.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address to connect to in order to wake the accept thread. A site bound to the unspecified
/// address (`0.0.0.0` or `::`) is reachable on loopback.
fn wake_addr(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // Errors such as a connection reset before we accepted it, or running out of file
            // descriptors, concern one client; pause briefly so a persistent error doesn't spin.
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // Reserve a slot before spawning so the count can never overshoot the cap.
        let previous = shared.live_connections.fetch_add(1, Ordering::SeqCst);
        if previous >= MAX_CONNECTIONS {
            shared.live_connections.fetch_sub(1, Ordering::SeqCst);
            refuse(stream);
            continue;
        }
        let slot = ConnectionSlot(Arc::clone(&shared));
        let spawned = thread::Builder::new()
            .name("demo-conn".to_owned())
            .spawn(move || {
                let slot = slot;
                http::serve_connection(stream, peer, &slot.0);
            });
        // When the thread could not be spawned, the closure (and with it the stream and the slot)
        // has already been dropped, so the client sees its connection close and the slot is free.
        let _ = spawned;
    }
}

/// Holds one of the [`MAX_CONNECTIONS`] slots and gives it back when dropped, even if the
/// connection thread unwinds.
struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.live_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers a client we have no room for with a 503 and closes its connection.
fn refuse(mut stream: TcpStream) {
    use std::io::Write;
    let _ = stream.set_write_timeout(Some(REFUSAL_WRITE_TIMEOUT));
    let body = "The demo site is serving too many connections; try again shortly.\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nServer: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}",
        http::SERVER_NAME,
        body.len(),
        body
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(std::net::Shutdown::Write);
}
