//! Requests the HTTP layer refuses before any hook runs.
//!
//! Pingora answers a request head it cannot parse (a request target with
//! raw `"`, `<` or `>`, an unknown protocol version, a malformed header)
//! with 400 by itself and never calls the proxy's hooks. Nothing of such a
//! request reaches an upstream, but an operator must still see it: a
//! scanner's probes are exactly such requests. So each HTTP/1 connection's
//! stream is wrapped: it keeps a copy of the bytes read while a request
//! head is awaited, and when the HTTP layer starts writing an answer before
//! the head was handed to the proxy, it reports the copy first. The report
//! (access log, metrics, the WAF's error log) is written before the 400
//! leaves, so a reader who has the answer also finds its log lines.

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, TimingDigest, UniqueID,
    UniqueIDType,
};
use pingora::protocols::{SocketDigest, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::verdict::{BadRequest, Verdict};

/// The most of a head kept per connection: enough for the request line and
/// the usual headers of a refused request, without doubling what a slow
/// client's half-sent head costs (Pingora holds it too).
pub const MAX_CAPTURED: usize = 8 * 1024;

/// What to do with the head of a request the HTTP layer refused itself.
pub type RefusalReport = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The admission layer's hold on a connection's [`CaptureStream`].
#[derive(Debug, Default)]
pub struct CaptureControl {
    /// Set by the proxy (`admission::head_received`) once the current
    /// request's head has parsed.
    pub head_done: AtomicBool,
    /// Set by the admission layer before each request on the connection.
    next_request: AtomicBool,
}

impl CaptureControl {
    /// Starts watching the next request on the connection.
    pub fn next_request(&self) {
        self.head_done.store(false, Ordering::Release);
        self.next_request.store(true, Ordering::Release);
    }
}

/// A connection's stream that remembers the current request head.
pub struct CaptureStream {
    inner: Stream,
    head: Vec<u8>,
    cap: usize,
    control: Arc<CaptureControl>,
    reported: bool,
    report: RefusalReport,
}

impl CaptureStream {
    pub fn new(
        inner: Stream,
        cap: usize,
        control: Arc<CaptureControl>,
        report: RefusalReport,
    ) -> CaptureStream {
        CaptureStream {
            inner,
            head: Vec::new(),
            cap,
            control,
            reported: false,
            report,
        }
    }

    fn starting_request(&mut self) {
        if self.control.next_request.swap(false, Ordering::AcqRel) {
            self.head.clear();
            self.reported = false;
        }
    }

    /// Reports the head if the HTTP layer is answering before the proxy
    /// received it.
    fn before_write(&mut self) {
        self.starting_request();
        if !self.reported
            && !self.head.is_empty()
            && !self.control.head_done.load(Ordering::Acquire)
        {
            self.reported = true;
            (self.report)(&self.head);
        }
    }
}

impl fmt::Debug for CaptureStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureStream")
            .field("inner", &self.inner)
            .finish()
    }
}

impl AsyncRead for CaptureStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        this.starting_request();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(())))
            && !this.control.head_done.load(Ordering::Acquire)
            && this.head.len() < this.cap
        {
            let new = &buf.filled()[before..];
            let room = this.cap - this.head.len();
            this.head.extend_from_slice(&new[..new.len().min(room)]);
        }
        polled
    }
}

