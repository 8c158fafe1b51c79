//! CRS's test backend (albedo) for runs over HTTP, and the reading of
//! `/reflect` requests that the in-process runner's simulated backend shares.
//!
//! hyper speaks HTTP/1.1 (keep-alive, `Content-Length` and chunked bodies,
//! framing of the answers) on a small Tokio runtime of the backend's own
//! thread, so [`ReflectBackend::start`] stays synchronous. What reaches the
//! backend has already passed the gateway's parser, so hyper's stricter one
//! is not in the way of what the suites send.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The largest request body the backend reads: test bodies are small. A
/// larger one is answered with 413 and the connection is closed.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The most header fields a request may have (hyper's default is 100): CRS
/// tests may send many, and the backend should not be what refuses them.
const MAX_HEADERS: usize = 1000;

/// A backend that answers every path with 200, and `/reflect` with the
/// status, headers and body of its JSON request body
/// (`{"status": 200, "headers": {..}, "body": "..", "encodedBody": "base64"}`).
/// Dropping it stops it: it accepts no more connections and closes open ones.
pub struct ReflectBackend {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ReflectBackend {
    pub fn start(addr: SocketAddr) -> std::io::Result<ReflectBackend> {
        // Bound here, so that a bad address is the caller's error.
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("reflect-backend".into())
            .spawn(move || runtime.block_on(serve(listener, stopped)))?;
        Ok(ReflectBackend {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ReflectBackend {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections until told to stop (or the sender is dropped).
async fn serve(listener: std::net::TcpListener, mut stopped: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        tokio::spawn(
            http1::Builder::new()
                // As albedo (Go) writes them: `Content-Type`, not `content-type`.
                .title_case_headers(true)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service_fn(answer)),
        );
    }
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reflect = request.uri().path() == "/reflect";
    let Ok(body) = Limited::new(request.into_body(), MAX_BODY).collect().await else {
        return Ok(respond(413, &[], "request body over 4 MiB"));
    };
    Ok(if reflect {
        reflect_answer(&body.to_bytes())
    } else {
        let plain = ("Content-Type".into(), "text/plain; charset=utf-8".into());
        respond(200, &[plain], "")
    })
}

/// The response; hyper frames the body itself, so the `Content-Length` and
/// `Transfer-Encoding` asked for are left out, as are headers HTTP cannot
/// carry (albedo, in Go, drops them too).
fn respond(
    status: u16,
    headers: &[(String, String)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn reflect_answer(request: &[u8]) -> Response<Full<Bytes>> {
    let Some(r) = reflection(request) else {
        let plain = ("Content-Type".into(), "text/plain".into());
        return respond(400, &[plain], "reflect needs a JSON object");
    };
    // hyper cannot send a 1xx as the final answer; albedo's Go server answers
    // one with 200 after it, so that is the answer here.
    let status = r.status.filter(|s| (200..600).contains(s)).unwrap_or(200) as u16;
    respond(status, &r.headers, r.body)
}

/// What a `/reflect` request asks the backend to answer with. The status is
/// as given (the backend over HTTP keeps only valid ones); a missing
/// `Content-Type` is answered as `text/plain`, as albedo does.
pub(crate) struct Reflection {
    pub status: Option<u64>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Reads a `/reflect` request body
/// (`{"status": 200, "headers": {..}, "body": "..", "encodedBody": "base64"}`);
/// `None` when it is not a JSON object. Both the backend over HTTP and the
/// in-process runner's simulated one answer from it.
pub(crate) fn reflection(request: &[u8]) -> Option<Reflection> {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(request)
    else {
        return None;
    };
    let status = m.get("status").and_then(|v| v.as_u64());
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(serde_json::Value::Object(h)) = m.get("headers") {
        for (k, v) in h {
            headers.push((
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            ));
        }
    }
    let mut body = m
        .get("body")
        .and_then(|v| v.as_str())
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default();
    if let Some(encoded) = m.get("encodedBody").and_then(|v| v.as_str()) {
        body = base64(encoded);
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "text/plain".into()));
    }
    Some(Reflection {
        status,
        headers,
        body,
    })
}

/// Decodes a test's `encodedBody` as leniently as the old hand-written
/// decoder did: either alphabet (`+/` or `-_`), padding optional, anything
/// else (line breaks, spaces) skipped, and a last partial byte dropped.
pub(crate) fn base64(text: &str) -> Vec<u8> {
    let mut clean: Vec<u8> = text
        .bytes()
        .filter_map(|c| match c {
            b'-' => Some(b'+'),
            b'_' => Some(b'/'),
            c if c.is_ascii_alphanumeric() || c == b'+' || c == b'/' => Some(c),
            _ => None,
        })
        .collect();
    // One character alone carries six bits, less than a byte.
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    LENIENT.decode(clean).unwrap_or_default()
}

/// The standard alphabet without padding, keeping a last character's unused
/// low bits instead of refusing them.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    #[test]
    fn reflect_answers_as_asked_over_http() {
        let backend = super::ReflectBackend::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let json = r#"{"status": 503, "headers": {"X-A": "b"}, "body": "hello"}"#;
        let mut s = std::net::TcpStream::connect(backend.local_addr()).unwrap();
        // Odd and duplicate headers, as CRS tests send, are answered too.
        write!(s, "POST /reflect?x=1 HTTP/1.1\r\nHost: a\r\nX-Odd: \u{e9}\r\nX-Odd: 2\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}", json.len()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
        assert!(
            out.contains("X-A: b\r\n") && out.ends_with("\r\n\r\nhello"),
            "{out}"
        );
        assert_eq!(super::base64("aGVsbG8="), b"hello");
    }
}
