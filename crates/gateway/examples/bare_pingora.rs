//! The smallest Pingora reverse proxy: one upstream, no filters, no
//! connection accounting, no logs. `bench/gateway-vs-nginx.sh` runs it as a
//! third row so the benchmark shows how much of the gap to nginx is
//! Pingora's own and how much is rampart's work on top of it.
//!
//! `bare_pingora LISTEN UPSTREAM THREADS`

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::{Opt, ServerConf};

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_pingora LISTEN UPSTREAM THREADS";
    let listen = args.next().expect(usage);
    let upstream: SocketAddr = args
        .next()
        .expect(usage)
        .parse()
        .expect("UPSTREAM is host:port");
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(1);
    // Worker threads keep their connections, as rampart's do (server.rs).
    let conf = ServerConf {
        threads,
        work_stealing: false,
        pid_file: std::env::temp_dir()
            .join(format!("bare-pingora-{}.pid", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
