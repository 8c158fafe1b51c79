//! The HTTP/1.1 wire layer: reads requests off a connection, hands them to the routes, and
//! writes the responses back.
//!
//! It implements the parts of RFC 9112 an origin behind a gateway meets: keep-alive and
//! pipelining, `Content-Length` and chunked request bodies, `Expect: 100-continue`, and `HEAD`.
//! Anything it can't make sense of gets a 4xx answer and a closed connection; nothing a client
//! sends can make it panic or buffer more than [`MAX_HEAD_BYTES`] plus [`MAX_BODY_BYTES`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::{clock, pages, routes, Shared};

/// The largest request head (request line plus headers) the site accepts; past it the client gets
/// a 431. Browsers with a full cookie jar send about 8 KiB, so 16 KiB fits every real client
/// while keeping what a hostile one can make us hold small.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The largest request body the site accepts; past it the client gets a 413. The donation and
/// login forms are a few hundred bytes, and 1 MiB leaves room for proxy tests posting to `/echo`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long a connection may sit idle waiting for its next request before we close it. It is
/// shorter than the keep-alive timeouts gateways use for their upstream pools (Pingora's and
/// nginx's default to 60 s or more), so a test may see a pooled connection closed under it: that is
/// a case the gateway must handle anyway.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a client has to deliver a whole request once it has sent the first byte of it. A
/// per-read timeout alone would let a client trickle one byte every few seconds and hold a thread
/// forever; this deadline bounds the whole request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a single write may block on a client that has stopped reading, for example one that
/// asked for `/big?kb=65536` and then went quiet.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long, and how many bytes, we keep reading and discarding after answering with an error and
/// closing. Closing a socket with unread data makes the kernel send a reset, which can destroy the
/// error response before the client reads it; draining first lets the client see the 413 or 431.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// The longest chunk-size line (size plus extensions) in a chunked body. Real clients send a few
/// hex digits; the cap stops a client from making us buffer an endless line.
const MAX_CHUNK_LINE_BYTES: usize = 4096;

/// How many bytes one `read` asks for.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// The `Server` header value.
pub(crate) const SERVER_NAME: &str = "rampart-demo";

/// One parsed request, body included.
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path part of the request target, exactly as sent (not percent-decoded).
    pub(crate) path: String,
    /// The query string after `?`, exactly as sent, if the target had one.
    pub(crate) query: Option<String>,
    pub(crate) version: Version,
    /// Header fields in the order received. Names keep the client's spelling; look them up with
    /// [`Request::header`], which ignores case.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
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

    /// Every value of header `name`, in order.
    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The comma-separated tokens of header `name` across all its fields, lower-cased.
    fn header_tokens(&self, name: &str) -> Vec<String> {
        self.header_values(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// Whether the client wants the connection kept open after this request: HTTP/1.1 does
    /// unless it says `close`, HTTP/1.0 only if it asks for `keep-alive`.
    fn wants_keep_alive(&self) -> bool {
        let tokens = self.header_tokens("connection");
        match self.version {
            Version::Http11 => !tokens.iter().any(|t| t == "close"),
            Version::Http10 => tokens.iter().any(|t| t == "keep-alive"),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Version {
    Http10,
    Http11,
}

impl Version {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A response ready to be written.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    /// Headers beyond the ones every response gets (`Date`, `Server`, `Content-Type`,
    /// `Content-Length`, `Connection`).
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

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Full(bytes) => bytes.len() as u64,
            Body::Filler { kib } => kib * 1024,
        }
    }
}

/// Why reading a request stopped without producing one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The client sent something we won't serve: answer with this status and explanation, then
    /// close, since we can no longer tell where its next request would start.
    Client(u16, &'static str),
    /// The connection went away, or sat idle between requests for too long: close silently.
    Gone,
}

/// What one attempt to read more bytes produced.
enum Filled {
    Bytes,
    Eof,
    TimedOut,
}

/// How the request body is delimited (RFC 9112 §6.3).
enum Framing {
    Length(usize),
    Chunked,
}

/// Serves requests on one client connection until either side closes it.
pub(crate) fn serve_connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    // Without these the connection would still work, just with Nagle delays or no write timeout;
    // neither is worth refusing the client over.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut conn = Connection {
        stream,
        peer,
        buf: Vec::with_capacity(READ_CHUNK_BYTES),
    };
    loop {
        match conn.read_request() {
            Ok(Some(request)) => {
                let response = routes::route(&request, shared);
                let stopping = shared.stopping.load(Ordering::SeqCst);
                let keep_alive = request.wants_keep_alive() && !stopping;
                let head_only = request.method == "HEAD";
                if conn
                    .write_response(&response, request.version, keep_alive, head_only)
                    .is_err()
                {
                    return;
                }
                if !keep_alive {
                    conn.linger();
                    return;
                }
            }
            Ok(None) | Err(Fault::Gone) => return,
            Err(Fault::Client(status, reason)) => {
                let response = Response::html(status, pages::client_error(status, reason));
                // The request was unreadable, so we don't know its version or method.
                let _ = conn.write_response(&response, Version::Http11, false, false);
                conn.linger();
                return;
            }
        }
    }
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read from the client and not yet consumed; may hold the start of a pipelined
    /// request after the current one.
    buf: Vec<u8>,
}

