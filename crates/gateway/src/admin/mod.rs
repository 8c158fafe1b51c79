//! The admin listener: metrics and health for scrapers, the admin API
//! under `/api/v1/`, and the console (the dashboard) at `/`; loopback by
//! default. `docs/console.md` describes every route.
//!
//! `GET /metrics` (Prometheus text) and `GET /healthz` are open, and so are
//! the dashboard's own files and the API's OpenAPI document, which hold no
//! data. Every other `/api/v1/` route needs the admin token: as
//! `Authorization: Bearer TOKEN`, or through a console session (the cookie
//! `POST /api/v1/session` sets), in which case a change also needs the
//! session's CSRF token as `X-CSRF-Token`. 401 without, 403 with a wrong
//! CSRF token.
//!
//! Whatever the path, a request is refused with 403 when a browser could
//! have been made to send it: a `Host` that is a name other than
//! `localhost` (DNS rebinding: a page of `evil.example`, whose name now
//! points at 127.0.0.1, still sends `Host: evil.example`), an `Origin` other
//! than the listener's own (as the `Host` names it), or a `Sec-Fetch-Site`
//! that says another site asked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::Response;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use rampart_console::session::{Sessions, SignInThrottle};

use crate::runtime::Runtime;

mod api;
mod live;
mod token;

pub use token::{load_or_create_token, parse_token, read_token_file, rotate_token, token_file};

/// The largest request body the admin API reads; its bodies are a few
/// short fields.
const MAX_BODY: usize = 64 * 1024;

/// The session cookie's name.
const COOKIE: &str = "rampart_session";

pub struct AdminApp {
    pub runtime: Arc<Runtime>,
    token: TokenWatch,
    sessions: Sessions,
    throttle: SignInThrottle,
    /// Whether the listener has TLS: the console's own origin is then
    /// `https://`, and its cookie is `Secure`.
    tls: bool,
    /// Changes that write a file and reload (exclusions) go one at a time.
    changes: tokio::sync::Mutex<()>,
    /// The top lists, kept for a few seconds: each open console asks every
    /// five, and during an attack each answer reads thousands of events.
    top_cache: AnswerCache,
}

/// One recent JSON answer, by its query, reused while it is young.
#[derive(Default)]
struct AnswerCache(Mutex<Option<CachedAnswer>>);

struct CachedAnswer {
    made: std::time::Instant,
    query: String,
    body: Vec<u8>,
}

/// How long a cached answer is reused.
const CACHE_FOR: Duration = Duration::from_secs(4);

impl AnswerCache {
    fn get(&self, query: &str) -> Option<Response<Vec<u8>>> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let cached = slot.as_ref()?;
        (cached.query == query && cached.made.elapsed() < CACHE_FOR)
            .then(|| respond(200, "application/json", cached.body.clone()))
    }

    fn put(&self, query: String, body: &[u8]) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(CachedAnswer {
            made: std::time::Instant::now(),
            query,
            body: body.to_vec(),
        });
    }
}

/// The admin token, re-read when its file changes (`rampart admin-token
/// --rotate`): checked at each call that needs it, by one `stat`.
struct TokenWatch {
    path: PathBuf,
    current: Mutex<(String, Option<(SystemTime, u64)>)>,
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.ino()))
}

impl TokenWatch {
    /// The token in force; when the file changed, the new one, and every
    /// console session ends (they were opened with the old one).
    fn current(&self, sessions: &Sessions) -> String {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let now = stamp(&self.path);
        if now != current.1 {
            match token::read_gateway_token(&self.path) {
                Ok(token) => {
                    if token != current.0 {
                        tracing::info!(
                            "the admin token in {} changed; console sessions end",
                            self.path.display()
                        );
                        sessions.end_all();
                    }
                    *current = (token, now);
                }
                Err(why) => {
                    tracing::warn!("keeping the admin token already read: {why}");
                    current.1 = now;
                }
            }
        }
        current.0.clone()
    }
}

