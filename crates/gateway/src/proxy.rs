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

use rampart_waf::{Transaction, TxMeta, Verdict};

use crate::accesslog::{now_rfc3339, AccessLog, AccessRecord, LineSink};
use crate::admission;
use crate::config::WafMode;
use crate::net::client_address;
use crate::pages;
use crate::runtime::{Runtime, Snapshot};
use crate::waf::{audit_line, masked_body, AuditEntry};

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
    verdict: Cow<'static, str>,
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

/// A response being copied into the serve-stale cache as it streams out.
struct CacheFill {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    keep_for: (u64, u64),
    /// Whether the whole body has been copied (the response may still fail
    /// before the logging phase stores it).
    complete: bool,
}

/// The most decoded response body the leak guard reads from one response;
/// beyond it a decompression bomb is cut off rather than expanded.
const LEAK_DECODE_CAP: usize = 64 * 1024 * 1024;

/// Writes a leak-guard outcome to the event log and returns the verdict
/// for the access log, if anything was found.
///
/// Findings the route's policy allows (below its thresholds, such as the
/// contact address in a site's footer) are only counted: an event per
/// response for them would fill the log and the event store with noise and
/// open a data-leak incident for every page of an ordinary site.
fn leak_outcome(
    runtime: &crate::runtime::Runtime,
    client: Option<IpAddr>,
    reference: &str,
    site: &str,
    route: &str,
    outcome: &rampart_leakguard::Outcome,
) -> Option<String> {
    use rampart_leakguard::Action;
    if outcome.findings.is_empty() {
        return None;
    }
    let action = match outcome.action {
        Action::Allow => "allow",
        Action::Alert => "alert",
        Action::Redact => "redact",
        Action::Block => "block",
    };
    // Built by hand: this runs for every page with a contact address in
    // its footer, and `format!` and a joined `Vec` cost a third as much as
    // scanning a small page.
    let mut verdict = String::with_capacity(32);
    verdict.push_str("leak:");
    verdict.push_str(action);
    for (i, finding) in outcome.findings.iter().enumerate() {
        verdict.push(if i == 0 { ':' } else { '+' });
        verdict.push_str(finding.kind.name());
    }
    if outcome.action == Action::Allow {
        runtime.metrics.leak_allowed.fetch_add(1, Ordering::Relaxed);
        return Some(verdict);
    }
    runtime.metrics.leak_events.fetch_add(1, Ordering::Relaxed);
    eprintln!(
        "rampart: event {}",
        crate::leak::findings_event(reference, site, route, outcome)
    );
    if runtime.events.enabled() {
        for kind in crate::leak::incident_events(reference, outcome) {
            runtime.events.record(site, client, route, kind);
        }
    }
    Some(verdict)
}

/// The WAF's view of one request in flight.
struct WafState {
    tx: Transaction,
    mode: WafMode,
    /// The request body, held back from the upstream until phase 2 has
    /// judged it; after release, kept (shared, not copied) for the audit log.
    request_body: Vec<u8>,
    released_body: Option<Bytes>,
    /// Phase 2 has run (for a request without a body, in `request_filter`).
    request_judged: bool,
    /// Response body held back for phase 4, up to the engine's limit.
    holding_response: bool,
    response_body: Vec<u8>,
    /// Decodes a compressed response for phase 4 (the client still gets the
    /// bytes the upstream sent), with the decoded piece of the last chunk.
    response_decoder: Option<Box<rampart_decode::LayeredDecoder>>,
    decoded: Vec<u8>,
    intervened: bool,
    response_status: u16,
    response_headers: Vec<(String, String)>,
    /// Error-log lines already written: each phase's lines go out as soon
    /// as it has run, before the response they explain, so a reader of the
    /// log who has seen the response also finds its lines (go-ftw does).
    lines_written: usize,
}

impl WafState {
    /// Writes the error-log lines of the phases run since the last call.
    fn flush_lines(&mut self, sink: &LineSink) {
        let lines = self.tx.error_log_lines();
        for line in lines.iter().skip(self.lines_written) {
            sink.send(line.clone());
        }
        self.lines_written = lines.len();
    }
}

/// The most response body held back for inspection: ModSecurity's default
/// `SecResponseBodyLimit`, beyond which the rest streams (ProcessPartial).
const RESPONSE_INSPECTION_CAP: usize = 512 * 1024;

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

fn status_error(status: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), why)
}

