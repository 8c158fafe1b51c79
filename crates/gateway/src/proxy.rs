//! The Pingora `ProxyHttp` adapter: the one place where the gateway meets
//! Pingora's request lifecycle. Each hook below says when Pingora runs it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::accesslog::{now_rfc3339, AccessLog, AccessRecord};
use crate::admission;
use crate::net::client_address;
use crate::pages;
use crate::runtime::{Runtime, Snapshot};

/// Error raised by the gateway itself; carried through Pingora's error type
/// as an HTTP status so `fail_to_proxy` can answer with the right page.
const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream server";

pub struct Gateway {
    pub runtime: Arc<Runtime>,
    pub access_log: AccessLog,
    /// Whether this listener is TLS, for X-Forwarded-Proto.
    pub tls: bool,
    request_counter: AtomicU64,
    process_tag: u32,
}

impl Gateway {
    pub fn new(runtime: Arc<Runtime>, access_log: AccessLog, tls: bool) -> Gateway {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let process_tag = (seed.as_nanos() as u32) ^ std::process::id().rotate_left(16);
        Gateway { runtime, access_log, tls, request_counter: AtomicU64::new(0), process_tag }
    }

    /// A reference id unique across this process's life and unlikely to
    /// repeat across restarts; shown on error pages and in the log.
    fn next_reference(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{:010x}", self.process_tag, n)
    }
}

/// What the gateway knows about one request while it is in flight.
pub struct RequestContext {
    started: Instant,
    snapshot: Option<Arc<Snapshot>>,
    reference: String,
    client: Option<IpAddr>,
    site: Option<usize>,
    route: Option<usize>,
    /// Index of the upstream server now in use, and those already tried
    /// (a bit per server index).
    server: Option<usize>,
    tried: u64,
    attempts: u32,
    body_received: u64,
    body_cap: u64,
    api: bool,
    /// The security verdict for the access log; later layers fill it in.
    verdict: &'static str,
}

impl RequestContext {
    fn pool(&self) -> Option<&Arc<crate::pool::Pool>> {
        let snap = self.snapshot.as_ref()?;
        let site = &snap.sites[self.site?];
        Some(match self.route {
            Some(r) => &site.routes[r].pool,
            None => &site.pool,
        })
    }
}

fn status_error(status: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), why)
}

