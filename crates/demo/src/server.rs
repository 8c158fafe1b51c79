//! The HTTP/1.1 layer. hyper reads requests off each connection and writes the responses back;
//! this module turns hyper's request into the small [`Request`] the routes take, runs the route,
//! and turns its [`Response`] back into hyper's.
//!
//! hyper does the framing: keep-alive and pipelining, `Content-Length` and chunked bodies,
//! `Expect: 100-continue`, `HEAD`, and a 400 or 431 for a head it can't parse. What is left here
//! are the checks hyper leaves to the application (one `Host`, a target naming a path, no
//! transfer coding but chunked, the body cap) and the timeouts it has no setting for. Nothing a
//! client sends can make the site buffer more than [`MAX_HEAD_BYTES`] plus [`MAX_BODY_BYTES`].

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::{pages, routes, Shared};

/// The largest request head (request line plus headers) the site accepts; past it, or past
/// hyper's 100 header fields, the client gets a 431. Browsers with a full cookie jar send about
/// 8 KiB, so 16 KiB fits every real client while keeping what a hostile one can make us hold
/// small.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The largest request body the site accepts; past it the client gets a 413. The donation and
/// login forms are a few hundred bytes, and 1 MiB leaves room for proxy tests posting to `/echo`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a connection may sit with nothing moving on it, while no route is working on one of
/// its requests, before we close it: an idle keep-alive connection, a client that stopped
/// mid-head, or one that stopped reading a response. It is shorter than the keep-alive timeouts
/// gateways use for their upstream pools (Pingora's and nginx's default to 60 s or more), so a test
/// may see a pooled connection closed under it: that is a case the gateway must handle anyway.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How often each connection looks at its idle time.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// How long a client has to deliver a request's head once it has sent its first byte, and then
/// its body. Without a deadline a client could trickle one byte every few seconds and hold a
/// connection forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long, and how many bytes, we keep reading and discarding after the last response on a
/// connection. Closing a socket with unread data makes the kernel send a reset, which can destroy
/// the response before the client reads it; draining first lets the client see the 413 or 431.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 4 * 1024 * 1024;

/// The `Server` header value.
pub(crate) const SERVER_NAME: &str = "rampart-demo";

/// One request, body included, as the routes see it.
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path part of the request target, exactly as sent (not percent-decoded).
    pub(crate) path: String,
    /// The query string after `?`, exactly as sent, if the target had one.
    pub(crate) query: Option<String>,
    pub(crate) version: Version,
    /// Header fields, grouped by name in the order each name first appeared. hyper lower-cases
    /// names as it parses them, so they are title-cased here (`X-Forwarded-For`), the spelling
    /// clients send; look them up with [`Request::header`], which ignores case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) peer: SocketAddr,
}

impl Request {
    /// The first value of header `name`, compared without regard to case.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A response ready to be written.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    /// Headers beyond the ones every response gets (`Date`, `Server`, `Content-Type`,
    /// `Content-Length`).
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Body,
}

impl Response {
    pub(crate) fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: Body::Full(body.into()),
        }
    }

    pub(crate) fn html(status: u16, page: String) -> Self {
        Response::new(status, "text/html; charset=utf-8", page)
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A response body.
pub(crate) enum Body {
    /// A body held in memory.
    Full(Vec<u8>),
    /// `kib` blocks of 1 KiB of numbered filler text, generated while writing so that a 64 MiB
    /// response never sits in memory.
    Filler { kib: u64 },
}

/// The reason phrase for `status`, for error pages.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// Serves requests on one client connection until either side closes it, the site stops, or it
/// has been idle for [`IDLE_TIMEOUT`].
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // Without this the connection would still work, just with Nagle delays; not worth refusing
    // the client over.
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity(Mutex::new(Some(Instant::now()))));
    let mut io = Watched {
        io: TokioIo::new(stream),
        activity: Arc::clone(&activity),
    };
    let service = service_fn(|request| {
        let (shared, activity) = (Arc::clone(&shared), Arc::clone(&activity));
        async move {
            let _busy = Busy::start(activity);
            Ok::<_, Infallible>(answer(request, peer, shared).await)
        }
    });
    let timed_out = {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(REQUEST_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .title_case_headers(true)
            .serve_connection(&mut io, service);
        tokio::pin!(conn);
        loop {
            tokio::select! {
                _ = conn.as_mut() => break false,
                // The sender is dropped, or says stop: finish the request in hand, then close.
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                    break false;
                }
                _ = tokio::time::sleep(IDLE_CHECK) => {
                    if activity.idle_for() >= IDLE_TIMEOUT {
                        break true;
                    }
                }
            }
        }
    };
    // A client that has gone quiet has nothing left to drain.
    if !timed_out {
        linger(io.io.into_inner()).await;
    }
}