impl AsyncWrite for CaptureStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        // An answer before the head reached the proxy: the HTTP layer
        // refused it. Report it now, before the answer leaves.
        this.before_write();
        Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.before_write();
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for CaptureStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for CaptureStream {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for CaptureStream {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for CaptureStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> std::time::Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> std::time::Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for CaptureStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for CaptureStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for CaptureStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// Reports requests the HTTP layer refused: an access-log line, a counter,
/// and the site's WAF run over the head as far as it can be read, so its
/// rules are logged (and make an event) as they would be for any request.
/// The answer stays the HTTP layer's 400, and nothing reaches an upstream.
pub struct Refusals {
    pub runtime: Arc<crate::runtime::Runtime>,
    pub access_log: crate::accesslog::AccessLog,
    pub waf_log: crate::accesslog::LineSink,
}

/// A request head as far as it can be read: the request line's three parts
/// and the header fields, leniently (bare LF, bytes no parser accepts).
struct LenientHead {
    method: String,
    target: String,
    version: String,
    headers: Vec<(String, Vec<u8>)>,
}

fn lenient_head(head: &[u8]) -> Option<LenientHead> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| head.windows(2).position(|w| w == b"\n\n").map(|p| p + 1))
        .unwrap_or(head.len());
    let mut lines = head[..end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next()?).into_owned();
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let method = parts.next()?.to_string();
    let target = parts.next().unwrap_or("").to_string();
    // A request line without a version is HTTP/0.9, as servers read it.
    let version = parts.next().unwrap_or("HTTP/0.9").to_string();
    // Only a head whose framing is sound is judged: one whose lines are
    // broken (a bare CR, a NUL, a folded or nameless line) is not a request
    // anyone could read the same way twice, and is only logged.
    let broken = |l: &[u8]| l.contains(&b'\r') || l.contains(&0);
    if broken(request_line.as_bytes()) {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.take(128) {
        if line.is_empty() {
            break;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        if broken(line) || line[0] == b' ' || line[0] == b'\t' {
            return None;
        }
        let name = String::from_utf8_lossy(&line[..colon]).trim().to_string();
        let value = line[colon + 1..].trim_ascii().to_vec();
        headers.push((name, value));
    }
    Some(LenientHead {
        method,
        target,
        version,
        headers,
    })
}

impl Refusals {
    pub fn report(&self, peer: Option<std::net::IpAddr>, head: &[u8]) {
        use std::sync::atomic::Ordering;
        let metrics = &self.runtime.metrics;
        metrics.malformed_requests.fetch_add(1, Ordering::Relaxed);
        let snapshot = self.runtime.snapshot();
        // One reference for the access-log line and the WAF's lines alike,
        // so an operator can join them.
        let reference = format!(
            "refused-{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let Some(parsed) = lenient_head(head) else {
            let line = LenientHead {
                method: "-".into(),
                target: "-".into(),
                version: "-".into(),
                headers: Vec::new(),
            };
            self.log_refusal(
                &snapshot,
                &reference,
                peer,
                None,
                &line,
                Verdict::BadRequest(BadRequest::MalformedFraming),
            );
            return;
        };
        let host = parsed
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .and_then(|(_, v)| crate::resolve::parse_authority(&String::from_utf8_lossy(v)).ok())
            .map(|a| a.host)
            .unwrap_or_default();
        let site = snapshot.site_for_host(&host);
        let mut verdict = Verdict::BadRequest(BadRequest::MalformedHead);
        if let Some(engine) = site.and_then(|i| snapshot.sites[i].waf.as_ref()) {
            let meta = rampart_waf::TxMeta {
                remote_addr: peer.map(|p| p.to_string()).unwrap_or_default(),
                remote_port: 0,
                server_addr: String::new(),
                server_port: 0,
                unique_id: reference.clone(),
            };
            let mut tx = engine.transaction(meta);
            let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let v = tx.process_request_headers(
                    &parsed.method,
                    &parsed.target,
                    &parsed.version,
                    parsed
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_slice())),
                );
                if v == rampart_waf::Verdict::Continue {
                    tx.process_request_body();
                }
                tx.process_logging();
            }));
            if judged.is_err() {
                metrics.waf_errors.fetch_add(1, Ordering::Relaxed);
            }
            for line in tx.error_log_lines() {
                self.waf_log.send(line.clone());
            }
            let rules: Vec<u32> = tx
                .matched_rules()
                .iter()
                .filter(|m| m.logged)
                .map(|m| m.id)
                .take(32)
                .collect();
            if !rules.is_empty() {
                verdict = Verdict::BadRequest(BadRequest::MalformedHeadWaf);
                metrics.waf_detections.fetch_add(1, Ordering::Relaxed);
                if self.runtime.events.enabled() {
                    let name = &snapshot.sites[site.unwrap_or(0)].name;
                    self.runtime.events.record(
                        name,
                        peer,
                        "",
                        rampart_incidents::EventKind::WafMatch {
                            detail: None,
                            rules,
                            score: 0,
                            attacks: Vec::new(),
                        },
                    );
                }
            }
        }
        self.log_refusal(&snapshot, &reference, peer, site, &parsed, verdict);
    }

    /// The access-log line and the site's counts for a refused head.
    fn log_refusal(
        &self,
        snapshot: &crate::runtime::Snapshot,
        reference: &str,
        peer: Option<std::net::IpAddr>,
        site: Option<usize>,
        head: &LenientHead,
        verdict: Verdict,
    ) {
        if self.access_log.enabled() {
            let record = crate::accesslog::AccessRecord {
                time: crate::accesslog::now_rfc3339(),
                id: reference,
                site: site.map_or("", |i| snapshot.sites[i].name.as_str()),
                route: "",
                client: peer.map(|p| p.to_string()).unwrap_or_default(),
                method: &head.method,
                path: &head.target,
                protocol: &head.version,
                status: 400,
                bytes: 0,
                duration_ms: 0.0,
                upstream: None,
                verdict,
                error: Some("refused by the HTTP layer".into()),
            };
            self.access_log.write(&record);
        }
        if let Some(i) = site {
            snapshot.sites[i].metrics.record(400, 0, 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refused_heads_are_read_as_far_as_they_go() {
        let h =
            super::lenient_head(b"GET /a?b=\"<x>\" HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n\r\n")
                .unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.version.as_str()),
            ("GET", "/a?b=\"<x>\"", "HTTP/1.1")
        );
        assert_eq!(h.headers.len(), 2);
        let h = super::lenient_head(b"GET /\n\n").unwrap();
        assert_eq!((h.target.as_str(), h.version.as_str()), ("/", "HTTP/0.9"));
        assert!(super::lenient_head(b"").is_none());
        // Broken framing is not judged.
        assert!(super::lenient_head(b"GET / HTTP/1.1\r\nA: b\rC: d\r\n\r\n").is_none());
        assert!(super::lenient_head(b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n").is_none());
    }
}