impl Gateway {
    /// Writes one of the gateway's own error pages as the whole response.
    async fn answer(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        status: u16,
        extra: &[(&str, &str)],
    ) -> Result<()> {
        let accept = session
            .req_header()
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok());
        let json = pages::wants_json(ctx.api, accept);
        let (content_type, body) = pages::render(status, &ctx.reference, json);
        let headers: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.write_page(session, ctx, status, content_type, body, &headers)
            .await
    }

    /// Writes a page the flood layer made (challenge, waiting room, wait).
    async fn answer_page(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        status: u16,
        body: String,
        headers: &[(&str, String)],
    ) -> Result<()> {
        self.write_page(
            session,
            ctx,
            status,
            "text/html; charset=utf-8",
            Bytes::from(body),
            headers,
        )
        .await
    }

    /// Sends a whole response the gateway made itself: never cached, tagged
    /// with the request's reference, and the connection closed after it.
    async fn write_page(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        status: u16,
        content_type: &str,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<()> {
        let mut head = ResponseHeader::build(status, Some(4 + headers.len()))?;
        head.insert_header("content-type", content_type)?;
        head.insert_header("content-length", body.len().to_string())?;
        head.insert_header("cache-control", "no-store")?;
        head.insert_header("x-request-id", ctx.reference.as_str())?;
        for (k, v) in headers {
            head.append_header(k.to_string(), v.as_str())?;
        }
        session.set_keepalive(None);
        session.write_response_header(Box::new(head), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(())
    }

    /// The flood layer: its two challenge endpoints, then admission by rate
    /// limits, bans, challenge and concurrency caps. Returns true when it
    /// answered the request itself.
    async fn flood_gate(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
    ) -> Result<bool> {
        use rampart_flood::{pages, FloodVerdict, Reject, RequestFacts, RouteId};
        let Some(flood) = &snapshot.flood else {
            return Ok(false);
        };
        let Some(site_id) = flood.site_ids[site] else {
            return Ok(false);
        };
        let Some(client) = ctx.client else {
            return Ok(false);
        };
        ctx.flood_site = Some(site_id);
        let shield = &flood.shield;
        let now = crate::flood::now();
        let header = session.req_header();
        let path = header.uri.path().to_string();
        let method = header.method.clone();

        if path == pages::VERIFY_PATH && method == http::Method::POST {
            // The solution form is tiny; anything larger is not ours.
            let mut form = Vec::new();
            while let Some(chunk) = session.read_request_body().await? {
                form.extend_from_slice(&chunk);
                if form.len() > 4096 {
                    break;
                }
            }
            let form = String::from_utf8_lossy(&form).into_owned();
            let token = pages::form_field(&form, "token")
                .map(pages::percent_decode)
                .unwrap_or_default();
            let solution = pages::form_field(&form, "solution")
                .map(pages::percent_decode)
                .unwrap_or_default();
            match shield.verify_solution(site_id, client, &token, &solution, now) {
                Ok(clearance) => {
                    ctx.verdict = Cow::Borrowed("flood:cleared");
                    let mut head = ResponseHeader::build(204, Some(3))?;
                    head.insert_header("set-cookie", clearance.set_cookie())?;
                    head.insert_header("cache-control", "no-store")?;
                    session.write_response_header(Box::new(head), true).await?;
                }
                Err(why) => {
                    ctx.verdict = Cow::Owned(format!("flood:challenge-rejected:{why:?}"));
                    self.answer(session, ctx, 403, &[]).await?;
                }
            }
            return Ok(true);
        }
        if path == pages::WAIT_PATH {
            let query = header.uri.query().unwrap_or("").to_string();
            let token = pages::form_field(&query, "t")
                .map(pages::percent_decode)
                .unwrap_or_default();
            let return_to = pages::form_field(&query, "r")
                .map(pages::percent_decode)
                .unwrap_or_else(|| "/".into());
            match shield.redeem_wait(site_id, client, &token, now) {
                Ok(clearance) => {
                    ctx.verdict = Cow::Borrowed("flood:cleared-nojs");
                    let mut head = ResponseHeader::build(303, Some(4))?;
                    head.insert_header("location", pages::safe_return_path(&return_to))?;
                    head.insert_header("set-cookie", clearance.set_cookie())?;
                    head.insert_header("cache-control", "no-store")?;
                    head.insert_header("content-length", "0")?;
                    session.write_response_header(Box::new(head), true).await?;
                }
                Err(Reject::TooEarly { remaining }) => {
                    let page = pages::wait_page(
                        &token,
                        &return_to,
                        rampart_flood::retry_after_secs(remaining),
                    );
                    self.answer_page(session, ctx, 403, page, &[]).await?;
                }
                Err(Reject::PrefixCapped) => {
                    ctx.verdict = Cow::Borrowed("flood:limited:WaitPrefix");
                    self.answer(session, ctx, 429, &[("retry-after", "12")])
                        .await?;
                }
                Err(why) => {
                    ctx.verdict = Cow::Owned(format!("flood:challenge-rejected:{why:?}"));
                    self.answer(session, ctx, 403, &[]).await?;
                }
            }
            return Ok(true);
        }

        // Most requests carry one Cookie header; only several need joining.
        let mut cookie_values = header
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let cookies: Cow<'_, str> = match (cookie_values.next(), cookie_values.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => Cow::Borrowed(one),
            (Some(a), Some(b)) => Cow::Owned(
                std::iter::once(a)
                    .chain(std::iter::once(b))
                    .chain(cookie_values)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        // `Accept` only chooses how an answer is written (a page or JSON);
        // it never decides whether a request is challenged.
        let accept = header
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_browser = accept.contains("text/html") && !ctx.api;
        let facts = RequestFacts {
            client,
            site: site_id,
            route: ctx
                .route
                .map_or(RouteId::NONE, |r| flood.route_ids[site][r]),
            is_api: ctx.api,
            is_browser,
            clearance_cookie: pages::find_cookie(&cookies, pages::CLEARANCE_COOKIE),
            ticket_cookie: pages::find_cookie(&cookies, pages::TICKET_COOKIE),
            now,
        };
        let return_to = header
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        match shield.admit(&facts) {
            FloodVerdict::Continue { mut permit } => {
                // A body still to come holds no place in the upstream's
                // capacity until it has arrived (`request_body_filter`).
                if let Some(p) = permit.as_mut().filter(|_| !session.is_body_empty()) {
                    p.hold_for_body();
                }
                ctx.flood_permit = permit;
                Ok(false)
            }
            FloodVerdict::Limited {
                retry_after_secs,
                scope,
            } => {
                ctx.verdict = Cow::Owned(format!("flood:limited:{scope:?}"));
                self.answer(
                    session,
                    ctx,
                    429,
                    &[("retry-after", &retry_after_secs.to_string())],
                )
                .await?;
                Ok(true)
            }
            FloodVerdict::Challenge(challenge) => {
                ctx.verdict = Cow::Borrowed("flood:challenge");
                if is_browser {
                    let page = challenge.page(&return_to);
                    self.answer_page(
                        session,
                        ctx,
                        403,
                        page,
                        &[("content-security-policy", pages::challenge_csp())],
                    )
                    .await?;
                } else {
                    // An API client (or any client that did not ask for a
                    // page) gets what it can act on: 429, when to retry, and
                    // the proof of work in JSON and in a header, to solve and
                    // post to the verify path for a clearance cookie.
                    let body = serde_json::json!({
                        "error": "challenge_required",
                        "reference": ctx.reference,
                        "retry_after": 1,
                        "challenge": { "token": challenge.token, "difficulty": challenge.difficulty, "verify": pages::VERIFY_PATH },
                    })
                    .to_string();
                    let header = format!(
                        "token={}, difficulty={}, verify={}",
                        challenge.token,
                        challenge.difficulty,
                        pages::VERIFY_PATH
                    );
                    self.write_page(
                        session,
                        ctx,
                        429,
                        "application/json",
                        Bytes::from(body),
                        &[
                            ("retry-after", "1".to_string()),
                            ("rampart-challenge", header),
                        ],
                    )
                    .await?;
                }
                Ok(true)
            }
            FloodVerdict::WaitingRoom {
                position,
                refresh_secs,
                ticket_cookie,
            } => {
                ctx.verdict = Cow::Borrowed("flood:waiting-room");
                let page = pages::waiting_room_page(position, refresh_secs);
                self.answer_page(
                    session,
                    ctx,
                    503,
                    page,
                    &[
                        ("retry-after", refresh_secs.to_string()),
                        ("set-cookie", pages::ticket_set_cookie(&ticket_cookie)),
                    ],
                )
                .await?;
                Ok(true)
            }
            FloodVerdict::Unavailable { retry_after_secs } => {
                ctx.verdict = Cow::Borrowed("flood:unavailable");
                if is_browser {
                    self.answer_page(
                        session,
                        ctx,
                        503,
                        pages::busy_page(retry_after_secs),
                        &[("retry-after", retry_after_secs.to_string())],
                    )
                    .await?;
                } else {
                    self.answer(
                        session,
                        ctx,
                        503,
                        &[("retry-after", &retry_after_secs.to_string())],
                    )
                    .await?;
                }
                Ok(true)
            }
            FloodVerdict::Banned { .. } => {
                ctx.verdict = Cow::Borrowed("flood:banned");
                self.answer(session, ctx, 403, &[]).await?;
                Ok(true)
            }
        }
    }

    /// WAF phases 1 and 2 (2 only for a request without a body; one with a
    /// body is judged as it arrives) on `site`'s engine: the transaction is
    /// kept in the context and its lines are written at once. `None` when
    /// the site has no WAF.
    fn request_waf(
        &self,
        session: &Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
        has_body: bool,
    ) -> Option<Option<Verdict>> {
        let engine = snapshot.sites[site].waf.as_ref()?;
        let header = session.req_header();
        let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let meta = TxMeta {
            remote_addr: ctx.client.map(|c| c.to_string()).unwrap_or_default(),
            remote_port: inet(session.client_addr()).map_or(0, |a| a.port()),
            server_addr: inet(session.server_addr())
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            server_port: inet(session.server_addr()).map_or(0, |a| a.port()),
            unique_id: ctx.reference.clone(),
        };
        let uri = String::from_utf8_lossy(header.raw_path()).into_owned();
        let protocol = protocol_name(header.version);
        let metrics = &self.runtime.metrics;
        let mut tx = engine.transaction(meta);
        let settings = &snapshot.config.sites[site].waf;
        if !settings.exclusions.is_empty() {
            let removals = crate::waf::exclusions_for(
                settings,
                ctx.path.as_ref().map_or("/", |p| p.matching.as_str()),
            );
            tx.remove_rules_by_id(&removals);
        }
        // Header names as the client wrote them (HTTP/1 keeps their case),
        // as ModSecurity shows them in its log.
        let mut verdict = guarded(&metrics.waf_errors, || {
            let method = header.method.as_str();
            if header.has_case() {
                let names = header.case_header_iter().map(|(k, v)| {
                    (
                        std::str::from_utf8(k.as_slice()).unwrap_or(""),
                        v.as_bytes(),
                    )
                });
                tx.process_request_headers(method, &uri, protocol, names)
            } else {
                tx.process_request_headers(
                    method,
                    &uri,
                    protocol,
                    header
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_bytes())),
                )
            }
        });
        // Phase 2 holds CRS's argument checks; for a request without a
        // body it runs now, before any upstream is contacted.
        if !has_body && verdict == Some(Verdict::Continue) {
            verdict = guarded(&metrics.waf_errors, || tx.process_request_body());
        }
        let mut waf = Box::new(WafState {
            tx,
            mode: snapshot.sites[site].waf_mode,
            request_body: Vec::new(),
            released_body: None,
            request_judged: !has_body,
            holding_response: false,
            response_body: Vec::new(),
            response_decoder: None,
            decoded: Vec::new(),
            intervened: false,
            response_status: 0,
            response_headers: Vec::new(),
            lines_written: 0,
        });
        waf.flush_lines(&self.waf_log);
        ctx.waf = Some(waf);
        Some(verdict)
    }

    /// Refuses a request the gateway will not forward (an invalid
    /// authority, a fragment in the target) after the WAF of the site a
    /// request for no name reaches has judged it for its log, as it judges
    /// any other request: a scanner's malformed probes are logged and
    /// counted like its others, and nothing reaches an upstream.
    async fn refuse_judged(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        status: u16,
        verdict: &'static str,
    ) -> Result<bool> {
        let site = snapshot
            .site_for_host("")
            .or((!snapshot.sites.is_empty()).then_some(0));
        if let Some(site) = site {
            ctx.site = Some(site);
            ctx.path = Some(Box::new(crate::resolve::resolve_path(&request_path(
                session.req_header(),
            ))));
            let _ = self.request_waf(session, ctx, snapshot, site, false);
        }
        ctx.verdict = Cow::Borrowed(verdict);
        self.answer(session, ctx, status, &[]).await?;
        Ok(true)
    }

    /// Records that the WAF refused the transaction and says which status
    /// to answer with. A failed evaluation (`None`) refuses with 500.
    fn note_waf_refusal(&self, ctx: &mut RequestContext, verdict: Option<Verdict>) -> u16 {
        if let Some(waf) = ctx.waf.as_mut() {
            waf.intervened = true;
        }
        self.runtime
            .metrics
            .waf_blocks
            .fetch_add(1, Ordering::Relaxed);
        match verdict {
            Some(Verdict::Deny { status, rule_id }) => {
                ctx.verdict = Cow::Owned(format!("waf:block:{rule_id}"));
                status
            }
            Some(Verdict::Redirect { rule_id, .. }) | Some(Verdict::Drop { rule_id }) => {
                ctx.verdict = Cow::Owned(format!("waf:block:{rule_id}"));
                403
            }
            _ => {
                ctx.verdict = Cow::Borrowed("waf:error");
                500
            }
        }
    }

    /// Acts on a request-side verdict. Returns true when a response was sent.
    async fn enforce_request_verdict(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        verdict: Option<Verdict>,
    ) -> Result<bool> {
        match verdict {
            Some(Verdict::Continue) => Ok(false),
            Some(Verdict::Drop { .. }) => {
                self.note_waf_refusal(ctx, verdict);
                Err(Error::explain(
                    ErrorType::ConnectionClosed,
                    "dropped by the WAF",
                ))
            }
            Some(Verdict::Redirect {
                status,
                ref location,
                ..
            }) => {
                let location = location.clone();
                self.note_waf_refusal(ctx, verdict);
                let mut head = ResponseHeader::build(status, Some(3))?;
                head.insert_header("location", location)?;
                head.insert_header("content-length", "0")?;
                head.insert_header("x-request-id", ctx.reference.as_str())?;
                session.set_keepalive(None);
                session.write_response_header(Box::new(head), true).await?;
                Ok(true)
            }
            other => {
                let status = self.note_waf_refusal(ctx, other);
                self.answer(session, ctx, status, &[]).await?;
                Ok(true)
            }
        }
    }

    /// Phase 5, the error log lines and the audit record.
    fn finish_waf(&self, session: &Session, ctx: &mut RequestContext, status: u16) {
        let Some(waf) = ctx.waf.as_mut() else { return };
        let metrics = &self.runtime.metrics;
        guarded(&metrics.waf_errors, || waf.tx.process_logging());
        waf.flush_lines(&self.waf_log);
        let matched = waf.tx.matched_rules();
        let logged = matched.iter().any(|m| m.logged);
        if logged && !waf.intervened {
            metrics.waf_detections.fetch_add(1, Ordering::Relaxed);
            if ctx.verdict == "allow" {
                ctx.verdict = Cow::Borrowed(if waf.mode == WafMode::On {
                    "waf:logged"
                } else {
                    "waf:detect"
                });
            }
        }
        if !(logged || waf.intervened) || !self.audit_log.enabled() {
            return;
        }
        let header = session.req_header();
        let content_type = header
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body: &[u8] = match &waf.released_body {
            Some(b) => b,
            None => &waf.request_body,
        };
        let client = session.client_addr().and_then(|a| a.as_inet()).copied();
        let server = session.server_addr().and_then(|a| a.as_inet()).copied();
        let entry = AuditEntry {
            time: now_rfc3339(),
            unique_id: &ctx.reference,
            client_ip: ctx.client.map(|c| c.to_string()).unwrap_or_default(),
            client_port: client.map_or(0, |a| a.port()),
            host_ip: server.map(|a| a.ip().to_string()).unwrap_or_default(),
            host_port: server.map_or(0, |a| a.port()),
            method: header.method.as_str(),
            uri: header.uri.path_and_query().map_or("/", |p| p.as_str()),
            http_version: protocol_name(header.version),
            request_headers: header
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            request_body: masked_body(content_type, body),
            response_status: if status > 0 {
                status
            } else {
                waf.response_status
            },
            response_headers: std::mem::take(&mut waf.response_headers),
            engine_mode: waf.mode,
            matched,
            intervened: waf.intervened,
        };
        self.audit_log.send(audit_line(&entry));
    }
}

fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
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
            verdict: Cow::Borrowed("allow"),
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
                .refuse_judged(session, ctx, &snapshot, 405, "bad-request:connect")
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
                .refuse_judged(session, ctx, &snapshot, 400, "bad-request:fragment")
                .await;
        }
        let path = crate::resolve::resolve_path(&request_path(header));
        let Some(site) = snapshot.site_for_host(&authority.host) else {
            ctx.verdict = Cow::Borrowed("unknown-site");
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
            ctx.verdict = Cow::Borrowed("limit:header-size");
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
            ctx.verdict = Cow::Borrowed("limit:body-size");
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
            ctx.verdict = Cow::Borrowed("waf:uninspectable-body");
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
            ctx.verdict = Cow::Borrowed("limit:body-size");
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
                    Some(Verdict::Continue) => {
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
            let kept = ctx.verdict == "allow"
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
                ctx.verdict = Cow::Borrowed("upstream-failure:unrequested-101");
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
            if verdict != Some(Verdict::Continue) {
                let status = self.note_waf_refusal(ctx, verdict);
                return Err(status_error(status, "response refused by the WAF"));
            }
            // Bodies of the inspected types are held for phase 4; a
            // compressed one is decoded for the engine (as for the leak
            // guard). One in an encoding that cannot be decoded passes
            // uninspected, counted in `rampart_waf_uninspectable_total`:
            // the Core Rule Set's response rules report, they do not block
            // by default, so refusing it would cost more than it protects.
            let encoding = response
                .headers
                .get(http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
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
                            ctx.verdict = Cow::Borrowed("waf:uninspectable");
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
                let encoding = response
                    .headers
                    .get(http::header::CONTENT_ENCODING)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
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
                            ctx.verdict = Cow::Borrowed("leak:uninspectable");
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
                && ctx.verdict == "allow"
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
        if status >= 500 && ctx.verdict == "allow" {
            ctx.verdict = Cow::Borrowed("upstream-failure");
            // The origin failed: a kept copy, even a stale one, beats an error page.
            if (502..=504).contains(&status) && session.response_written().is_none() {
                if let Some((copy, freshness)) = ctx.cache_key.and_then(|key| {
                    self.runtime
                        .cache
                        .get(key, crate::incidents::now_ms() as u64)
                }) {
                    ctx.verdict = Cow::Borrowed("cache:stale-on-error");
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
            ctx.verdict = Cow::Borrowed("upstream-failure:retry-page");
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
            s.sites[i]
                .metrics
                .traffic
                .count(traffic_outcome(&ctx.verdict));
            if self.runtime.events.enabled() {
                self.record_request_event(ctx, site_name, route_prefix, status, e);
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
            if let (Some(client), true) = (ctx.client, ctx.verdict.starts_with("waf:block")) {
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
            verdict: &ctx.verdict,
            error: e.map(|e| e.etype().as_str().to_string()),
        };
        self.access_log.write(&record);
    }
}

impl Gateway {
    /// The serve-stale cache, request side: notes the key of an anonymous
    /// GET or HEAD, and answers from a kept copy when the origin should be
    /// spared (the site is under attack) or cannot answer (no healthy
    /// upstream server). Returns true when it answered.
    async fn serve_from_cache(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
        host: &str,
    ) -> Result<bool> {
        let cache = &self.runtime.cache;
        if !cache.config().enabled || ctx.upgrade {
            return Ok(false);
        }
        let header = session.req_header();
        // The gateway's own clearance and ticket cookies say nothing about
        // who the visitor is to the site; any other cookie may.
        let site_cookies = header.headers.get_all("cookie").iter().any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(';').map(str::trim).any(|c| {
                    !c.is_empty()
                        && !c.starts_with("rampart_clearance=")
                        && !c.starts_with("rampart_ticket=")
                })
            })
        });
        if !rampart_cache::request_is_cacheable(
            header.method.as_str(),
            site_cookies,
            header.headers.contains_key("authorization"),
        ) {
            return Ok(false);
        }
        // The key is made of the resolved authority and the forwarded
        // target, so every spelling of a page shares one copy.
        let target = forwarded_target(
            ctx.path.as_ref().map_or("/", |p| p.forwarded.as_str()),
            header.raw_path(),
        );
        let target = String::from_utf8_lossy(&target);
        let encoding = header
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok());
        let key = cache.key(&snapshot.sites[site].name, host, &target, encoding);
        ctx.cache_key = Some(key);
        let under_attack = match (ctx.flood_site, &snapshot.flood) {
            (Some(id), Some(flood)) => flood.shield.under_attack(id),
            _ => false,
        };
        let origin_down = ctx.pool().is_some_and(|p| p.up_count() == 0);
        if !(under_attack || origin_down) {
            return Ok(false);
        }
        let Some((copy, freshness)) = cache.get(key, crate::incidents::now_ms() as u64) else {
            return Ok(false);
        };
        ctx.verdict = Cow::Borrowed(if under_attack {
            "cache:under-attack"
        } else {
            "cache:origin-down"
        });
        self.write_cached(session, ctx, &copy, freshness).await?;
        Ok(true)
    }

    /// Sends a kept copy, marked with its age and whether it was stale.
    async fn write_cached(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        copy: &rampart_cache::CachedResponse,
        freshness: rampart_cache::Freshness,
    ) -> Result<()> {
        let mut head = ResponseHeader::build(copy.status, Some(copy.headers.len() + 4))?;
        for (name, value) in &copy.headers {
            head.append_header(name.clone(), value.as_str())?;
        }
        head.insert_header("content-length", copy.body.len().to_string())?;
        head.insert_header(
            "age",
            copy.age_secs(crate::incidents::now_ms() as u64).to_string(),
        )?;
        head.insert_header(
            "x-rampart-cache",
            if freshness == rampart_cache::Freshness::Fresh {
                "hit"
            } else {
                "stale"
            },
        )?;
        head.insert_header("x-request-id", ctx.reference.as_str())?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(head), head_only)
            .await?;
        if !head_only {
            session
                .write_response_body(Some(copy.body.clone()), true)
                .await?;
        }
        Ok(())
    }

    /// The serve-stale cache, response side: copies the bytes that went to
    /// the client and keeps them at the end, if no layer objected.
    fn fill_cache(&self, body: &Option<Bytes>, end_of_stream: bool, ctx: &mut RequestContext) {
        let Some(fill) = ctx.cache_fill.as_mut() else {
            return;
        };
        if let Some(chunk) = body {
            if fill.body.len() + chunk.len() > self.runtime.cache.config().max_entry_bytes {
                ctx.cache_fill = None;
                return;
            }
            fill.body.extend_from_slice(chunk);
        }
        if end_of_stream {
            fill.complete = true;
            // A page whose last chunk the leak guard scans after sending is
            // stored once that scan has given its verdict.
            if ctx.leak.as_ref().is_none_or(|l| l.deferred.is_none()) {
                self.store_cache(ctx);
            }
        }
    }

    /// Keeps a completely copied response in the serve-stale cache, unless a
    /// layer objected to it.
    fn store_cache(&self, ctx: &mut RequestContext) {
        let Some(fill) = ctx.cache_fill.take() else {
            return;
        };
        if !fill.complete {
            return;
        }
        // A page whose only findings the leak guard's policy allows (the
        // contact address in a footer) is as clean as one without any;
        // an alerted, redacted or blocked one is never kept to be served
        // again unscanned.
        let allowed = ctx.verdict == "allow" || ctx.verdict.starts_with("leak:allow:");
        let clean = allowed && !ctx.waf.as_ref().is_some_and(|w| w.intervened);
        if clean {
            if let Some(key) = ctx.cache_key {
                self.runtime.cache.put(
                    key,
                    fill.status,
                    &fill.headers,
                    Bytes::from(fill.body),
                    fill.keep_for,
                    crate::incidents::now_ms() as u64,
                );
            }
        }
    }
}