impl Connection {
    /// Reads the next request. `Ok(None)` means the client closed the connection, or went idle,
    /// cleanly between requests.
    fn read_request(&mut self) -> Result<Option<Request>, Fault> {
        // The deadline for the whole request starts with its first byte, which may already be in
        // the buffer if the client pipelined it.
        let mut deadline = (!self.buf.is_empty()).then(|| Instant::now() + REQUEST_TIMEOUT);
        let head_end = loop {
            // RFC 9112 §2.2: a server should ignore empty lines received before a request line.
            let blank = self
                .buf
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            self.buf.drain(..blank);
            let window = &self.buf[..self.buf.len().min(MAX_HEAD_BYTES)];
            if let Some(end) = find_head_end(window) {
                break end;
            }
            if self.buf.len() >= MAX_HEAD_BYTES {
                return Err(Fault::Client(
                    431,
                    "The request's headers are larger than 16 KiB.",
                ));
            }
            match self.fill(deadline)? {
                Filled::Bytes => {
                    deadline.get_or_insert_with(|| Instant::now() + REQUEST_TIMEOUT);
                }
                Filled::Eof | Filled::TimedOut if self.buf.is_empty() => return Ok(None),
                Filled::Eof => return Err(Fault::Gone),
                Filled::TimedOut => {
                    return Err(Fault::Client(
                        408,
                        "The request's headers took too long to arrive.",
                    ))
                }
            }
        };
        let head: Vec<u8> = self.buf.drain(..head_end).collect();
        let mut request = parse_head(&head, self.peer)?;
        let framing = body_framing(&request)?;
        let deadline = deadline.unwrap_or_else(|| Instant::now() + REQUEST_TIMEOUT);

        match expectation(&request, &framing)? {
            Expectation::Continue if self.buf.is_empty() => {
                self.stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .map_err(|_| Fault::Gone)?;
            }
            Expectation::Continue | Expectation::None => {}
        }
        request.body = match framing {
            Framing::Length(length) => self.read_sized_body(length, deadline)?,
            Framing::Chunked => self.read_chunked_body(deadline)?,
        };
        Ok(Some(request))
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`, or for the idle
    /// timeout when no request has started yet.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<Filled, Fault> {
        let timeout = match deadline {
            None => IDLE_TIMEOUT,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Filled::TimedOut);
                }
                left
            }
        };
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|_| Fault::Gone)?;
        let start = self.buf.len();
        self.buf.resize(start + READ_CHUNK_BYTES, 0);
        let read = loop {
            match self.stream.read(&mut self.buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let read_len = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(start + read_len);
        match read {
            Ok(0) => Ok(Filled::Eof),
            Ok(_) => Ok(Filled::Bytes),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(Filled::TimedOut)
            }
            Err(_) => Err(Fault::Gone),
        }
    }

    /// Like [`Connection::fill`] in the middle of a request, where the client closing or going
    /// quiet is a fault.
    fn fill_body(&mut self, deadline: Instant) -> Result<(), Fault> {
        match self.fill(Some(deadline))? {
            Filled::Bytes => Ok(()),
            Filled::Eof => Err(Fault::Gone),
            Filled::TimedOut => Err(Fault::Client(
                408,
                "The request body took too long to arrive.",
            )),
        }
    }

    fn read_sized_body(&mut self, length: usize, deadline: Instant) -> Result<Vec<u8>, Fault> {
        while self.buf.len() < length {
            self.fill_body(deadline)?;
        }
        Ok(self.buf.drain(..length).collect())
    }

    /// Decodes a chunked body (RFC 9112 §7.1), discarding chunk extensions and trailers.
    fn read_chunked_body(&mut self, deadline: Instant) -> Result<Vec<u8>, Fault> {
        let mut body = Vec::new();
        loop {
            let line = self.take_line(MAX_CHUNK_LINE_BYTES, deadline, 400)?;
            let size = parse_chunk_size(&line)?;
            if size == 0 {
                break;
            }
            if size > (MAX_BODY_BYTES - body.len()) as u64 {
                return Err(Fault::Client(413, "The request body is larger than 1 MiB."));
            }
            // The check above keeps `size` below MAX_BODY_BYTES, so it fits in usize.
            let size = size as usize;
            while self.buf.len() < size {
                self.fill_body(deadline)?;
            }
            body.extend(self.buf.drain(..size));
            if !self.take_line(2, deadline, 400)?.is_empty() {
                return Err(Fault::Client(
                    400,
                    "A chunk of the request body overran its size.",
                ));
            }
        }
        // Trailer fields, which we read and drop, end with an empty line. They count against the
        // same cap as the head.
        let mut trailer_bytes = 0;
        loop {
            let line = self.take_line(MAX_HEAD_BYTES - trailer_bytes, deadline, 431)?;
            if line.is_empty() {
                return Ok(body);
            }
            trailer_bytes += line.len() + 2;
            if trailer_bytes >= MAX_HEAD_BYTES {
                return Err(Fault::Client(
                    431,
                    "The request's trailer fields are too large.",
                ));
            }
        }
    }

    /// Removes one line (ending in CRLF or a bare LF) from the buffer and returns it without its
    /// ending. A line longer than `limit` bytes is answered with `status`.
    fn take_line(
        &mut self,
        limit: usize,
        deadline: Instant,
        status: u16,
    ) -> Result<Vec<u8>, Fault> {
        loop {
            if let Some(end) = self.buf.iter().take(limit + 2).position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > limit {
                    break;
                }
                return Ok(line);
            }
            if self.buf.len() >= limit + 2 {
                break;
            }
            self.fill_body(deadline)?;
        }
        Err(Fault::Client(
            status,
            "A line in the chunked request body is too long.",
        ))
    }

    fn write_response(
        &mut self,
        response: &Response,
        version: Version,
        keep_alive: bool,
        head_only: bool,
    ) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            response.status,
            reason_phrase(response.status),
            clock::http_date(SystemTime::now()),
            SERVER_NAME,
            response.content_type,
            response.body.len(),
        );
        for (name, value) in &response.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        } else if version == Version::Http10 {
            head.push_str("Connection: keep-alive\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if head_only {
            return self.stream.write_all(&out);
        }
        match &response.body {
            Body::Full(bytes) => {
                // One write for head and body keeps small responses in one segment.
                out.extend_from_slice(bytes);
                self.stream.write_all(&out)
            }
            Body::Filler { kib } => {
                self.stream.write_all(&out)?;
                write_filler(&mut self.stream, *kib)
            }
        }
    }

    /// Closes our side, then reads and discards what the client is still sending for a little
    /// while, so that its unread bytes don't turn into a reset that destroys our last response.
    fn linger(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + LINGER_TIME;
        let mut scratch = [0u8; 8192];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match self.stream.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }
}

/// Writes `kib` blocks of 1 KiB. Each block starts with its number, so a streaming test can check
/// that nothing was lost or reordered, and ends with a newline.
fn write_filler(stream: &mut TcpStream, kib: u64) -> io::Result<()> {
    const BLOCKS_PER_WRITE: u64 = 64;
    const FILL: &[u8] = b"Fairshare Party: vote for a fairer future. ";
    let mut batch = Vec::with_capacity((BLOCKS_PER_WRITE * 1024) as usize);
    let mut block = 0;
    while block < kib {
        batch.clear();
        let end = (block + BLOCKS_PER_WRITE).min(kib);
        for n in block..end {
            let start = batch.len();
            batch.extend_from_slice(format!("block {n:08} ").as_bytes());
            while batch.len() - start < 1023 {
                let room = 1023 - (batch.len() - start);
                batch.extend_from_slice(&FILL[..room.min(FILL.len())]);
            }
            batch.push(b'\n');
        }
        stream.write_all(&batch)?;
        block = end;
    }
    Ok(())
}

/// Finds where the head ends: the index just past the first empty line. `buf` starts with a
/// non-empty line, since leading empty lines are skipped before this is called.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &byte) in buf.iter().enumerate() {
        if byte == b'\n' {
            let line = &buf[line_start..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() && line_start > 0 {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Parses the request line and header fields. The body is filled in later.
fn parse_head(head: &[u8], peer: SocketAddr) -> Result<Request, Fault> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let request_line = lines.next().unwrap_or_default();
    let (method, path, query, version) = parse_request_line(request_line)?;

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        headers.push(parse_header_field(line)?);
    }
    let request = Request {
        method,
        path,
        query,
        version,
        headers,
        body: Vec::new(),
        peer,
    };

    // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without exactly one Host.
    let hosts = request.header_values("host").count();
    if hosts > 1 || (hosts == 0 && version == Version::Http11) {
        return Err(Fault::Client(
            400,
            "An HTTP/1.1 request needs exactly one Host header.",
        ));
    }
    Ok(request)
}

type RequestLine = (String, String, Option<String>, Version);

fn parse_request_line(line: &[u8]) -> Result<RequestLine, Fault> {
    const BAD: Fault = Fault::Client(400, "The request line is malformed.");
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(BAD);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(BAD);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Fault::Client(
                505,
                "This site speaks HTTP/1.0 and HTTP/1.1 only.",
            ));
        }
        _ => return Err(BAD),
    };
    // Both checks above leave only ASCII, so these conversions can't fail.
    let method = String::from_utf8_lossy(method).into_owned();
    let target = String::from_utf8_lossy(target);
    // A proxy may send the absolute form (`http://host/path`); the site only needs the path.
    let origin_form = match target.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => rest[i..].to_owned(),
                Some(i) => format!("/{}", &rest[i..]),
                None => "/".to_owned(),
            }
        }
        _ if target.starts_with('/') => target.into_owned(),
        // `OPTIONS *` asks about the server as a whole; route it like any unknown path.
        _ if &*target == "*" && method == "OPTIONS" => target.into_owned(),
        _ => return Err(BAD),
    };
    let (path, query) = match origin_form.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (origin_form, None),
    };
    Ok((method, path, query, version))
}

