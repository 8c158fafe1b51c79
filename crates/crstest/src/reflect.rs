//! CRS's test backend (albedo) for runs over HTTP, and the reading of
//! `/reflect` requests that the in-process runner's simulated backend shares.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// The largest request body the backend reads: test bodies are small.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A backend that answers every path with 200, and `/reflect` with the
/// status, headers and body of its JSON request body
/// (`{"status": 200, "headers": {..}, "body": "..", "encodedBody": "base64"}`).
pub struct ReflectBackend {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ReflectBackend {
    pub fn start(addr: SocketAddr) -> std::io::Result<ReflectBackend> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("reflect-backend".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = std::thread::Builder::new()
                                .name("reflect-conn".into())
                                .spawn(move || serve(stream));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })?;
        Ok(ReflectBackend {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ReflectBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_string();
        let mut length = 0usize;
        let mut chunked = false;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            } else if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
            if h.trim().is_empty() {
                break;
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            read_exact(&mut reader, length.min(MAX_BODY))
        };
        let Some(body) = body else { return };
        let answer = if path == "/reflect" {
            reflect(&body)
        } else {
            plain(
                200,
                &[("Content-Type".into(), "text/plain; charset=utf-8".into())],
                b"",
            )
        };
        if writer.write_all(&answer).is_err() || close {
            return;
        }
    }
}

fn read_exact(reader: &mut impl Read, n: usize) -> Option<Vec<u8>> {
    let mut body = vec![0; n];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).ok()?;
        let n = usize::from_str_radix(size.trim().split(';').next()?.trim(), 16).ok()?;
        if n == 0 {
            let mut end = String::new();
            reader.read_line(&mut end).ok()?;
            return Some(body);
        }
        if body.len() + n > MAX_BODY {
            return None;
        }
        body.extend(read_exact(reader, n)?);
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).ok()?;
    }
}

fn plain(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Reflected\r\n").into_bytes();
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            continue;
        }
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn reflect(request: &[u8]) -> Vec<u8> {
    let Some(r) = reflection(request) else {
        return plain(
            400,
            &[("Content-Type".into(), "text/plain".into())],
            b"reflect needs a JSON object",
        );
    };
    let status = r.status.filter(|s| (100..600).contains(s)).unwrap_or(200) as u16;
    plain(status, &r.headers, &r.body)
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
    #[test]
    fn reflect_answers_as_asked() {
        let out = String::from_utf8(super::reflect(
            br#"{"status": 503, "headers": {"X-A": "b"}, "body": "hello"}"#,
        ))
        .unwrap();
        assert!(out.starts_with("HTTP/1.1 503 "));
        assert!(out.contains("X-A: b\r\n") && out.ends_with("\r\n\r\nhello"));
        assert_eq!(super::base64("aGVsbG8="), b"hello");
    }
}