/// How a request's verdict counts in the per-second traffic samples.
fn traffic_outcome(verdict: &str) -> crate::incidents::Outcome {
    use crate::incidents::Outcome;
    let (layer, rest) = verdict.split_once(':').unwrap_or((verdict, ""));
    match layer {
        "waf" if rest.starts_with("block") || rest == "error" => Outcome::Blocked,
        "flood" if rest == "challenge" => Outcome::Challenged,
        "flood"
            if rest.starts_with("limited") || rest == "waiting-room" || rest == "unavailable" =>
        {
            Outcome::Limited
        }
        "flood" if rest == "banned" || rest.starts_with("challenge-rejected") => Outcome::Blocked,
        "limit" | "unknown-site" | "bad-request" => Outcome::Blocked,
        "leak"
            if rest.starts_with("block")
                || rest.starts_with("too-large")
                || rest == "error-cut-off" =>
        {
            Outcome::Blocked
        }
        "upstream-failure" => Outcome::UpstreamError,
        "cache" if rest == "stale-on-error" => Outcome::UpstreamError,
        _ => Outcome::Passed,
    }
}

impl Gateway {
    /// The event a finished request leaves in the store, if its verdict is
    /// one an incident is made of. Allowed requests leave none: the traffic
    /// samples count them.
    fn record_request_event(
        &self,
        ctx: &RequestContext,
        site: &str,
        route: &str,
        status: u16,
        error: Option<&Error>,
    ) {
        use rampart_incidents::EventKind;
        let verdict: &str = &ctx.verdict;
        // High-volume kinds (a flood refused or challenged request by request,
        // a detection on every request) are kept once per client per second;
        // the check comes first so that a thinned event costs no allocation.
        let tag = match verdict.split_once(':').unwrap_or((verdict, "")) {
            ("flood", "challenge") => Some(1),
            ("flood", rest) if rest.starts_with("limited") => Some(2),
            ("flood", "waiting-room" | "unavailable") => Some(3),
            ("waf", "logged" | "detect") => Some(4),
            ("flood", rest) if rest.starts_with("cleared") => Some(5),
            _ => None,
        };
        if let (Some(tag), Some(client)) = (tag, ctx.client) {
            let second = (crate::incidents::now_ms() / 1000) as u64;
            if !self
                .runtime
                .events
                .throttle
                .first_this_second(client, tag, second)
            {
                return;
            }
        }
        let waf_findings = || {
            let Some(waf) = ctx.waf.as_ref() else {
                return (Vec::new(), 0, Vec::new());
            };
            let mut rules = Vec::new();
            let mut attacks: Vec<String> = Vec::new();
            for m in waf.tx.matched_rules().iter().filter(|m| m.logged) {
                if rules.len() < 32 && !rules.contains(&m.id) {
                    rules.push(m.id);
                }
                for tag in &m.tags {
                    if let Some(attack) = tag.strip_prefix("attack-") {
                        if attacks.len() < 8 && !attacks.iter().any(|a| a == attack) {
                            attacks.push(attack.to_string());
                        }
                    }
                }
            }
            let score = waf
                .tx
                .tx_var("blocking_inbound_anomaly_score")
                .or_else(|| waf.tx.tx_var("anomaly_score"))
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                .unwrap_or(0);
            (rules, score, attacks)
        };
        let kind = match verdict.split_once(':').unwrap_or((verdict, "")) {
            ("waf", rest) if rest.starts_with("block") => {
                let (rules, score, attacks) = waf_findings();
                EventKind::WafBlock {
                    rules,
                    score,
                    attacks,
                    status,
                }
            }
            ("waf", "logged" | "detect") => {
                let (rules, score, attacks) = waf_findings();
                EventKind::WafMatch {
                    rules,
                    score,
                    attacks,
                }
            }
            ("flood", "challenge") => EventKind::Challenged,
            ("flood", rest) if rest.starts_with("cleared") => EventKind::Cleared,
            ("flood", rest) if rest.starts_with("limited") => EventKind::RateLimited {
                scope: rest.trim_start_matches("limited:").to_ascii_lowercase(),
            },
            ("flood", "waiting-room" | "unavailable") => EventKind::Queued,
            ("upstream-failure", _) | ("cache", "stale-on-error") => EventKind::UpstreamFailure {
                status,
                reason: error.map_or_else(
                    || format!("answered {status}"),
                    |e| e.etype().as_str().to_string(),
                ),
            },
            _ => return,
        };
        self.runtime.events.record(site, ctx.client, route, kind);
    }
}