fn parse_header_field(line: &[u8]) -> Result<(String, String), Fault> {
    // A line starting with whitespace is an obsolete folded continuation, which RFC 9112 §5.2
    // lets a server reject; accepting it is a classic source of proxy/origin disagreement.
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err(Fault::Client(400, "A header line has no colon."));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // Whitespace between the name and the colon must be rejected (RFC 9112 §5.1): a proxy that
    // trims it and an origin that doesn't would disagree about what the header is.
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return Err(Fault::Client(400, "A header name is malformed."));
    }
    let value = value.trim_ascii();
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Fault::Client(
            400,
            "A header value contains a control character.",
        ));
    }
    Ok((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// Decides how the body is delimited, refusing the ambiguous combinations that request
/// smuggling relies on.
fn body_framing(request: &Request) -> Result<Framing, Fault> {
    let codings = request.header_tokens("transfer-encoding");
    let lengths: Vec<&str> = request
        .header_values("content-length")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let has_te = request.header_values("transfer-encoding").next().is_some();

    if has_te {
        if !lengths.is_empty() {
            return Err(Fault::Client(
                400,
                "The request has both Content-Length and Transfer-Encoding.",
            ));
        }
        if request.version == Version::Http10 {
            return Err(Fault::Client(
                400,
                "HTTP/1.0 requests can't use Transfer-Encoding.",
            ));
        }
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            [.., last] if last == "chunked" => Err(Fault::Client(
                501,
                "Only the chunked transfer coding is supported.",
            )),
            _ => Err(Fault::Client(
                400,
                "The request's final transfer coding isn't chunked.",
            )),
        };
    }
    let Some(first) = lengths.first() else {
        return Ok(Framing::Length(0));
    };
    if lengths.iter().any(|l| l != first) {
        return Err(Fault::Client(
            400,
            "The request has conflicting Content-Length values.",
        ));
    }
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Fault::Client(
            400,
            "The request's Content-Length isn't a number.",
        ));
    }
    match first.parse::<usize>() {
        Ok(length) if length <= MAX_BODY_BYTES => Ok(Framing::Length(length)),
        // All digits, so a parse failure can only be an overflow: certainly too large.
        _ => Err(Fault::Client(413, "The request body is larger than 1 MiB.")),
    }
}