impl Gateway {
    /// Writes one of the gateway's own pages as the whole response.
    async fn answer(&self, session: &mut Session, ctx: &RequestContext, status: u16, extra: &[(&str, &str)]) -> Result<()> {
        let accept = session.req_header().headers.get("accept").and_then(|v| v.to_str().ok());
        let json = pages::wants_json(ctx.api, accept);
        let (content_type, body) = pages::render(status, &ctx.reference, json);
        let mut head = ResponseHeader::build(status, Some(4))?;
        head.insert_header("content-type", content_type)?;
        head.insert_header("content-length", body.len().to_string())?;
        head.insert_header("cache-control", "no-store")?;
        head.insert_header("x-request-id", ctx.reference.as_str())?;
        for (k, v) in extra {
            head.insert_header(k.to_string(), v.to_string())?;
        }
        session.set_keepalive(None);
        session.write_response_header(Box::new(head), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestContext;

    fn new_ctx(&self) -> RequestContext {
        RequestContext {
            started: Instant::now(),
            snapshot: None,
            reference: self.next_reference(),
            client: None,
            site: None,
            route: None,
            server: None,
            tried: 0,
            attempts: 0,
            body_received: 0,
            body_cap: u64::MAX,
            api: false,
            verdict: "allow",
        }
    }

    /// Runs right after the request head is parsed, before any module:
    /// tells the admission layer the head deadline was met.
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut RequestContext) -> Result<()> {
        admission::head_received();
        let snapshot = self.runtime.snapshot();
        session.set_keepalive(Some(snapshot.config.limits.idle_timeout.as_secs()));
        ctx.snapshot = Some(snapshot);
        Ok(())
    }

    /// Picks the site and route, identifies the client and applies the
    /// size limits. Returning `Ok(true)` means a response was already sent.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestContext) -> Result<bool> {
        let Some(snapshot) = ctx.snapshot.clone() else { return Ok(false) };
        let limits = &snapshot.config.limits;
        let header = session.req_header();

        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        if let Some(peer) = peer {
            let xff = header.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
            let fwd = header.headers.get("forwarded").and_then(|v| v.to_str().ok());
            ctx.client = Some(client_address(peer, &snapshot.config.server.trusted_proxies, xff, fwd));
        }

        let host = header
            .headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .or_else(|| header.uri.host())
            .unwrap_or("");
        let host = strip_port(host).to_ascii_lowercase();
        let Some(site) = snapshot.site_for_host(&host) else {
            ctx.verdict = "unknown-site";
            self.answer(session, ctx, 404, &[]).await?;
            return Ok(true);
        };
        ctx.site = Some(site);
        ctx.route = snapshot.route_for_path(site, header.uri.path());
        let route = ctx.route.map(|r| &snapshot.sites[site].routes[r]);
        ctx.api = route.is_some_and(|r| r.api);

        // Header size: the request line plus every header line.
        let head_bytes = header.method.as_str().len()
            + header.uri.path_and_query().map_or(1, |p| p.as_str().len())
            + header.uri.authority().map_or(0, |a| a.as_str().len())
            + 12
            + header.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
        if head_bytes > limits.max_header_bytes {
            ctx.verdict = "limit:header-size";
            self.answer(session, ctx, 431, &[]).await?;
            return Ok(true);
        }

        ctx.body_cap = route.and_then(|r| r.max_body_bytes).unwrap_or(limits.max_body_bytes);
        let length = header.headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n > ctx.body_cap) {
            ctx.verdict = "limit:body-size";
            self.answer(session, ctx, 413, &[]).await?;
            return Ok(true);
        }
        let chunked = header.headers.get("transfer-encoding").is_some();
        if length.is_some_and(|n| n > 0) || chunked {
            admission::body_expected();
        }
        Ok(false)
    }

    /// Runs for each piece of request body as it arrives: counts it against
    /// the size cap and reports progress to the body-rate floor.
    async fn request_body_filter(&self, _session: &mut Session, body: &mut Option<Bytes>, end_of_stream: bool, ctx: &mut RequestContext) -> Result<()> {
        let n = body.as_ref().map_or(0, |b| b.len());
        ctx.body_received += n as u64;
        admission::body_progress(n, end_of_stream);
        if ctx.body_received > ctx.body_cap {
            ctx.verdict = "limit:body-size";
            return Err(status_error(413, "request body over the size cap"));
        }
        Ok(())
    }

    /// Chooses the upstream server: round robin over those that are up,
    /// never one that already failed this request.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestContext) -> Result<Box<HttpPeer>> {
        let snapshot = ctx.snapshot.clone().ok_or_else(|| status_error(500, "no configuration"))?;
        let pool = ctx.pool().ok_or_else(|| status_error(500, "no site"))?.clone();
        let Some(index) = pool.pick(ctx.tried) else {
            return Err(status_error(503, NO_HEALTHY_UPSTREAM));
        };
        ctx.server = Some(index);
        ctx.tried |= 1u64.checked_shl(index as u32).unwrap_or(0);
        ctx.attempts += 1;
        let address = pool.servers[index].address;
        let sni = pool.definition.tls_sni.clone();
        let mut peer = HttpPeer::new(address, sni.is_some(), sni.unwrap_or_default());
        let limits = &snapshot.config.limits;
        peer.options.connection_timeout = Some(limits.upstream_connect_timeout);
        peer.options.read_timeout = Some(limits.upstream_read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    /// Adds the forwarding headers the upstream needs to know the client.
    async fn upstream_request_filter(&self, session: &mut Session, upstream: &mut pingora::http::RequestHeader, ctx: &mut RequestContext) -> Result<()> {
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let trusted_peer = match (peer, &ctx.snapshot) {
            (Some(p), Some(s)) => s.config.server.trusted_proxies.iter().any(|c| c.contains(p)),
            _ => false,
        };
        if let Some(peer) = peer {
            // Keep the chain only when it came from a proxy we trust;
            // otherwise it is whatever the client chose to write.
            let chain = match upstream.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                Some(existing) if trusted_peer => format!("{existing}, {peer}"),
                _ => peer.to_string(),
            };
            upstream.insert_header("x-forwarded-for", chain)?;
        }
        if !trusted_peer {
            upstream.remove_header("forwarded");
            upstream.insert_header("x-forwarded-proto", if self.tls { "https" } else { "http" })?;
        }
        if let Some(client) = ctx.client {
            upstream.insert_header("x-real-ip", client.to_string())?;
        }
        upstream.insert_header("x-request-id", ctx.reference.as_str())?;
        Ok(())
    }

    /// The upstream answered: its server is alive as far as traffic shows.
    async fn response_filter(&self, _session: &mut Session, response: &mut ResponseHeader, ctx: &mut RequestContext) -> Result<()> {
        if let (Some(pool), Some(i)) = (ctx.pool(), ctx.server) {
            pool.report_success(i);
        }
        response.insert_header("x-request-id", ctx.reference.as_str())?;
        Ok(())
    }

    /// Connecting to an upstream server failed: count it against the server
    /// (passive ejection) and retry elsewhere, for idempotent requests only,
    /// since a POST may have had effects even when the answer was lost.
    fn fail_to_connect(&self, session: &mut Session, _peer: &HttpPeer, ctx: &mut RequestContext, mut e: Box<Error>) -> Box<Error> {
        let metrics = &self.runtime.metrics;
        metrics.upstream_connect_failures.fetch_add(1, Ordering::Relaxed);
        if let (Some(pool), Some(i)) = (ctx.pool(), ctx.server) {
            if pool.report_failure(i) {
                metrics.upstream_ejections.fetch_add(1, Ordering::Relaxed);
            }
            let more = pool.servers.len() as u32 > ctx.attempts;
            let idempotent = session.req_header().method.is_idempotent();
            if more && idempotent && ctx.attempts < 4 {
                metrics.upstream_retries.fetch_add(1, Ordering::Relaxed);
                e.set_retry(true);
            } else {
                e.set_retry(false);
            }
        }
        e
    }

    /// Anything went wrong before a response was sent: answer with a page
    /// that says what kind of failure it was.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestContext) -> FailToProxy {
        let status = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout if e.esource() == &ErrorSource::Upstream => 504,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::ReadTimedout => 408,
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if status >= 500 && ctx.verdict == "allow" {
            ctx.verdict = "upstream-failure";
        }
        if status > 0 && session.response_written().is_none() {
            let retry_after = [("retry-after", "5")];
            let extra: &[(&str, &str)] = if status == 503 { &retry_after } else { &[] };
            if self.answer(session, ctx, status, extra).await.is_err() {
                return FailToProxy { error_code: status, can_reuse_downstream: false };
            }
        }
        FailToProxy { error_code: status, can_reuse_downstream: false }
    }

    /// Runs once per request after everything else: the access-log line and
    /// the per-site counters.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestContext) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let bytes = session.body_bytes_sent() as u64;
        let elapsed = ctx.started.elapsed();
        let snapshot = ctx.snapshot.clone();
        let (site_name, route_prefix) = match (&snapshot, ctx.site) {
            (Some(s), Some(i)) => (s.sites[i].name.as_str(), ctx.route.map_or("", |r| s.sites[i].routes[r].prefix.as_str())),
            _ => ("", ""),
        };
        if let (Some(s), Some(i)) = (&snapshot, ctx.site) {
            s.sites[i].metrics.record(status, bytes, elapsed.as_secs_f64());
        }
        if !self.access_log.enabled() {
            return;
        }
        let upstream = match (ctx.pool(), ctx.server) {
            (Some(pool), Some(i)) => Some(pool.servers[i].address.to_string()),
            _ => None,
        };
        let header = session.req_header();
        let protocol = if session.is_http2() { "HTTP/2" } else { "HTTP/1.1" };
        let path_and_query = header.uri.path_and_query().map_or("/", |p| p.as_str());
        let record = AccessRecord {
            time: now_rfc3339(),
            id: &ctx.reference,
            site: site_name,
            route: route_prefix,
            client: ctx.client.map(|c| c.to_string()).unwrap_or_default(),
            method: header.method.as_str(),
            path: path_and_query,
            protocol,
            status,
            bytes,
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
            upstream,
            verdict: ctx.verdict,
            error: e.map(|e| e.etype().as_str().to_string()),
        };
        self.access_log.write(&record);
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split(']').next().map_or(host, |h| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(super::strip_port("example.org:8080"), "example.org");
        assert_eq!(super::strip_port("example.org"), "example.org");
        assert_eq!(super::strip_port("[::1]:8080"), "[::1]");
    }
}