/// The path of a request's target, without its query: from the raw bytes
/// in origin form (the URI parser may have been lenient with them), from
/// the parsed URI in absolute form.
fn request_path(header: &pingora::http::RequestHeader) -> Cow<'_, str> {
    let raw = header.raw_path();
    if raw.first() == Some(&b'/') {
        let end = raw.iter().position(|&b| b == b'?').unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end])
    } else {
        Cow::Borrowed(header.uri.path())
    }
}

/// Removes the client's hop-by-hop headers from the upstream request: the
/// ones RFC 9110 section 7.6.1 names, and any the client listed in
/// `Connection`, which a proxy must not forward. Done before the gateway
/// adds its own, so a client cannot list `X-Forwarded-For` or `X-Real-IP`
/// there to have a proxy behind us drop what the gateway wrote. An allowed
/// upgrade keeps `Connection: upgrade` and its `Upgrade`.
fn strip_connection_headers(upstream: &mut pingora::http::RequestHeader, upgrade: bool) {
    let listed: Vec<String> = upstream
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| {
            !t.is_empty() && t != "host" && t != "upgrade" && t != "close" && t != "keep-alive"
        })
        .collect();
    for name in &listed {
        upstream.remove_header(name.as_str());
    }
    for name in ["keep-alive", "proxy-connection", "te", "trailer"] {
        upstream.remove_header(name);
    }
    upstream.remove_header(&http::header::CONNECTION);
    if upgrade {
        let _ = upstream.insert_header(http::header::CONNECTION, "upgrade");
    }
}