enum Expectation {
    None,
    Continue,
}

/// Handles `Expect` (RFC 9110 §10.1.1). A client waiting for `100 Continue` should get it only
/// when we mean to read its body; one with an oversized body has already been answered 413.
fn expectation(request: &Request, framing: &Framing) -> Result<Expectation, Fault> {
    let Some(expect) = request.header("expect") else {
        return Ok(Expectation::None);
    };
    if !expect.eq_ignore_ascii_case("100-continue") {
        return Err(Fault::Client(
            417,
            "The only expectation this site meets is 100-continue.",
        ));
    }
    let has_body = !matches!(framing, Framing::Length(0));
    if request.version == Version::Http11 && has_body {
        Ok(Expectation::Continue)
    } else {
        Ok(Expectation::None)
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, Fault> {
    const BAD: Fault = Fault::Client(400, "A chunk size in the request body is malformed.");
    let size = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii_end();
    // Fifteen hex digits is already far beyond the body cap; more can only be an attack on the
    // arithmetic.
    if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(BAD);
    }
    let digits = std::str::from_utf8(size).map_err(|_| BAD)?;
    u64::from_str_radix(digits, 16).map_err(|_| BAD)
}

/// `tchar` from RFC 9110 §5.6.2: the bytes allowed in methods and header names.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn head(text: &str) -> Result<Request, Fault> {
        parse_head(text.as_bytes(), peer())
    }

    #[test]
    fn head_end_accepts_crlf_and_bare_lf() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"),
            Some(27)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\nrest"), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }

    #[test]
    fn request_line_splits_path_and_query() {
        let request = head("GET /search?q=fair%20rent HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/search");
        assert_eq!(request.query.as_deref(), Some("q=fair%20rent"));
    }

    #[test]
    fn absolute_form_target_keeps_only_path() {
        let request = head("GET http://demo.example/echo?x=1 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(request.path, "/echo");
        assert_eq!(request.query.as_deref(), Some("x=1"));
        let request = head("GET http://demo.example HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(request.path, "/");
    }

    #[test]
    fn malformed_heads_are_client_faults() {
        let bad = |text: &str| match head(text) {
            Err(Fault::Client(status, _)) => status,
            Err(Fault::Gone) => 0,
            Ok(_) => 200,
        };
        assert_eq!(bad("GARBAGE\r\n\r\n"), 400);
        assert_eq!(bad("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(bad("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
        assert_eq!(bad("GET / HTTX/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(bad("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(bad("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
        assert_eq!(bad("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400);
        assert_eq!(bad("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"), 400);
        assert_eq!(bad("G\u{e9}T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
        assert_eq!(bad("GET / HTTP/1.0\r\n\r\n"), 200);
    }

    #[test]
    fn framing_rejects_smuggling_shapes() {
        let framing = |extra: &str| {
            let request = head(&format!("POST / HTTP/1.1\r\nHost: a\r\n{extra}\r\n")).unwrap();
            match body_framing(&request) {
                Ok(Framing::Length(n)) => format!("length {n}"),
                Ok(Framing::Chunked) => "chunked".to_owned(),
                Err(Fault::Client(status, _)) => status.to_string(),
                Err(Fault::Gone) => "gone".to_owned(),
            }
        };
        assert_eq!(framing(""), "length 0");
        assert_eq!(framing("Content-Length: 12\r\n"), "length 12");
        assert_eq!(framing("Content-Length: 12, 12\r\n"), "length 12");
        assert_eq!(
            framing("Content-Length: 12\r\nContent-Length: 13\r\n"),
            "400"
        );
        assert_eq!(framing("Content-Length: -1\r\n"), "400");
        assert_eq!(
            framing("Content-Length: 99999999999999999999999\r\n"),
            "413"
        );
        assert_eq!(framing("Content-Length: 1048577\r\n"), "413");
        assert_eq!(framing("Transfer-Encoding: chunked\r\n"), "chunked");
        assert_eq!(framing("Transfer-Encoding: Chunked\r\n"), "chunked");
        assert_eq!(
            framing("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
            "400"
        );
        assert_eq!(framing("Transfer-Encoding: gzip, chunked\r\n"), "501");
        assert_eq!(framing("Transfer-Encoding: chunked, gzip\r\n"), "400");
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Ok(26));
        assert_eq!(parse_chunk_size(b"1A;name=value"), Ok(26));
        assert_eq!(parse_chunk_size(b"0"), Ok(0));
        assert!(parse_chunk_size(b"").is_err());
        assert!(parse_chunk_size(b"-1").is_err());
        assert!(parse_chunk_size(b"ffffffffffffffffff").is_err());
    }
}
