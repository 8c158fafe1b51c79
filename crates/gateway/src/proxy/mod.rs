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

use std::borrow::Cow;

use rampart_waf::{Transaction, TxMeta, Verdict as WafVerdict};

use crate::accesslog::{now_rfc3339, AccessLog, AccessRecord, LineSink};
use crate::admission;
use crate::config::WafMode;
use crate::net::client_address;
use crate::pages;
use crate::runtime::{Runtime, Snapshot};
use crate::verdict::{
    BadRequest, CacheServe, FloodLimit, FloodOutcome, Kinds, LeakOutcome, SizeLimit,
    UpstreamFailure, Verdict, WafOutcome,
};
use crate::waf::{audit_line, masked_body, AuditEntry};

mod answer;
mod cache;
mod events;
mod flood;
mod leak;
mod target;
mod waf;

use answer::*;
use cache::*;
use events::*;
use leak::*;
use target::*;
use waf::*;

/// Error raised by the gateway itself; carried through Pingora's error type
/// as an HTTP status so `fail_to_proxy` can answer with the right page.
const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream server";

pub struct Gateway {
    pub runtime: Arc<Runtime>,
    pub access_log: AccessLog,
    /// The WAF's ModSecurity-style error log and JSON audit log.
    pub waf_log: LineSink,
    pub audit_log: LineSink,
    /// Whether this listener is TLS, for X-Forwarded-Proto.
    pub tls: bool,
    request_counter: AtomicU64,
    process_tag: u32,
    /// Pingora's connector for the gateway's own requests to upstreams
    /// (the leak guard's whole-response fetch), as the proxy connects.
    connector: pingora::connectors::http::Connector,
}

