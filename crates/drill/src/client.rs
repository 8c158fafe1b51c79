//! A small HTTP/1.1 client: one connection from a chosen source address,
//! keep-alive, bodies framed by `Content-Length`, chunked encoding or the
//! end of the connection. Timeouts are the caller's (`tokio::time::timeout`
//! around [`Connection::open`] and [`Connection::exchange`]).
//!
//! Responses are capped ([`MAX_HEAD_BYTES`], [`MAX_BODY_BYTES`]): a hostile
//! or broken server hits an error, never unbounded memory.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The largest response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The largest response body accepted: pages, not downloads.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How much one read asks for.
const READ_BYTES: usize = 16 * 1024;

/// Why an exchange failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The connection could not be made.
    Connect(io::Error),
    /// The server closed the connection before sending any of the response:
    /// on a reused keep-alive connection, the request may simply be retried.
    ClosedBeforeResponse,
    /// Reading or writing failed part-way.
    Io(io::Error),
    /// The response is not HTTP/1.x as we know it, or over a cap.
    Malformed(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::ClosedBeforeResponse => f.write_str("connection closed before a response"),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Malformed(why) => write!(f, "bad response: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// One response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header fields in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

impl Response {
    /// The first value of header `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304, or an answer to HEAD).
    Empty,
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    pub keep_alive: bool,
}

/// Parses a response head from the start of `buf`. `Ok(None)` when more
/// bytes are needed; otherwise the head and its length including the blank
/// line. `head_request` says the request was `HEAD` (no body follows).
pub fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<(Head, usize)>, ClientError> {
    let Some(end) = find_head_end(buf) else {
        if buf.len() > MAX_HEAD_BYTES {
            return Err(ClientError::Malformed("head over 64 KiB"));
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end.0])
        .map_err(|_| ClientError::Malformed("head is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ClientError::Malformed("not an HTTP/1.x status line")),
    };
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or(ClientError::Malformed("bad status code"))?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ClientError::Malformed("header line without a colon"))?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(ClientError::Malformed("bad header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let tokens = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect()
    };
    let connection = tokens("connection");
    let mut keep_alive = if http11 {
        !connection.iter().any(|t| t == "close")
    } else {
        connection.iter().any(|t| t == "keep-alive")
    };
    let framing = if head_request || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if tokens("transfer-encoding")
        .last()
        .is_some_and(|t| t == "chunked")
    {
        Framing::Chunked
    } else {
        let lengths: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.as_str())
            .collect();
        match lengths.first() {
            Some(first) => {
                if lengths.iter().any(|l| l != first) {
                    return Err(ClientError::Malformed("conflicting Content-Length"));
                }
                let n: usize = first
                    .parse()
                    .map_err(|_| ClientError::Malformed("bad Content-Length"))?;
                if n > MAX_BODY_BYTES {
                    return Err(ClientError::Malformed("body over the cap"));
                }
                Framing::Length(n)
            }
            None => {
                keep_alive = false;
                Framing::UntilClose
            }
        }
    };
    Ok(Some((
        Head {
            status,
            headers,
            framing,
            keep_alive,
        },
        end.1,
    )))
}

/// Where the head ends: (end of the last header line, end of the blank line).
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(pos) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        // An empty line: "\n\n" or "\n\r\n".
        if buf.get(nl + 1) == Some(&b'\n') {
            return Some((nl, nl + 2));
        }
        if buf.get(nl + 1) == Some(&b'\r') && buf.get(nl + 2) == Some(&b'\n') {
            return Some((nl, nl + 3));
        }
        i = nl + 1;
    }
    None
}