/// Every value of a header, joined with `, ` in the order sent (RFC 9110
/// section 5.3); `None` when absent. A value that is not text makes the
/// whole header unreadable (`None`), so no line is silently skipped.
fn joined_header_values(headers: &http::HeaderMap, name: &str) -> Option<String> {
    let mut joined: Option<String> = None;
    for value in headers.get_all(name) {
        let text = value.to_str().ok()?;
        match joined.as_mut() {
            None => joined = Some(text.to_string()),
            Some(j) => {
                j.push_str(", ");
                j.push_str(text);
            }
        }
    }
    joined
}

/// The origin-form target the upstream is sent: the normalised path and
/// the query exactly as the client wrote it.
fn forwarded_target(forwarded_path: &str, raw_target: &[u8]) -> Vec<u8> {
    let mut target = Vec::with_capacity(raw_target.len() + 1);
    target.extend_from_slice(forwarded_path.as_bytes());
    if let Some(q) = raw_target.iter().position(|&b| b == b'?') {
        target.extend_from_slice(&raw_target[q..]);
    }
    target
}

/// The leak guard's policy for a request, from its resolved site and path.
fn request_leak_policy<'a>(
    snapshot: &'a Snapshot,
    ctx: &RequestContext,
) -> Option<&'a rampart_leakguard::RoutePolicy> {
    let leak = snapshot.leak.as_ref()?;
    let site = &snapshot.sites[ctx.site?];
    Some(leak.policies.route_among(
        &site.leak_sites,
        ctx.path.as_ref().map_or("/", |p| p.matching.as_str()),
    ))
}

/// [`request_leak_policy`] for the snapshot the request holds.
fn request_leak_policy_of<'a>(
    leak: &'a crate::leak::LeakRuntime,
    ctx: &RequestContext,
) -> &'a rampart_leakguard::RoutePolicy {
    let sites = match (&ctx.snapshot, ctx.site) {
        (Some(s), Some(i)) => s.sites[i].leak_sites.as_slice(),
        _ => &[],
    };
    leak.policies.route_among(
        sites,
        ctx.path.as_ref().map_or("/", |p| p.matching.as_str()),
    )
}

impl Gateway {
    /// Phase 4: holds inspected response types back until the WAF has
    /// judged them.
    fn waf_response_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<Option<Duration>> {
        let Some(waf) = ctx.waf.as_mut() else {
            return Ok(None);
        };
        if !waf.holding_response {
            return Ok(None);
        }
        let mut undecodable = false;
        if let Some(chunk) = body.take() {
            match waf.response_decoder.as_mut() {
                Some(decoder) => {
                    waf.decoded.clear();
                    undecodable = decoder.push(&chunk, &mut waf.decoded).is_err();
                    if end_of_stream && !undecodable {
                        undecodable = decoder.finish(&mut waf.decoded).is_err();
                    }
                    waf.tx.append_response_body(&waf.decoded);
                }
                None => waf.tx.append_response_body(&chunk),
            }
            waf.response_body.extend_from_slice(&chunk);
        }
        if undecodable {
            // Corrupt or a bomb: judged on what decoded, and counted.
            self.runtime
                .metrics
                .waf_uninspectable
                .fetch_add(1, Ordering::Relaxed);
        }
        if end_of_stream || undecodable || waf.response_body.len() >= RESPONSE_INSPECTION_CAP {
            waf.holding_response = false;
            waf.response_decoder = None;
            let verdict = guarded(&self.runtime.metrics.waf_errors, || {
                waf.tx.process_response_body()
            });
            waf.flush_lines(&self.waf_log);
            if verdict != Some(Verdict::Continue) {
                // The status line is already on its way, so the only safe
                // answer is to cut the response off before the body leaks.
                self.note_waf_refusal(ctx, verdict);
                return Err(Error::explain(
                    ErrorType::HTTPStatus(403),
                    "response body refused by the WAF",
                ));
            }
            *body = Some(Bytes::from(std::mem::take(&mut waf.response_body)));
        }
        Ok(None)
    }
}

