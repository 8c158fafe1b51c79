//! A small, deliberately careless demo donation site for the "Fairshare Party".
//!
//! `rampart demo` starts this site as the origin behind the gateway, and the end-to-end tests use
//! it as a real upstream. It makes the two mistakes rampart exists to catch: its `/search` page
//! builds SQL by string concatenation, and its `/donations/feed` RSS feed publishes donors' names
//! and amounts. Everything else about it tries to be a correct, if minimal, HTTP/1.1 origin, so
//! that a test failure points at the gateway rather than at the site behind it.
//!
//! The wire layer is hyper's HTTP/1.1 server on a Tokio runtime of the site's own, driven by a
//! thread of its own, so that [`DemoSite::start`] is a plain function that synchronous tests and
//! the `rampart demo` command can call alike. The routes, which block on SQLite or sleep, run on
//! the runtime's blocking threads, so a slow request never holds up another.
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
mod pages;
mod routes;
mod server;
mod store;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use capacity::STATS_PATH;
pub use server::{MAX_BODY_BYTES, MAX_HEAD_BYTES};

/// The most client connections served at once. Each connection holds a task and its buffers, so
/// this bounds the site's memory; 256 is far above what a gateway's upstream pool or an
/// end-to-end test opens, while a flood of connections gets a quick 503 instead of exhausting the
/// machine.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a refused client has to take its 503 before we drop it.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// How long the connections open at shutdown have to finish the request in hand: longer than
/// the slowest route (`/slow` waits up to 30 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(40);

/// A running demo site.
///
/// Dropping it stops the site just as [`DemoSite::shutdown`] does, so a test that panics half-way
/// does not leave a listener behind.
pub struct DemoSite {
    local_addr: SocketAddr,
    /// Set to `true` to stop the accept loop and every connection.
    stop: watch::Sender<bool>,
    /// The thread driving the site's runtime until the listener is closed.
    accept_thread: Option<JoinHandle<()>>,
}

/// State shared by every connection.
pub(crate) struct Shared {
    /// The site's SQLite database: donations, users and news articles.
    pub(crate) store: store::Store,
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
        let shared = Arc::new(Shared {
            store: store::Store::open_seeded().map_err(io::Error::other)?,
            capacity: options.capacity_per_sec.map(capacity::Capacity::new),
        });
        let listener = std::net::TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (stop, stopped) = watch::channel(false);
        let name = format!("demo-{}", local_addr.port());
        let accept_thread = thread::Builder::new().name(name.clone()).spawn(move || {
            let mut connections = runtime.block_on(accept_loop(listener, shared, stopped));
            // `shutdown` waits for this thread, and the listener is closed now; the open
            // connections finish the request in hand on a thread of their own.
            let _ = thread::Builder::new()
                .name(format!("{name}-drain"))
                .spawn(move || {
                    runtime.block_on(async {
                        let all = async { while connections.join_next().await.is_some() {} };
                        let _ = tokio::time::timeout(DRAIN_TIMEOUT, all).await;
                    })
                });
        })?;
        Ok(DemoSite {
            local_addr,
            stop,
            accept_thread: Some(accept_thread),
        })
    }

    /// The address the site is listening on, with the real port when `start` was given port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and waits until the listener is closed.
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
        self.stop.send_replace(true);
        // The accept loop sees the change at once and closes the listener. Joining only fails if
        // the thread panicked, and there is nothing left to clean up.
        let _ = accept_thread.join();
    }
}

impl std::fmt::Debug for DemoSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoSite")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for DemoSite {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections until told to stop, then closes the listener and hands back the
/// connections still open.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return connections,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // Errors such as a connection reset before we accepted it, or running out of file
            // descriptors, concern one client; pause briefly so a persistent error doesn't spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // Collect the connections that have finished, so that the set holds only live ones.
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            tokio::spawn(refuse(stream));
            continue;
        }
        let serve = server::serve_connection(stream, peer, Arc::clone(&shared), stop.clone());
        connections.spawn(serve);
    }
}

/// Answers a client we have no room for with a 503 and closes its connection. It is written
/// before the client sends anything, since we won't read what it sends.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = "The demo site is serving too many connections; try again shortly.\n";
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nServer: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}",
        server::SERVER_NAME,
        body.len(),
        body
    );
    let write = stream.write_all(response.as_bytes());
    if let Ok(Ok(())) = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, write).await {
        let _ = stream.shutdown().await;
    }
}