impl Gateway {
    pub fn new(
        runtime: Arc<Runtime>,
        access_log: AccessLog,
        waf_log: LineSink,
        audit_log: LineSink,
        tls: bool,
    ) -> Gateway {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let process_tag = (seed.as_nanos() as u32) ^ std::process::id().rotate_left(16);
        Gateway {
            runtime,
            access_log,
            waf_log,
            audit_log,
            tls,
            request_counter: AtomicU64::new(0),
            process_tag,
            connector: pingora::connectors::http::Connector::new(None),
        }
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
    /// The request asked for an upgrade (WebSocket) that this route allows:
    /// a GET without a body. Other `Upgrade` headers are removed.
    upgrade: bool,
    /// The upstream answered the allowed upgrade with 101: the connection is
    /// now a tunnel that no layer can read.
    tunnel: bool,
    /// The request's authority and path, resolved once (see `resolve`);
    /// every layer decides on these, never on the raw header or path.
    authority: Option<Box<crate::resolve::Authority>>,
    path: Option<Box<crate::resolve::ResolvedPath>>,
    /// The security verdict for the access log; the layers fill it in.
    verdict: Verdict,
    // The layers' per-request state is boxed: inline it made the context
    // about 6 KB, which Pingora's request futures then copied around.
    waf: Option<Box<WafState>>,
    /// The flood shield's site id for this request, and the concurrency
    /// slot it holds (released when the context is dropped).
    flood_site: Option<rampart_flood::SiteId>,
    flood_permit: Option<rampart_flood::Permit>,
    /// The status the upstream answered with, before any layer changed the
    /// response; the flood shield learns the upstream's capacity from it.
    upstream_status: Option<u16>,
    /// When the request was handed to an upstream server, and how long the
    /// server took to start its answer: the latency the flood shield's
    /// learned capacity watches, free of the client's own download time.
    upstream_sent: Option<Instant>,
    upstream_latency: Option<Duration>,
    /// The upstream answered a browser's page request with an overload
    /// status and no kept copy could stand in: the visitor gets the page
    /// that tries again by itself.
    overload_retry: bool,
    leak: Option<Box<crate::leak::ResponseLeakState>>,
    /// The serve-stale cache's key for an anonymous GET or HEAD, and the
    /// copy being taken of this response, if it is worth keeping.
    cache_key: Option<rampart_cache::Key>,
    cache_fill: Option<CacheFill>,
}

/// Runs one step of an inspection layer (WAF or leak guard), turning a
/// panic inside it into `None`, counted in `failures`, so that a bug in a
/// layer costs one request, not the process; the caller decides the answer.
fn guarded<T>(failures: &AtomicU64, step: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)) {
        Ok(v) => Some(v),
        Err(_) => {
            failures.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl RequestContext {
    /// The route's explicit choice for what a layer cannot inspect, if any.
    fn uninspectable(&self) -> Option<crate::config::Uninspectable> {
        let snap = self.snapshot.as_ref()?;
        snap.sites[self.site?].routes[self.route?].uninspectable
    }

    fn pool(&self) -> Option<&Arc<crate::pool::Pool>> {
        let snap = self.snapshot.as_ref()?;
        let site = &snap.sites[self.site?];
        Some(match self.route {
            Some(r) => &site.routes[r].pool,
            None => &site.pool,
        })
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
            upgrade: false,
            tunnel: false,
            authority: None,
            path: None,
            verdict: Verdict::Allow,
            cache_key: None,
            cache_fill: None,
            waf: None,
            flood_site: None,
            flood_permit: None,
            upstream_status: None,
            upstream_sent: None,
            upstream_latency: None,
            overload_retry: false,
            leak: None,
        }
    }

    /// Runs right after the request head is parsed, before any module:
    /// tells the admission layer the head deadline was met.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        admission::head_received();
        let snapshot = self.runtime.snapshot();
        session.set_keepalive(Some(snapshot.config.limits.idle_timeout.as_secs()));
        ctx.snapshot = Some(snapshot);
        Ok(())
    }

    /// Picks the site and route, identifies the client and applies the
    /// size limits. Returning `Ok(true)` means a response was already sent.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
    ) -> Result<bool> {
        let Some(snapshot) = ctx.snapshot.clone() else {
            return Ok(false);
        };
        let limits = &snapshot.config.limits;
        let header = session.req_header();

        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if let Some(peer) = peer {
            // Every line of each header counts: a client that adds a second
            // `X-Forwarded-For` line must not hide the chain a proxy wrote.
            let xff = joined_header_values(&header.headers, "x-forwarded-for");
            let fwd = joined_header_values(&header.headers, "forwarded");
            ctx.client = Some(client_address(
                peer,
                &snapshot.config.server.trusted_proxies,
                xff.as_deref(),
                fwd.as_deref(),
            ));
        }

        // One resolution per request: site, route, leak-guard policy, WAF
        // exclusions, flood route and cache key all follow from it.
        if header.method == http::Method::CONNECT {
            return self
                .refuse_judged(session, ctx, &snapshot, 405, BadRequest::Connect)
                .await;
        }
        let http11 = header.version >= http::Version::HTTP_11;
        let hosts = header
            .headers
            .get_all(http::header::HOST)
            .iter()
            .map(|v| v.as_bytes());
        let authority = match crate::resolve::resolve_authority(
            hosts,
            header.uri.authority().map(|a| a.as_str()),
            http11,
        ) {
            Ok(a) => a,
            Err(e) => {
                return self
                    .refuse_judged(session, ctx, &snapshot, 400, e.verdict())
                    .await
            }
        };
        // A fragment is the client's own (RFC 9110 section 4.2.4): sent on,
        // origins would read the target differently. Pingora drops one from
        // an HTTP/1 target before any hook; should one ever arrive here
        // (another protocol, another parser), it is refused.
        if header.raw_path().contains(&b'#') {
            return self
                .refuse_judged(session, ctx, &snapshot, 400, BadRequest::Fragment)
                .await;
        }
        let path = crate::resolve::resolve_path(&request_path(header));
        let Some(site) = snapshot.site_for_host(&authority.host) else {
            ctx.verdict = Verdict::UnknownSite;
            self.answer(session, ctx, 404, &[]).await?;
            return Ok(true);
        };
        ctx.site = Some(site);
        ctx.route = snapshot.route_for_path(site, &path.matching);
        let route = ctx.route.map(|r| &snapshot.sites[site].routes[r]);
        ctx.api = route.is_some_and(|r| r.api);
        let host = authority.host.clone();
        ctx.authority = Some(Box::new(authority));
        ctx.path = Some(Box::new(path));

        // Header size: the request line plus every header line.
        let head_bytes = header.method.as_str().len()
            + header.uri.path_and_query().map_or(1, |p| p.as_str().len())
            + header.uri.authority().map_or(0, |a| a.as_str().len())
            + 12
            + header
                .headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum::<usize>();
        if head_bytes > limits.max_header_bytes {
            ctx.verdict = Verdict::Limit(SizeLimit::HeaderSize);
            self.answer(session, ctx, 431, &[]).await?;
            return Ok(true);
        }

        ctx.body_cap = route
            .and_then(|r| r.max_body_bytes)
            .unwrap_or(limits.max_body_bytes);
        let length = header
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n > ctx.body_cap) {
            ctx.verdict = Verdict::Limit(SizeLimit::BodySize);
            self.answer(session, ctx, 413, &[]).await?;
            return Ok(true);
        }
        // An upgrade becomes a tunnel only where the route allows it, for a
        // GET without a body, and only once the upstream answers 101; until
        // then the request passes every layer like any other. Elsewhere the
        // `Upgrade` header is removed, so the upstream cannot switch.
        if header.headers.contains_key(http::header::UPGRADE)
            || header.headers.contains_key("http2-settings")
        {
            let leak_blocks = request_leak_policy(&snapshot, ctx)
                .is_some_and(|p| p.action == rampart_leakguard::Action::Block);
            let allowed = route.and_then(|r| r.websocket).unwrap_or(!leak_blocks);
            let bodiless = session.is_body_empty();
            let header = session.req_header();
            ctx.upgrade = allowed
                && session.is_upgrade_req()
                && header.method == http::Method::GET
                && bodiless
                && !header.headers.contains_key("http2-settings");
            if !ctx.upgrade {
                let header = session.req_header_mut();
                header.remove_header(&http::header::UPGRADE);
                header.remove_header("http2-settings");
                self.runtime
                    .metrics
                    .upgrades_refused
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let has_body = !session.is_body_empty();
        if has_body {
            admission::body_expected();
        }

        if self.flood_gate(session, ctx, &snapshot, site).await? {
            return Ok(true);
        }

        // A compressed request body is one the WAF cannot read, and an
        // origin that inflates it would get what no rule saw: where a WAF
        // guards the site, such a body is refused (415) and counted, unless
        // the route says `uninspectable = "pass"`.
        let encoded_body = session
            .req_header()
            .headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"));
        let pass_encoded = ctx.uninspectable() == Some(crate::config::Uninspectable::Pass);
        if has_body && encoded_body && snapshot.sites[site].waf.is_some() && !pass_encoded {
            self.runtime
                .metrics
                .waf_uninspectable
                .fetch_add(1, Ordering::Relaxed);
            ctx.verdict = Verdict::Waf(WafOutcome::UninspectableBody);
            self.answer(session, ctx, 415, &[]).await?;
            return Ok(true);
        }
        if let Some(verdict) = self.request_waf(session, ctx, &snapshot, site, has_body) {
            if self.enforce_request_verdict(session, ctx, verdict).await? {
                return Ok(true);
            }
        }
        if self
            .serve_from_cache(session, ctx, &snapshot, site, &host)
            .await?
        {
            return Ok(true);
        }
        if self.leak_block_route(session, ctx, &snapshot, site).await? {
            return Ok(true);
        }
        Ok(false)
    }

    /// Runs for each piece of request body as it arrives: counts it against
    /// the size cap and reports progress to the body-rate floor.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        // Bytes from the client after a 101 belong to the tunnel.
        if ctx.tunnel {
            return Ok(());
        }
        let n = body.as_ref().map_or(0, |b| b.len());
        ctx.body_received += n as u64;
        admission::body_progress(n, end_of_stream);
        if end_of_stream {
            if let Some(p) = ctx.flood_permit.as_mut() {
                p.body_complete();
            }
        }
        if ctx.body_received > ctx.body_cap {
            ctx.verdict = Verdict::Limit(SizeLimit::BodySize);
            return Err(status_error(413, "request body over the size cap"));
        }
        let metrics = self.runtime.metrics.clone();
        if let Some(waf) = ctx.waf.as_mut() {
            if waf.request_judged {
                return Ok(());
            }
            // Hold the body back until phase 2 has judged as much of it as
            // the engine inspects (its body limit), then stream the rest. An
            // empty chunk, not `None`, is what holds: Pingora reads `None` as
            // the end of the body and would close the upstream request early.
            if let Some(chunk) = body.replace(Bytes::new()) {
                waf.tx.append_request_body(&chunk);
                waf.request_body.extend_from_slice(&chunk);
            }
            if end_of_stream || !waf.tx.request_body_wanted() {
                waf.request_judged = true;
                let verdict = guarded(&metrics.waf_errors, || waf.tx.process_request_body());
                waf.flush_lines(&self.waf_log);
                match verdict {
                    Some(WafVerdict::Continue) => {
                        let released = Bytes::from(std::mem::take(&mut waf.request_body));
                        waf.released_body = Some(released.clone());
                        *body = Some(released);
                    }
                    other => {
                        let status = self.note_waf_refusal(ctx, other);
                        return Err(status_error(status, "refused by the WAF"));
                    }
                }
            }
        }
        Ok(())
    }

    /// Chooses the upstream server: round robin over those that are up,
    /// never one that already failed this request.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestContext,
    ) -> Result<Box<HttpPeer>> {
        let snapshot = ctx
            .snapshot
            .clone()
            .ok_or_else(|| status_error(500, "no configuration"))?;
        let pool = ctx
            .pool()
            .ok_or_else(|| status_error(500, "no site"))?
            .clone();
        let Some(index) = pool.pick(ctx.tried) else {
            return Err(status_error(503, NO_HEALTHY_UPSTREAM));
        };
        ctx.server = Some(index);
        ctx.upstream_sent = Some(Instant::now());
        ctx.tried |= 1u64.checked_shl(index as u32).unwrap_or(0);
        ctx.attempts += 1;
        let limits = &snapshot.config.limits;
        let mut peer = crate::upstream::peer(
            pool.servers[index].address,
            pool.definition.tls_sni.as_deref(),
            limits.upstream_connect_timeout,
            limits.upstream_read_timeout,
        );
        if ctx.upgrade {
            // Pingora can end an upgrade at once when it rides a pooled
            // connection (seen as about 4% of WebSocket upgrades after a
            // keep-alive request); a group key of its own gives every
            // upgrade a fresh connection.
            peer.group_key = self.request_counter.fetch_add(1, Ordering::Relaxed) | (1 << 63);
        }
        Ok(Box::new(peer))
    }

    /// Adds the forwarding headers the upstream needs to know the client.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut pingora::http::RequestHeader,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        strip_connection_headers(upstream, ctx.upgrade);
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let trusted_peer = match (peer, &ctx.snapshot) {
            (Some(p), Some(s)) => s
                .config
                .server
                .trusted_proxies
                .iter()
                .any(|c| c.contains(p)),
            _ => false,
        };
        if let Some(peer) = peer {
            // Keep the chain only when it came from a proxy we trust;
            // otherwise it is whatever the client chose to write.
            let chain = match joined_header_values(&upstream.headers, "x-forwarded-for") {
                Some(existing) if trusted_peer => format!("{existing}, {peer}"),
                _ => peer.to_string(),
            };
            upstream.insert_header("x-forwarded-for", chain)?;
        }
        if !trusted_peer {
            upstream.remove_header("forwarded");
            upstream.remove_header("x-forwarded-host");
            upstream.insert_header("x-forwarded-proto", if self.tls { "https" } else { "http" })?;
        }
        if let Some(client) = ctx.client {
            upstream.insert_header("x-real-ip", client.to_string())?;
        }
        upstream.insert_header("x-request-id", ctx.reference.as_str())?;
        // The upstream gets the authority and path every layer judged: the
        // normalised Host (also for HTTP/2, where the client sent
        // `:authority`) and the normalised path in origin form.
        if let Some(authority) = &ctx.authority {
            if !authority.host.is_empty() {
                upstream.insert_header(http::header::HOST, authority.header_value())?;
            }
        }
        if let Some(path) = &ctx.path {
            let target = forwarded_target(&path.forwarded, upstream.raw_path());
            upstream.set_raw_path(&target)?;
        }
        // A range of a response cannot be judged by the leak guard, which
        // needs the whole body; the client gets the whole response instead.
        if ctx.snapshot.as_ref().is_some_and(|s| s.leak.is_some()) {
            upstream.remove_header(&http::header::RANGE);
            upstream.remove_header(&http::header::IF_RANGE);
        }
        Ok(())
    }

    /// The upstream answered: its server is alive as far as traffic shows.
    async fn response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        if let (Some(pool), Some(i)) = (ctx.pool(), ctx.server) {
            pool.report_success(i);
        }
        ctx.upstream_status = Some(response.status.as_u16());
        ctx.upstream_latency = ctx.upstream_sent.map(|t| t.elapsed());
        // An upstream that answers it is overloaded or cannot reach its own
        // backend (502, 503, 504) is treated as one that did not answer: a
        // kept copy of the page, even a stale one, is served instead (as
        // `stale-if-error` asks), by `fail_to_proxy`. In the first second of
        // a flood, before the learned capacity holds the upstream back, that
        // is what spares visitors its error page.
        // Without a copy, a browser asking for a page on a site the flood
        // shield covers gets the shield's page that reloads itself in a
        // second, not the upstream's error: by then the learned capacity
        // holds the flood back and the page is served.
        if matches!(response.status.as_u16(), 502..=504) {
            let request = session.req_header();
            let page_request = matches!(request.method, http::Method::GET | http::Method::HEAD)
                && !ctx.api
                && ctx.flood_site.is_some()
                && request
                    .headers
                    .get("accept")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|a| a.contains("text/html"));
            let kept = ctx.verdict.is_allow()
                && ctx.cache_key.is_some_and(|key| {
                    self.runtime
                        .cache
                        .get(key, crate::incidents::now_ms() as u64)
                        .is_some()
                });
            if kept || page_request {
                ctx.overload_retry = !kept;
                return Err(status_error(
                    response.status.as_u16(),
                    "the upstream answered with an overload status",
                ));
            }
        }
        let metrics = self.runtime.metrics.clone();
        if response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            if !ctx.upgrade {
                // The upstream switched protocols for a request that did not
                // ask (or was not allowed) to: nothing of it is sent on.
                ctx.verdict = Verdict::UpstreamFailure(UpstreamFailure::Unrequested101);
                return Err(status_error(502, "the upstream switched protocols unasked"));
            }
            ctx.tunnel = true;
            metrics.tunnels.fetch_add(1, Ordering::Relaxed);
        }
        let tunnel = ctx.tunnel;
        let refuse_unread_waf = ctx.uninspectable() == Some(crate::config::Uninspectable::Refuse);
        if let Some(waf) = ctx.waf.as_mut() {
            waf.response_status = response.status.as_u16();
            waf.response_headers = response
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let protocol = protocol_name(response.version);
            let verdict = guarded(&metrics.waf_errors, || {
                waf.tx.process_response_headers(
                    response.status.as_u16(),
                    protocol,
                    response
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_bytes())),
                )
            });
            waf.flush_lines(&self.waf_log);
            if verdict != Some(WafVerdict::Continue) {
                let status = self.note_waf_refusal(ctx, verdict);
                return Err(status_error(status, "response refused by the WAF"));
            }
            // Bodies of the inspected types are held for phase 4; a
            // compressed one is decoded for the engine (as for the leak
            // guard). One in an encoding that cannot be decoded passes
            // uninspected, counted in `rampart_waf_uninspectable_total`:
            // the Core Rule Set's response rules report, they do not block
            // by default, so refusing it would cost more than it protects.
            let encoding = content_coding(&response.headers);
            let wanted = !tunnel && waf.tx.response_body_wanted();
            waf.response_decoder = None;
            waf.holding_response = wanted;
            if let (true, Some(e)) = (wanted, encoding) {
                match rampart_decode::LayeredDecoder::new(e, RESPONSE_INSPECTION_CAP * 8) {
                    Ok(d) => waf.response_decoder = Some(Box::new(d)),
                    Err(_) => {
                        metrics.waf_uninspectable.fetch_add(1, Ordering::Relaxed);
                        waf.holding_response = false;
                        if refuse_unread_waf {
                            ctx.verdict = Verdict::Waf(WafOutcome::Uninspectable);
                            return Err(status_error(502, "response encoding cannot be inspected"));
                        }
                    }
                }
            }
        }
        let refuse_unread = ctx
            .uninspectable()
            .map(|u| u == crate::config::Uninspectable::Refuse);
        if let Some(leak) = snapshot_leak(ctx) {
            // Header names as constants, not strings: each string is parsed
            // into a name per lookup, and this runs for every response.
            let content_type = response
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let status = response.status.as_u16();
            if rampart_leakguard::is_scannable(content_type)
                && status != 204
                && status != 304
                && !ctx.tunnel
            {
                let policy = request_leak_policy_of(leak, ctx);
                let encoding = content_coding(&response.headers);
                let decoder = match encoding {
                    Some(e) => match rampart_decode::LayeredDecoder::new(e, LEAK_DECODE_CAP) {
                        Ok(d) => Some(d),
                        // An encoding we cannot read cannot be inspected: a
                        // block or redact route refuses it rather than pass it
                        // blind, unless the route chose otherwise.
                        Err(_)
                            if refuse_unread
                                .unwrap_or(policy.action >= rampart_leakguard::Action::Redact) =>
                        {
                            metrics.leak_uninspectable.fetch_add(1, Ordering::Relaxed);
                            ctx.verdict = Verdict::Leak(LeakOutcome::Uninspectable);
                            return Err(status_error(502, "response encoding cannot be inspected"));
                        }
                        Err(_) => None,
                    },
                    None => None,
                };
                let inspected = encoding.is_none() || decoder.is_some();
                let redact = policy.action == rampart_leakguard::Action::Redact;
                let state = inspected.then(|| leak.response_state(policy, decoder, redact));
                if redact {
                    // The masked body goes out decoded and chunked.
                    response.remove_header("content-length");
                    response.remove_header("content-encoding");
                }
                ctx.leak = state;
            }
        }
        response.insert_header("x-request-id", ctx.reference.as_str())?;
        if let Some(key) = ctx.cache_key {
            let cache = &self.runtime.cache;
            if session.req_header().method == http::Method::GET
                && ctx.verdict.is_allow()
                && ctx.leak.as_ref().is_none_or(|l| !l.redact)
                && cache.wants(key, crate::incidents::now_ms() as u64)
            {
                let headers = response
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.to_str().unwrap_or("")));
                if let Some(keep_for) =
                    rampart_cache::storable_for(cache.config(), response.status.as_u16(), headers)
                {
                    let headers = response
                        .headers
                        .iter()
                        .filter(|(k, _)| *k != "x-request-id")
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    ctx.cache_fill = Some(CacheFill {
                        status: response.status.as_u16(),
                        headers,
                        body: Vec::new(),
                        keep_for,
                        complete: false,
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs for each piece of the body read from the upstream: once the
    /// upstream has sent all of it, the request's place in the upstream's
    /// capacity is given back. A client reading the answer slowly keeps its
    /// connection to the gateway, not a place at the upstream.
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<Option<std::time::Duration>> {
        if end_of_stream {
            ctx.flood_permit = None;
        }
        Ok(None)
    }

    /// Runs for each piece of the response body on its way to the client:
    /// holds inspected types back until phase 4 has judged them.
    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<Option<Duration>> {
        self.waf_response_body(body, end_of_stream, ctx)?;
        self.leak_response_body(session, body, end_of_stream, ctx)?;
        self.fill_cache(body, end_of_stream, ctx);
        Ok(None)
    }

    /// Connecting to an upstream server failed: count it against the server
    /// (passive ejection) and retry elsewhere, for idempotent requests only,
    /// since a POST may have had effects even when the answer was lost.
    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestContext,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let metrics = &self.runtime.metrics;
        metrics
            .upstream_connect_failures
            .fetch_add(1, Ordering::Relaxed);
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
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestContext,
    ) -> FailToProxy {
        let status = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
                if e.esource() == &ErrorSource::Upstream =>
            {
                504
            }
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
        if status >= 500 && ctx.verdict.is_allow() {
            ctx.verdict = Verdict::UpstreamFailure(UpstreamFailure::Answered);
            // The origin failed: a kept copy, even a stale one, beats an error page.
            if (502..=504).contains(&status) && session.response_written().is_none() {
                if let Some((copy, freshness)) = ctx.cache_key.and_then(|key| {
                    self.runtime
                        .cache
                        .get(key, crate::incidents::now_ms() as u64)
                }) {
                    ctx.verdict = Verdict::Cache(CacheServe::StaleOnError);
                    let written = self
                        .write_cached(session, ctx, &copy, freshness)
                        .await
                        .is_ok();
                    return FailToProxy {
                        error_code: if written { copy.status } else { status },
                        can_reuse_downstream: false,
                    };
                }
            }
        }
        if ctx.overload_retry && session.response_written().is_none() {
            ctx.verdict = Verdict::UpstreamFailure(UpstreamFailure::RetryPage);
            let page = rampart_flood::pages::busy_page(1);
            let written = self
                .answer_page(session, ctx, 503, page, &[("retry-after", "1".into())])
                .await
                .is_ok();
            return FailToProxy {
                error_code: if written { 503 } else { 0 },
                can_reuse_downstream: false,
            };
        }
        if status > 0 && session.response_written().is_none() {
            let retry_after = [("retry-after", "5")];
            let extra: &[(&str, &str)] = if status == 503 { &retry_after } else { &[] };
            if self.answer(session, ctx, status, extra).await.is_err() {
                return FailToProxy {
                    error_code: status,
                    can_reuse_downstream: false,
                };
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Runs once per request after everything else: the access-log line and
    /// the per-site counters.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestContext) {
        self.finish_deferred_leak(ctx);
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let bytes = session.body_bytes_sent() as u64;
        let elapsed = ctx.started.elapsed();
        let snapshot = ctx.snapshot.clone();
        let (site_name, route_prefix) = match (&snapshot, ctx.site) {
            (Some(s), Some(i)) => (
                s.sites[i].name.as_str(),
                ctx.route
                    .map_or("", |r| s.sites[i].routes[r].prefix.as_str()),
            ),
            _ => ("", ""),
        };
        self.finish_waf(session, ctx, status);
        if let (Some(s), Some(i)) = (&snapshot, ctx.site) {
            s.sites[i]
                .metrics
                .record(status, bytes, elapsed.as_secs_f64());
            s.sites[i].metrics.traffic.count(ctx.verdict.traffic());
            if self.runtime.events.enabled() {
                self.record_request_event(
                    ctx,
                    session.req_header().method.as_str(),
                    site_name,
                    route_prefix,
                    status,
                    e,
                );
            }
        }
        if let (Some(site), Some(flood)) = (
            ctx.flood_site,
            snapshot.as_ref().and_then(|s| s.flood.as_ref()),
        ) {
            let now = crate::flood::now();
            // The upstream's own answer when there was one; without one, the
            // gateway's answer says why (502 or 504 for no connection or no
            // answer in time). A client that left before anything was
            // written says nothing of the upstream.
            let outcome = match (ctx.server, ctx.upstream_status, status) {
                (None, _, _) | (Some(_), None, 0) => None,
                (Some(_), Some(upstream), _) => Some(upstream),
                (Some(_), None, gateway) => Some(gateway),
            };
            if let Some(upstream) = outcome {
                flood.shield.observe_response(
                    site,
                    ctx.upstream_latency.unwrap_or(elapsed),
                    rampart_flood::UpstreamOutcome::of_status(upstream),
                    now,
                );
            }
            if let (Some(client), Verdict::Waf(WafOutcome::Block { .. })) =
                (ctx.client, ctx.verdict)
            {
                flood
                    .shield
                    .report_strike(client, rampart_flood::Strike::Waf, now);
            }
        }
        if !self.access_log.enabled() {
            return;
        }
        let upstream = match (ctx.pool(), ctx.server) {
            (Some(pool), Some(i)) => Some(pool.servers[i].address.to_string()),
            _ => None,
        };
        let header = session.req_header();
        let protocol = if session.is_http2() {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        };
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

#[cfg(test)]
mod tests;