impl Gateway {
    /// The leak guard on a streamed response: scans each piece after
    /// decoding; redact routes send the masked text, others the original
    /// bytes. A block found mid-stream can only cut the response off. Where
    /// the scan can only report, an unencoded body's last piece is left to
    /// [`finish_deferred_leak`](Self::finish_deferred_leak) in the logging phase.
    fn leak_response_body(
        &self,
        session: &Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        let Some(leak) = ctx.leak.as_mut() else {
            return Ok(());
        };
        let only_reports = leak.only_reports;
        if end_of_stream && leak.decoder.is_none() && only_reports {
            // Nothing the scan can find would change or stop this response,
            // so its last chunk is scanned in the logging phase, once it has
            // gone: the client does not wait for the scan. Keeping the chunk
            // costs a reference count, not a copy.
            leak.deferred = Some(body.clone().unwrap_or_default());
            return Ok(());
        }
        // A panic inside the scanner costs this response, not the process.
        // Where the scan could stop or change the response it is cut off
        // rather than sent unscanned.
        let Some((blocked, outcome)) = guarded(&self.runtime.metrics.leak_errors, || {
            scan_piece(leak, body, end_of_stream)
        }) else {
            drop_failed_leak(ctx, !only_reports);
            return if !only_reports {
                Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    "response cut off: the leak guard failed",
                ))
            } else {
                Ok(())
            };
        };
        if let Some(outcome) = outcome {
            self.settle_leak(ctx, &outcome);
            if blocked || outcome.action == rampart_leakguard::Action::Block {
                let _ = session;
                return Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    "response cut off by the leak guard",
                ));
            }
        }
        Ok(())
    }

    /// Records a response's leak-guard outcome (event, verdict) and returns
    /// its state to the pool.
    fn settle_leak(&self, ctx: &mut RequestContext, outcome: &rampart_leakguard::Outcome) {
        let (site, route) = site_and_route(ctx);
        if let Some(verdict) = leak_outcome(
            &self.runtime,
            ctx.client,
            &ctx.reference,
            site,
            route,
            outcome,
        ) {
            ctx.verdict = Cow::Owned(verdict);
        }
        if let (Some(state), Some(runtime)) = (ctx.leak.take(), snapshot_leak(ctx)) {
            runtime.give_back(state);
        }
    }

    /// The scan [`leak_response_body`](Self::leak_response_body) left for
    /// after the response: its last chunk, the outcome, and then the cache
    /// decision that waits for the outcome's verdict.
    fn finish_deferred_leak(&self, ctx: &mut RequestContext) {
        let Some(leak) = ctx.leak.as_mut() else {
            return;
        };
        let Some(last) = leak.deferred.take() else {
            return;
        };
        let outcome = guarded(&self.runtime.metrics.leak_errors, || {
            leak.scanner.inspect_last(&last)
        });
        drop(last);
        // The response has gone either way; a failed scan is only recorded.
        let Some(outcome) = outcome else {
            return drop_failed_leak(ctx, false);
        };
        self.settle_leak(ctx, &outcome);
        self.store_cache(ctx);
    }

    /// A `block` route: fetch the whole response, judge it, then send it or
    /// an error page. Returns true when it answered the request.
    async fn leak_block_route(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
    ) -> Result<bool> {
        use rampart_leakguard::Action;
        let Some(leak) = &snapshot.leak else {
            return Ok(false);
        };
        let method = session.req_header().method.clone();
        if ctx.upgrade || !(method == http::Method::GET || method == http::Method::HEAD) {
            return Ok(false);
        }
        let Some(policy) = request_leak_policy(snapshot, ctx).cloned() else {
            return Ok(false);
        };
        if policy.action != Action::Block {
            return Ok(false);
        }
        let Some(pool) = ctx.pool().cloned() else {
            return Ok(false);
        };
        let Some(index) = pool.pick(0) else {
            self.answer(session, ctx, 503, &[("retry-after", "5")])
                .await?;
            return Ok(true);
        };
        ctx.server = Some(index);
        ctx.upstream_sent = Some(Instant::now());
        let limits = &snapshot.config.limits;
        let header = session.req_header();
        // The same target and authority the proxy would send (see
        // `upstream_request_filter`), over HTTP/1.1 whatever the client spoke.
        let target = forwarded_target(
            ctx.path.as_ref().map_or("/", |p| p.forwarded.as_str()),
            header.raw_path(),
        );
        let authority = ctx
            .authority
            .as_ref()
            .map(|a| a.header_value())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| pool.servers[index].address.to_string());
        let forwarded = ctx.client.map(|c| c.to_string()).unwrap_or_default();
        let proto = if self.tls { "https" } else { "http" };
        let request = (|| -> Result<pingora::http::RequestHeader> {
            let mut request = pingora::http::RequestHeader::build(method.clone(), &target, None)?;
            request.insert_header(http::header::HOST, authority.as_str())?;
            for (name, value) in header.headers.iter() {
                if !crate::leak::is_not_forwarded(name.as_str()) {
                    request.append_header(name.clone(), value.clone())?;
                }
            }
            request.insert_header("x-forwarded-for", forwarded.as_str())?;
            request.insert_header("x-real-ip", forwarded.as_str())?;
            request.insert_header("x-forwarded-proto", proto)?;
            request.insert_header("x-request-id", ctx.reference.as_str())?;
            request.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
            request.insert_header(http::header::CONNECTION, "close")?;
            Ok(request)
        })()?;
        let peer = crate::upstream::peer(
            pool.servers[index].address,
            pool.definition.tls_sni.as_deref(),
            limits.upstream_connect_timeout,
            limits.upstream_read_timeout,
        );
        let fetched =
            crate::upstream::fetch(&self.connector, &peer, request, policy.max_buffered).await;
        let response = match fetched {
            Ok(r) => {
                pool.report_success(index);
                ctx.upstream_status = Some(r.status);
                ctx.upstream_latency = ctx.upstream_sent.map(|t| t.elapsed());
                r
            }
            Err(e) => {
                let status = match e {
                    crate::upstream::FetchError::Timeout => 504,
                    crate::upstream::FetchError::TooLarge => {
                        // The upstream answered; only the size was too much,
                        // which says nothing of its load.
                        ctx.upstream_status = Some(200);
                        ctx.verdict = Cow::Borrowed("leak:too-large-to-judge");
                        503
                    }
                    crate::upstream::FetchError::Connect => {
                        if pool.report_failure(index) {
                            self.runtime
                                .metrics
                                .upstream_ejections
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        502
                    }
                    crate::upstream::FetchError::Invalid(_) => 502,
                };
                if status >= 500 && ctx.verdict == "allow" {
                    ctx.verdict = Cow::Borrowed("upstream-failure");
                }
                self.answer(session, ctx, status, &[]).await?;
                return Ok(true);
            }
        };
        let content_type = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let mut body = response.body;
        if rampart_leakguard::is_scannable(&content_type) {
            // The fetch asked for `identity`, but an origin may send a
            // compressed body whatever it is asked (pre-compressed files):
            // it is decoded before the verdict, and one that cannot be
            // decoded is not sent unjudged.
            let encoding = response
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
            let decoded = match &encoding {
                None => None,
                Some(e) => match decode_whole(e, &body) {
                    Some(plain) => Some(plain),
                    None => {
                        ctx.verdict = Cow::Borrowed("leak:uninspectable");
                        self.runtime
                            .metrics
                            .leak_uninspectable
                            .fetch_add(1, Ordering::Relaxed);
                        self.answer(session, ctx, 502, &[]).await?;
                        return Ok(true);
                    }
                },
            };
            let mut state = leak.response_state(&policy, None, false);
            let mut out = Vec::with_capacity(body.len());
            let judged: &[u8] = decoded.as_deref().unwrap_or(&body);
            let scanned = guarded(&self.runtime.metrics.leak_errors, || {
                state.scanner.push(judged, &mut out);
                state.scanner.finish(&mut out)
            });
            // A panic inside the scanner: the state is not pooled again and
            // the response, unjudged, is not sent.
            let Some(outcome) = scanned else {
                drop_failed_leak(ctx, true);
                self.answer(session, ctx, 503, &[]).await?;
                return Ok(true);
            };
            leak.give_back(state);
            let route = ctx.route.map_or(String::new(), |r| {
                snapshot.sites[site].routes[r].prefix.clone()
            });
            if let Some(verdict) = leak_outcome(
                &self.runtime,
                ctx.client,
                &ctx.reference,
                &snapshot.sites[site].name,
                &route,
                &outcome,
            ) {
                ctx.verdict = Cow::Owned(verdict);
            }
            if outcome.action == Action::Block {
                self.answer(session, ctx, 503, &[]).await?;
                return Ok(true);
            }
            // An encoded body passed the scan decoded; the client gets the
            // bytes and the encoding the origin sent.
            if decoded.is_none() {
                body = out;
            }
        }
        let mut reply = ResponseHeader::build(response.status, Some(response.headers.len() + 2))?;
        for (name, value) in &response.headers {
            if crate::leak::is_hop_by_hop(name) {
                continue;
            }
            reply.append_header(name.clone(), value.as_slice())?;
        }
        reply.insert_header("content-length", body.len().to_string())?;
        reply.insert_header("x-request-id", ctx.reference.as_str())?;
        let head_only = method == http::Method::HEAD;
        session
            .write_response_header(Box::new(reply), head_only)
            .await?;
        if !head_only {
            session
                .write_response_body(Some(Bytes::from(body)), true)
                .await?;
        }
        Ok(true)
    }
}