/// Decodes a whole chunked body from the start of `buf`. `Ok(None)` when
/// more bytes are needed; otherwise the body and how many bytes it took,
/// trailers included.
pub fn parse_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ClientError> {
    let mut body = Vec::new();
    let mut i = 0;
    loop {
        let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') else {
            return if buf.len() - i > 1024 {
                Err(ClientError::Malformed("chunk size line too long"))
            } else {
                Ok(None)
            };
        };
        let line = std::str::from_utf8(&buf[i..i + nl])
            .map_err(|_| ClientError::Malformed("bad chunk size"))?;
        let size_text = line
            .trim_end_matches('\r')
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ClientError::Malformed("bad chunk size"))?;
        i += nl + 1;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let empty = nl == 0 || (nl == 1 && buf[i] == b'\r');
                i += nl + 1;
                if empty {
                    return Ok(Some((body, i)));
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(ClientError::Malformed("body over the cap"));
        }
        if buf.len() < i + size + 1 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[i..i + size]);
        i += size;
        match (buf.get(i), buf.get(i + 1)) {
            (Some(b'\n'), _) => i += 1,
            (Some(b'\r'), Some(b'\n')) => i += 2,
            (Some(b'\r'), None) => return Ok(None),
            _ => return Err(ClientError::Malformed("chunk overran its size")),
        }
    }
}

/// One client connection.
pub struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet used.
    buf: Vec<u8>,
    /// Requests answered on this connection so far.
    pub answered: u32,
    /// Whether any byte of the current response has arrived.
    started: bool,
}

impl Connection {
    /// Connects to `target`, from `source` when given (port chosen by the
    /// kernel), else from whatever address the kernel picks.
    pub async fn open(
        source: Option<IpAddr>,
        target: SocketAddr,
    ) -> Result<Connection, ClientError> {
        let socket = if target.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(ClientError::Connect)?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(ClientError::Connect)?;
        }
        let stream = socket.connect(target).await.map_err(ClientError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
            answered: 0,
            started: false,
        })
    }

    /// Sends one whole request (head and body, already serialised) and reads
    /// its response. After an error the connection must be dropped.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head_request: bool,
    ) -> Result<Response, ClientError> {
        self.started = !self.buf.is_empty();
        self.stream
            .write_all(request)
            .await
            .map_err(|e| self.fault(e))?;
        loop {
            let (head, used) = loop {
                if let Some(parsed) = parse_head(&self.buf, head_request)? {
                    break parsed;
                }
                self.fill().await?;
            };
            self.buf.drain(..used);
            if head.status < 200 {
                // 100 Continue and friends: the real answer follows.
                continue;
            }
            let body = match head.framing {
                Framing::Empty => Vec::new(),
                Framing::Length(n) => {
                    while self.buf.len() < n {
                        self.fill().await?;
                    }
                    self.buf.drain(..n).collect()
                }
                Framing::Chunked => loop {
                    if let Some((body, used)) = parse_chunked(&self.buf)? {
                        self.buf.drain(..used);
                        break body;
                    }
                    self.fill().await?;
                },
                Framing::UntilClose => {
                    loop {
                        match self.fill().await {
                            Ok(()) => {}
                            Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                                break
                            }
                            Err(e) => return Err(e),
                        }
                        if self.buf.len() > MAX_BODY_BYTES {
                            return Err(ClientError::Malformed("body over the cap"));
                        }
                    }
                    std::mem::take(&mut self.buf)
                }
            };
            self.answered += 1;
            if self.buf.capacity() > 64 * 1024 {
                // A big page passed through; idle connections keep little.
                self.buf.shrink_to(4096);
            }
            return Ok(Response {
                status: head.status,
                headers: head.headers,
                body,
                keep_alive: head.keep_alive,
            });
        }
    }

    /// Reads more bytes; the end of the stream is `UnexpectedEof` (or
    /// `ClosedBeforeResponse` when nothing of a response had arrived).
    async fn fill(&mut self) -> Result<(), ClientError> {
        self.buf.reserve(READ_BYTES);
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| self.fault(e))?;
        if n == 0 {
            return Err(self.fault(io::ErrorKind::UnexpectedEof.into()));
        }
        self.started = true;
        Ok(())
    }

    /// Classifies an I/O error: a reset or end of stream before any byte
    /// of a response is a closed keep-alive connection.
    fn fault(&self, e: io::Error) -> ClientError {
        let closed = matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        );
        if closed && !self.started {
            ClientError::ClosedBeforeResponse
        } else {
            ClientError::Io(e)
        }
    }
}