/// What a request is, once read.
struct Call {
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
    client: Option<IpAddr>,
    /// Who is calling, once authenticated.
    by: Caller,
}

#[derive(Clone, PartialEq, Eq)]
enum Caller {
    Nobody,
    /// A program with the bearer token.
    Bearer,
    /// A console session, by its cookie, and whether the call carried its
    /// CSRF token.
    Session {
        id: String,
        csrf_ok: bool,
    },
}

/// An answer, or the live stream.
enum Reply {
    Full(Response<Vec<u8>>),
    Live,
}

fn respond(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn json(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    respond(status, "application/json", value.to_string())
}

fn error(status: u16, message: &str) -> Response<Vec<u8>> {
    json(status, serde_json::json!({ "error": message }))
}

impl AdminApp {
    pub fn new(runtime: Arc<Runtime>, token_path: PathBuf, token: String, tls: bool) -> AdminApp {
        let stamp = stamp(&token_path);
        AdminApp {
            runtime,
            token: TokenWatch {
                path: token_path,
                current: Mutex::new((token, stamp)),
            },
            sessions: Sessions::default(),
            throttle: SignInThrottle::default(),
            tls,
            changes: tokio::sync::Mutex::new(()),
            top_cache: AnswerCache::default(),
        }
    }

    /// Who is calling: the bearer token, else a live session's cookie.
    fn caller(&self, req: &pingora::http::RequestHeader) -> Caller {
        let token = self.token.current(&self.sessions);
        if bearer_matches(req, &token) {
            return Caller::Bearer;
        }
        let Some(id) = cookie(req, COOKIE) else {
            return Caller::Nobody;
        };
        let Some(csrf) = self.sessions.csrf(&id, unix_now()) else {
            return Caller::Nobody;
        };
        let mut sent = req.headers.get_all("x-csrf-token").iter();
        let csrf_ok = match (sent.next(), sent.next()) {
            (Some(v), None) => same_secret(v.as_bytes(), csrf.as_bytes()),
            _ => false,
        };
        Caller::Session { id, csrf_ok }
    }

    async fn route(&self, call: &Call) -> Reply {
        let (method, path) = (call.method.as_str(), call.path.as_str());
        if method == "GET" {
            if let Some(asset) = rampart_console::assets::asset(path) {
                let mut page = respond(200, asset.content_type, asset.body);
                page.headers_mut().insert(
                    "content-security-policy",
                    http::HeaderValue::from_static(
                        rampart_console::assets::CONTENT_SECURITY_POLICY,
                    ),
                );
                page.headers_mut()
                    .insert("x-frame-options", http::HeaderValue::from_static("DENY"));
                return Reply::Full(page);
            }
            match path {
                "/metrics" => {
                    return Reply::Full(respond(200, "text/plain; version=0.0.4", self.metrics()))
                }
                "/healthz" => return Reply::Full(respond(200, "text/plain", "ok\n")),
                _ => {}
            }
        }
        let Some(rest) = path.strip_prefix("/api/v1/") else {
            return Reply::Full(error(404, "not found: the console is at /, the API under /api/v1/ (see /api/v1/openapi.json), metrics at /metrics"));
        };
        if rest == "session" && method == "POST" {
            return Reply::Full(self.sign_in(call));
        }
        match &call.by {
            Caller::Nobody => {
                let mut refused = error(401, "this call needs the admin token: send Authorization: Bearer TOKEN, with the token from the admin-token file the gateway named when it started, or sign in to the console");
                refused.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer realm=\"rampart admin\""),
                );
                return Reply::Full(refused);
            }
            Caller::Session { csrf_ok: false, .. } if !matches!(method, "GET" | "HEAD") => {
                return Reply::Full(error(403, "a change made from the console needs its X-CSRF-Token header; reload the console"));
            }
            _ => {}
        }
        let segments: Vec<&str> = rest.split('/').collect();
        self.api(call, &segments).await
    }

    /// `POST /api/v1/session`: signs in with the token, at most
    /// [`MAX_FAILURES`](rampart_console::session::MAX_FAILURES) wrong
    /// tokens a minute per client.
    fn sign_in(&self, call: &Call) -> Response<Vec<u8>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SignIn {
            token: String,
        }
        let now = unix_now();
        let client = call.client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Some(wait) = self.throttle.wait(client, now) {
            let mut refused = error(
                429,
                &format!(
                    "too many wrong tokens from this address; try again in {} s",
                    wait.as_secs()
                ),
            );
            if let Ok(v) = http::HeaderValue::from_str(&wait.as_secs().to_string()) {
                refused.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
            return refused;
        }
        let given = match serde_json::from_slice::<SignIn>(&call.body) {
            Ok(s) => s.token,
            Err(e) => return error(400, &format!("send {{\"token\": \"...\"}} as JSON ({e})")),
        };
        let token = self.token.current(&self.sessions);
        if !same_secret(given.trim().as_bytes(), token.as_bytes()) {
            self.throttle.failed(client, now);
            return error(401, "that is not the admin token");
        }
        self.throttle.succeeded(client);
        let (Ok(id), Ok(csrf)) = (crate::flood::random_bytes(), crate::flood::random_bytes())
        else {
            return error(500, "cannot get random bytes from the kernel for a session");
        };
        let session = self.sessions.create(id, csrf, now);
        let secure = if self.tls { "; Secure" } else { "" };
        let mut answer = json(200, serde_json::json!({ "csrf": session.csrf }));
        if let Ok(v) = http::HeaderValue::from_str(&format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            session.id,
            rampart_console::session::SESSION_LIFETIME.as_secs()
        )) {
            answer.headers_mut().insert(http::header::SET_COOKIE, v);
        }
        answer
    }

    /// `GET /metrics`: the gateway's counters and the layers', as
    /// Prometheus text.
    fn metrics(&self) -> String {
        let mut text = self.runtime.metrics.render();
        if let Some(flood) = &self.runtime.snapshot().flood {
            let c = flood.shield.counters();
            text.push_str("# HELP rampart_flood_requests_total Requests by the flood shield's decision.\n# TYPE rampart_flood_requests_total counter\n");
            for (what, n) in [
                ("continued", c.continued),
                ("limited", c.limited),
                ("challenged", c.challenged),
                ("queued", c.queued),
                ("unavailable", c.unavailable),
                ("banned", c.banned),
                ("cleared", c.cleared),
            ] {
                text.push_str(&format!(
                    "rampart_flood_requests_total{{decision=\"{what}\"}} {n}\n"
                ));
            }
            text.push_str(&format!("# TYPE rampart_flood_events_dropped_total counter\nrampart_flood_events_dropped_total {}\n", c.events_dropped));
        }
        if let Some(link) = self.runtime.cluster.get() {
            text.push_str(&format!(
                "# HELP rampart_cluster_up Whether the link to the cluster's Redis is up (1) or this node decides alone (0).\n# TYPE rampart_cluster_up gauge\nrampart_cluster_up{{node=\"{node}\"}} {}\n\
                 # HELP rampart_cluster_bans_shared_total Ban changes this node wrote to Redis.\n# TYPE rampart_cluster_bans_shared_total counter\nrampart_cluster_bans_shared_total {}\n\
                 # HELP rampart_cluster_bans_adopted_total Ban changes of other nodes this node took.\n# TYPE rampart_cluster_bans_adopted_total counter\nrampart_cluster_bans_adopted_total {}\n",
                u8::from(link.up()),
                link.shared.load(std::sync::atomic::Ordering::Relaxed),
                link.adopted.load(std::sync::atomic::Ordering::Relaxed),
                node = link.node,
            ));
        }
        let cache = self.runtime.cache.stats();
        text.push_str(&format!(
            "# HELP rampart_cache_entries Responses kept by the serve-stale cache.\n# TYPE rampart_cache_entries gauge\nrampart_cache_entries {}\n\
             # HELP rampart_cache_bytes Memory held by the serve-stale cache.\n# TYPE rampart_cache_bytes gauge\nrampart_cache_bytes {}\n\
             # HELP rampart_cache_stored_total Responses copied into the cache.\n# TYPE rampart_cache_stored_total counter\nrampart_cache_stored_total {}\n",
            cache.entries, cache.bytes, cache.stored
        ));
        if self.runtime.events.enabled() {
            let (recorded, dropped) = self.runtime.events.counts();
            text.push_str(&format!(
                "# HELP rampart_events_recorded_total Events handed to the event store.\n# TYPE rampart_events_recorded_total counter\nrampart_events_recorded_total {recorded}\n\
                 # HELP rampart_events_dropped_total Events dropped because the store's queue was full.\n# TYPE rampart_events_dropped_total counter\nrampart_events_dropped_total {dropped}\n"
            ));
        }
        text
    }

    /// Ends the caller's session, if it has one, and clears its cookie.
    fn sign_out(&self, call: &Call) -> Response<Vec<u8>> {
        if let Caller::Session { id, .. } = &call.by {
            self.sessions.end(id);
        }
        let mut answer = json(200, serde_json::json!({ "signed_out": true }));
        answer.headers_mut().insert(
            http::header::SET_COOKIE,
            http::HeaderValue::from_static(
                "rampart_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
            ),
        );
        answer
    }

    /// The CSRF token of the caller's session (a reloaded console resumes).
    fn session_csrf(&self, call: &Call) -> Response<Vec<u8>> {
        match &call.by {
            Caller::Session { id, .. } => match self.sessions.csrf(id, unix_now()) {
                Some(csrf) => json(200, serde_json::json!({ "csrf": csrf })),
                None => error(401, "the session has ended"),
            },
            _ => error(400, "a bearer-token caller has no console session"),
        }
    }
}