/// Closes our side, then reads and discards what the client is still sending for a little while,
/// so that its unread bytes don't turn into a reset that destroys our last response.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let (mut rest, mut sink) = ((&mut stream).take(LINGER_BYTES), tokio::io::sink());
    let _ = tokio::time::timeout(LINGER_TIME, tokio::io::copy(&mut rest, &mut sink)).await;
}

/// Answers one request: the checks hyper leaves to us, the body, then the route.
async fn answer(
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> hyper::Response<ResponseBody> {
    let (parts, body) = request.into_parts();
    // hyper closes an HTTP/1.0 connection unless the client asked for keep-alive, but says so in
    // a header only on HTTP/1.1 responses; an HTTP/1.0 client is told too (RFC 9112 §9.3).
    let close = parts.version == Version::HTTP_10 && !has_token(&parts.headers, "keep-alive");
    let response = match read_request(parts, body, peer).await {
        // The routes block (SQLite, `/slow`), so they run where blocking is allowed.
        Ok(request) => tokio::task::spawn_blocking(move || routes::route(&request, &shared))
            .await
            .unwrap_or_else(|_| {
                let page = pages::client_error(500, "The page failed while being built.");
                Response::html(500, page)
            }),
        Err(refusal) => refusal.with_header("Connection", "close"),
    };
    into_hyper(response, close)
}

/// Checks what hyper accepts but this site doesn't, then reads the body. `Err` is the answer to
/// send instead, after which the connection closes.
async fn read_request(
    parts: http::request::Parts,
    body: Incoming,
    peer: SocketAddr,
) -> Result<Request, Response> {
    let refuse = |status, reason| Response::html(status, pages::client_error(status, reason));
    // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without exactly one Host.
    let hosts = parts.headers.get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && parts.version == Version::HTTP_11) {
        return Err(refuse(
            400,
            "An HTTP/1.1 request needs exactly one Host header.",
        ));
    }
    // hyper takes a bare authority (`GET example:80`) as the target of any method. The site only
    // serves paths, from the origin form or a proxy's absolute form; `OPTIONS *` asks about the
    // server as a whole and is routed like any unknown path.
    let uri = &parts.uri;
    let names_a_path =
        uri.path().starts_with('/') || (parts.method == Method::OPTIONS && uri == "*");
    if !names_a_path {
        return Err(refuse(400, "The request target is malformed."));
    }
    // hyper decodes chunked and refuses a final coding that isn't; one before it (`gzip, chunked`)
    // would reach the routes still encoded.
    let codings = parts.headers.get_all(header::TRANSFER_ENCODING);
    let mut codings = codings
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','));
    if codings.any(|c| !c.trim_ascii().eq_ignore_ascii_case(b"chunked")) {
        return Err(refuse(
            501,
            "Only the chunked transfer coding is supported.",
        ));
    }
    if parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        return Err(refuse(
            417,
            "The only expectation this site meets is 100-continue.",
        ));
    }
    let too_large = || refuse(413, "The request body is larger than 1 MiB.");
    // Refusing a declared length before reading also spares the client a `100 Continue`, which
    // hyper sends only once the body is first read.
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return Err(too_large());
    }
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let body = match tokio::time::timeout(REQUEST_TIMEOUT, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
        Ok(Err(_)) => return Err(refuse(400, "The request body is malformed.")),
        Err(_) => return Err(refuse(408, "The request body took too long to arrive.")),
    };
    let headers = parts.headers.iter().map(|(name, value)| {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        (title_case(name.as_str()), value)
    });
    Ok(Request {
        method: parts.method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        version: parts.version,
        headers: headers.collect(),
        body,
        peer,
    })
}