/// A whole encoded body decoded for judging, within the leak guard's
/// decoding cap; `None` when the encoding is unknown, the bytes are
/// corrupt or they expand past the cap.
fn decode_whole(encoding: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = rampart_decode::LayeredDecoder::new(encoding, LEAK_DECODE_CAP).ok()?;
    let mut plain = Vec::with_capacity(body.len() * 4);
    decoder.push(body, &mut plain).ok()?;
    decoder.finish(&mut plain).ok()?;
    Some(plain)
}

/// One piece of a streamed response through its leak-guard state: decoded,
/// scanned, and on a redact route replaced in `body` by the masked text.
/// Returns whether the scan blocked and, at the end of the body or on a
/// block, the outcome.
fn scan_piece(
    leak: &mut crate::leak::ResponseLeakState,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> (bool, Option<rampart_leakguard::Outcome>) {
    let mut blocked = false;
    let mut finished = None;
    if let Some(chunk) = body.as_ref() {
        let input: &[u8] = match leak.decoder.as_mut() {
            Some(decoder) => {
                leak.decoded.clear();
                if decoder.push(chunk, &mut leak.decoded).is_err() {
                    blocked = true;
                }
                &leak.decoded
            }
            None => chunk,
        };
        // Only a redact route sends the scanner's output; the others
        // send the original bytes, so the scanner need not copy them.
        let progress = if leak.redact {
            leak.out.clear();
            leak.scanner.push(input, &mut leak.out)
        } else if end_of_stream && leak.decoder.is_none() {
            // The last chunk of an unencoded body: scanned to its end
            // and finished in one call, with nothing carried over.
            finished = Some(leak.scanner.inspect_last(input));
            rampart_leakguard::Progress::Continue
        } else {
            leak.scanner.inspect(input)
        };
        if progress == rampart_leakguard::Progress::Block {
            blocked = true;
        }
        if leak.redact {
            *body = Some(Bytes::copy_from_slice(&leak.out));
        }
    }
    if !(end_of_stream || blocked) {
        return (blocked, None);
    }
    // What the scanner still sends on a redact route: the masked
    // form of the decoder's last bytes, then what it held back.
    let mut rest = Vec::new();
    let outcome = match finished {
        Some(outcome) => outcome,
        None => {
            if let Some(decoder) = leak.decoder.as_mut() {
                leak.decoded.clear();
                let _ = decoder.finish(&mut leak.decoded);
                if leak.redact {
                    leak.scanner.push(&leak.decoded, &mut rest);
                } else {
                    leak.scanner.inspect(&leak.decoded);
                }
            }
            leak.scanner.finish(&mut rest)
        }
    };
    if leak.redact {
        let mut last = body.take().map(|b| b.to_vec()).unwrap_or_default();
        last.extend_from_slice(&rest);
        *body = Some(Bytes::from(last));
    }
    (blocked, Some(outcome))
}

/// Forgets a response's leak-guard state after a panic inside the scanner
/// (it is never pooled again) and marks the request for the access log and
/// the traffic counts: `leak:error` when the response went out unscanned,
/// `leak:error-cut-off` when it was refused or cut off (counted as blocked).
fn drop_failed_leak(ctx: &mut RequestContext, cut_off: bool) {
    ctx.leak = None;
    ctx.verdict = Cow::Borrowed(if cut_off {
        "leak:error-cut-off"
    } else {
        "leak:error"
    });
}

/// The site name and route prefix of a request, for events.
fn site_and_route(ctx: &RequestContext) -> (&str, &str) {
    match (&ctx.snapshot, ctx.site) {
        (Some(s), Some(i)) => (
            s.sites[i].name.as_str(),
            ctx.route
                .map_or("", |r| s.sites[i].routes[r].prefix.as_str()),
        ),
        _ => ("", ""),
    }
}

/// The leak guard of the request's snapshot.
fn snapshot_leak(ctx: &RequestContext) -> Option<&crate::leak::LeakRuntime> {
    ctx.snapshot.as_ref()?.leak.as_ref()
}

#[cfg(test)]
mod tests {
    /// A header the client lists in `Connection` is not forwarded, so it
    /// cannot name the forwarding headers the gateway adds afterwards.
    #[test]
    fn connection_listed_headers_are_not_forwarded() {
        let mut request = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        request
            .insert_header("connection", "close, X-Forwarded-For, x-secret")
            .unwrap();
        request.insert_header("x-secret", "1").unwrap();
        request.insert_header("x-forwarded-for", "6.6.6.6").unwrap();
        request.insert_header("te", "trailers").unwrap();
        request.insert_header("accept", "text/html").unwrap();
        super::strip_connection_headers(&mut request, false);
        for gone in ["connection", "x-secret", "x-forwarded-for", "te"] {
            assert!(request.headers.get(gone).is_none(), "{gone}");
        }
        assert!(request.headers.get("accept").is_some());
        let mut upgrade = pingora::http::RequestHeader::build("GET", b"/ws", None).unwrap();
        upgrade.insert_header("connection", "Upgrade").unwrap();
        upgrade.insert_header("upgrade", "websocket").unwrap();
        super::strip_connection_headers(&mut upgrade, true);
        assert_eq!(upgrade.headers.get("connection").unwrap(), "upgrade");
        assert!(upgrade.headers.get("upgrade").is_some());
    }

    #[test]
    fn the_upstream_target_keeps_the_query_as_written() {
        assert_eq!(
            super::forwarded_target("/donations/feed", b"/%64onations/feed?a=%2e&b"),
            b"/donations/feed?a=%2e&b".to_vec()
        );
        assert_eq!(super::forwarded_target("/", b"http://x/"), b"/".to_vec());
    }

    /// A leak-guard failure counts as blocked only where the response was
    /// refused or cut off; sent unscanned, it passed.
    #[test]
    fn leak_guard_failures_count_by_what_the_client_got() {
        use crate::incidents::Outcome;
        assert_eq!(
            super::traffic_outcome("leak:error-cut-off"),
            Outcome::Blocked
        );
        assert_eq!(super::traffic_outcome("leak:error"), Outcome::Passed);
        assert_eq!(
            super::traffic_outcome("leak:block:donor_list"),
            Outcome::Blocked
        );
    }

    /// A panic inside an inspection step becomes `None` and is counted; a
    /// step that returns is passed through and counts nothing.
    #[test]
    fn a_panicking_inspection_step_is_counted_not_propagated() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let failures = AtomicU64::new(0);
        assert_eq!(super::guarded(&failures, || 7), Some(7));
        assert_eq!(failures.load(Ordering::Relaxed), 0);
        let failed: Option<u32> = super::guarded(&failures, || panic!("a bug in a layer"));
        assert_eq!(failed, None);
        assert_eq!(failures.load(Ordering::Relaxed), 1);
    }
}

#[cfg(test)]
mod size_probe {
    /// Pingora keeps the context inside each request's future, which is
    /// moved as a whole; the layers' large state stays behind a pointer.
    #[test]
    fn the_request_context_stays_small() {
        let size = std::mem::size_of::<super::RequestContext>();
        assert!(
            size <= 512,
            "RequestContext is {size} bytes; box the large parts"
        );
    }
}