/// Time since the Unix epoch, for sessions and the sign-in throttle.
fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The value of one cookie of the request.
fn cookie(req: &pingora::http::RequestHeader, name: &str) -> Option<String> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

#[async_trait]
impl HttpServerApp for AdminApp {
    /// One request: read it whole (the API's bodies are small), answer, and
    /// keep the connection for the next one; or hold it for the live
    /// stream until the console goes away or the gateway stops.
    async fn process_new_http(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match http.read_request().await {
            Ok(true) => {}
            _ => return None,
        }
        http.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let reply = match self.read_call(&mut http).await {
            Ok(call) => self.route(&call).await,
            Err(refused) => Reply::Full(refused),
        };
        let response = match reply {
            Reply::Full(response) => response,
            Reply::Live => {
                self.live(&mut http, shutdown).await;
                return None;
            }
        };
        let (parts, body) = response.into_parts();
        let header: ResponseHeader = parts.into();
        if http.write_response_header(Box::new(header)).await.is_err() {
            return None;
        }
        if !body.is_empty() && http.write_response_body(body.into(), true).await.is_err() {
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}

impl AdminApp {
    /// Checks where the request could have come from, reads its body (at
    /// most [`MAX_BODY`]) and who sent it.
    async fn read_call(&self, http: &mut ServerSession) -> Result<Call, Response<Vec<u8>>> {
        browser_check(http.req_header(), self.tls).map_err(|why| error(403, &why))?;
        let mut body = Vec::new();
        loop {
            match http.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        http.set_keepalive(None);
                        return Err(error(413, "the admin API takes bodies of at most 64 KiB"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => {
                    http.set_keepalive(None);
                    return Err(error(400, "the request body could not be read"));
                }
            }
        }
        let req = http.req_header();
        Ok(Call {
            method: req.method.as_str().to_string(),
            path: req.uri.path().to_string(),
            query: req.uri.query().unwrap_or("").to_string(),
            body,
            client: http.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
            by: self.caller(req),
        })
    }
}

/// Refuses what a browser could have been made to send; see the module
/// documentation. Requests from programs (curl, the `rampart` commands,
/// scrapers) carry an address or `localhost` as their `Host` and no
/// `Origin`, and pass.
fn browser_check(req: &pingora::http::RequestHeader, tls: bool) -> Result<(), String> {
    let single = |name: http::header::HeaderName| -> Result<Option<&str>, String> {
        let mut values = req.headers.get_all(&name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("more than one {name} header"));
        }
        first
            .map(|v| {
                v.to_str()
                    .map_err(|_| format!("the {name} header is not plain text"))
            })
            .transpose()
    };
    let host = single(http::header::HOST)?;
    for authority in host
        .into_iter()
        .chain(req.uri.authority().map(|a| a.as_str()))
    {
        if !is_address_authority(authority) {
            return Err(format!("the admin listener answers only to an address or localhost, not to `{authority}` (a name other than localhost may have been pointed here by someone else's page)"));
        }
    }
    if let Some(origin) = single(http::header::ORIGIN)? {
        let scheme = if tls { "https://" } else { "http://" };
        let own = host.is_some_and(|h| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        });
        if !own {
            return Err(format!(
                "requests from web pages are refused (Origin `{origin}`)"
            ));
        }
    }
    if let Some(site) = single(http::header::HeaderName::from_static("sec-fetch-site"))? {
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Err(format!(
                "requests from web pages are refused (Sec-Fetch-Site `{site}`)"
            ));
        }
    }
    Ok(())
}