/// Whether any `Connection` field lists `token`.
fn has_token(headers: &http::HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// `x-forwarded-for` to `X-Forwarded-For`.
fn title_case(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c };
            upper = c == '-';
            out
        })
        .collect()
}

type ResponseBody = Either<Full<Bytes>, Filler>;

fn into_hyper(response: Response, close: bool) -> hyper::Response<ResponseBody> {
    let body = match response.body {
        Body::Full(bytes) => Either::Left(Full::new(bytes.into())),
        Body::Filler { kib } => Either::Right(Filler { next: 0, end: kib }),
    };
    let mut out = hyper::Response::new(body);
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = out.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static(SERVER_NAME));
    let content_type = HeaderValue::from_static(response.content_type);
    headers.insert(header::CONTENT_TYPE, content_type);
    for (name, value) in response.headers {
        // The routes' header names and values are fixed text and numbers, so neither check fails.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            headers.append(name, value);
        }
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

/// `/big`'s body: numbered blocks of 1 KiB, made 64 at a time as hyper asks for them. Each block
/// starts with its number, so a streaming test can check that nothing was lost or reordered, and
/// ends with a newline.
pub(crate) struct Filler {
    next: u64,
    end: u64,
}

impl hyper::body::Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const BLOCKS_PER_FRAME: u64 = 64;
        const FILL: &[u8] = b"Fairshare Party: vote for a fairer future. ";
        if self.next == self.end {
            return Poll::Ready(None);
        }
        let end = (self.next + BLOCKS_PER_FRAME).min(self.end);
        let mut batch = Vec::with_capacity((BLOCKS_PER_FRAME * 1024) as usize);
        for n in self.next..end {
            let start = batch.len();
            batch.extend_from_slice(format!("block {n:08} ").as_bytes());
            while batch.len() - start < 1023 {
                let room = 1023 - (batch.len() - start);
                batch.extend_from_slice(&FILL[..room.min(FILL.len())]);
            }
            batch.push(b'\n');
        }
        self.next = end;
        Poll::Ready(Some(Ok(Frame::data(batch.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.next == self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.end - self.next) * 1024)
    }
}

/// When bytes last moved on a connection, or `None` while a route is working on one of its
/// requests, which may take a while with nothing moving.
struct Activity(Mutex<Option<Instant>>);

impl Activity {
    fn set(&self, value: Option<Instant>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = value;
    }

    fn moved(&self) {
        let mut last = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = last.as_mut() {
            *last = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        let last = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        last.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

/// Marks a connection busy while a request is being answered, and idle again when dropped, even
/// if hyper drops the answer half-way because the client left. hyper answers one request at a
/// time on a connection.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: Arc<Activity>) -> Busy {
        activity.set(None);
        Busy(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(Some(Instant::now()));
    }
}

/// The connection's socket, telling [`Activity`] whenever a read or write completes.
struct Watched {
    io: TokioIo<TcpStream>,
    activity: Arc<Activity>,
}

impl Watched {
    fn note<T>(&self, poll: Poll<T>) -> Poll<T> {
        if poll.is_ready() {
            self.activity.moved();
        }
        poll
    }
}

impl Read for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.io).poll_read(cx, buf);
        self.note(poll)
    }
}

impl Write for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