/// Serialises a GET (or, with a body, a form POST) with the given extra
/// header lines (each ending in CRLF).
pub fn request(
    method: &str,
    path: &str,
    host: &str,
    extra_headers: &str,
    form: Option<&str>,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}");
    if let Some(body) = form {
        r.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        r.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        r.push_str(body);
    } else {
        r.push_str("\r\n");
    }
    r.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> (Head, usize) {
        parse_head(text.as_bytes(), false)
            .unwrap()
            .expect("a whole head")
    }

    #[test]
    fn heads_with_each_framing() {
        let (h, used) = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
        assert_eq!(
            (h.status, h.framing, h.keep_alive, used),
            (200, Framing::Length(5), true, 46)
        );
        assert_eq!(h.headers[1], ("X-A".to_string(), "b".to_string()));
        let (h, _) = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        let (h, _) = head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = head("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let (h, _) = head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n");
        assert!(h.keep_alive);
        let (h, _) = head("HTTP/1.1 204 No Content\r\nSet-Cookie: a=b\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        // Bare LF line ends, as some servers send.
        let (h, used) = head("HTTP/1.1 404 Not Found\nContent-Length: 0\n\n");
        assert_eq!((h.status, used), (404, 42));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", false).unwrap(),
            None
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
                .unwrap()
                .unwrap()
                .0
                .framing,
            Framing::Empty
        );
    }

    #[test]
    fn broken_heads_are_errors() {
        for bad in [
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes(), false).is_err(), "{bad:?}");
        }
        let huge = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert!(parse_head(huge.as_bytes(), false).is_err());
    }

    #[test]
    fn chunked_bodies() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let (body, used) = parse_chunked(wire).unwrap().unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&wire[used..], b"NEXT");
        // Every prefix is "need more", never an error or a wrong body.
        for cut in 0..wire.len() - 4 {
            assert_eq!(parse_chunked(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_chunked(b"zz\r\n").is_err());
        assert!(parse_chunked(b"2\r\nabc\r\n").is_err());
        assert!(parse_chunked(b"fffffffff\r\n").is_err());
    }

    /// A one-connection server for exchange tests: answers each request with
    /// the next canned response, then closes.
    async fn serve(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            for r in responses {
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(r).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn keep_alive_exchanges_from_a_chosen_source() {
        let addr = serve(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n3\r\nno!\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
        ])
        .await;
        let source: IpAddr = "127.3.4.5".parse().unwrap();
        let mut c = Connection::open(Some(source), addr).await.unwrap();
        assert_eq!(c.stream.local_addr().unwrap().ip(), source);
        let r = c
            .exchange(&request("GET", "/", "x", "", None), false)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.keep_alive),
            (200, &b"hi"[..], true)
        );
        let r = c
            .exchange(&request("POST", "/f", "x", "", Some("a=1")), false)
            .await
            .unwrap();
        assert_eq!((r.status, r.text().as_ref()), (403, "no!"));
        assert_eq!(
            r.headers_named("set-cookie").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        let r = c
            .exchange(&request("GET", "/", "x", "", None), false)
            .await
            .unwrap();
        assert_eq!((r.text().as_ref(), r.keep_alive), ("until the end", false));
        assert_eq!(c.answered, 3);
        assert!(matches!(
            c.exchange(&request("GET", "/", "x", "", None), false).await,
            Err(ClientError::ClosedBeforeResponse)
        ));
    }

    #[tokio::test]
    async fn a_truncated_body_is_an_error() {
        let addr = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        let mut c = Connection::open(None, addr).await.unwrap();
        assert!(matches!(
            c.exchange(&request("GET", "/", "x", "", None), false).await,
            Err(ClientError::Io(_))
        ));
    }
}