/// Whether a `Host` value is an IP address or `localhost`, with an
/// optional port: never a name that someone else's DNS could point here.
fn is_address_authority(authority: &str) -> bool {
    let port_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let after_ok = after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        return after_ok && ip.parse::<Ipv6Addr>().is_ok();
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port_ok(port) => host,
        Some(_) => return false,
        None => authority,
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<Ipv4Addr>().is_ok()
}

/// Whether the request carries `Authorization: Bearer TOKEN` with the
/// admin token; compared in constant time.
fn bearer_matches(req: &pingora::http::RequestHeader, token: &str) -> bool {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(space);
    let given = rest.trim_ascii();
    scheme.eq_ignore_ascii_case(b"bearer") && same_secret(given, token.as_bytes())
}

/// Compares two secrets in time that depends only on their lengths (the
/// length of a token is no secret: 64 hex digits).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The warning printed at start when the admin listener is reachable from
/// other machines.
pub fn exposure_warning(admin: SocketAddr) -> Option<String> {
    let ip = match admin.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    (!ip.is_loopback()).then(|| format!(
        "the admin listener on {admin} is not on a loopback address: the admin API is reachable from the network and protected only by the admin token; keep admin_listen on 127.0.0.1 unless it must be reached from elsewhere, and then behind a firewall"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lines: &[(&str, &str)]) -> pingora::http::RequestHeader {
        let mut req = pingora::http::RequestHeader::build("POST", b"/mode", None).unwrap();
        for (name, value) in lines {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    #[test]
    fn host_must_be_an_address_or_localhost() {
        for ok in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "localhost:9901",
            "LOCALHOST",
            "[::1]:9901",
            "[::1]",
            "10.0.0.5:80",
        ] {
            assert!(is_address_authority(ok), "{ok}");
            assert!(
                browser_check(&request(&[("host", ok)]), false).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "evil.example",
            "evil.example:9901",
            "localhost.evil.example:9901",
            "127.0.0.1.nip.io:9901",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "[::1",
            "::1",
            "",
            "127.1:9901",
        ] {
            assert!(!is_address_authority(bad), "{bad}");
        }
        assert!(browser_check(&request(&[("host", "evil.example:9901")]), false).is_err());
        assert!(browser_check(
            &request(&[("host", "127.0.0.1:9901"), ("host", "127.0.0.1:9901")]),
            false
        )
        .is_err());
        assert!(
            browser_check(&request(&[]), false).is_ok(),
            "no Host (HTTP/1.0) is no browser"
        );
    }

    #[test]
    fn only_the_listeners_own_origin_passes() {
        let host = ("host", "127.0.0.1:9901");
        assert!(browser_check(
            &request(&[host, ("origin", "http://127.0.0.1:9901")]),
            false
        )
        .is_ok());
        for bad in [
            "http://evil.example",
            "null",
            "https://127.0.0.1:9901",
            "http://127.0.0.1:9902",
            "http://127.0.0.1:9901.evil.example",
            "",
        ] {
            assert!(
                browser_check(&request(&[host, ("origin", bad)]), false).is_err(),
                "{bad}"
            );
        }
        assert!(browser_check(&request(&[("origin", "http://127.0.0.1:9901")]), false).is_err());
        let tls_host = ("host", "127.0.0.1:9901");
        assert!(browser_check(
            &request(&[tls_host, ("origin", "https://127.0.0.1:9901")]),
            true
        )
        .is_ok());
        assert!(browser_check(
            &request(&[tls_host, ("origin", "http://127.0.0.1:9901")]),
            true
        )
        .is_err());
        assert!(browser_check(&request(&[host, ("sec-fetch-site", "cross-site")]), false).is_err());
        assert!(browser_check(&request(&[host, ("sec-fetch-site", "same-site")]), false).is_err());
        assert!(browser_check(&request(&[host, ("sec-fetch-site", "none")]), false).is_ok());
    }

    #[test]
    fn the_bearer_token_must_match_exactly() {
        let token = "0123456789abcdef".repeat(4);
        let with = |v: &str| request(&[("authorization", v)]);
        assert!(bearer_matches(&with(&format!("Bearer {token}")), &token));
        assert!(bearer_matches(&with(&format!("bearer  {token} ")), &token));
        assert!(!bearer_matches(&request(&[]), &token));
        assert!(!bearer_matches(&with(&format!("Basic {token}")), &token));
        assert!(!bearer_matches(
            &with(&format!("Bearer {}", &token[1..])),
            &token
        ));
        assert!(!bearer_matches(&with(&format!("Bearer {token}0")), &token));
        assert!(!bearer_matches(
            &with(&format!("Bearer {}", "f".repeat(64))),
            &token
        ));
        assert!(!bearer_matches(&with("Bearer"), &token));
        let twice = request(&[
            ("authorization", &format!("Bearer {token}")),
            ("authorization", &format!("Bearer {token}")),
        ]);
        assert!(!bearer_matches(&twice, &token));
        assert!(
            same_secret(b"abc", b"abc")
                && !same_secret(b"abc", b"abd")
                && !same_secret(b"abc", b"ab")
        );
    }

    #[test]
    fn a_listener_beyond_loopback_is_warned_about() {
        for quiet in ["127.0.0.1:9901", "[::1]:9901", "[::ffff:127.0.0.1]:9901"] {
            assert!(
                exposure_warning(quiet.parse().unwrap()).is_none(),
                "{quiet}"
            );
        }
        for loud in ["0.0.0.0:9901", "[::]:9901", "192.0.2.7:9901"] {
            let w = exposure_warning(loud.parse().unwrap()).unwrap();
            assert!(
                w.contains("reachable from the network") && w.contains("only by the admin token"),
                "{w}"
            );
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let req = request(&[("cookie", "a=1; rampart_session=abc"), ("cookie", "b=2")]);
        assert_eq!(cookie(&req, COOKIE).as_deref(), Some("abc"));
        assert_eq!(
            cookie(&request(&[("cookie", "xrampart_session=abc")]), COOKIE),
            None
        );
    }
}
