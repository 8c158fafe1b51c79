//! The CRS regression suites over real HTTP.
//!
//! This is what go-ftw does against ModSecurity: every test request goes to
//! a running gateway over TCP, bracketed by two marker requests that carry an
//! `X-CRS-Test` header. A marker rule logs each marker, so the WAF error log
//! lines between the two markers are exactly the lines of the test request;
//! the case's expectations (rule ids, log patterns, status) are checked
//! against them. The gateway's own HTTP front end (Pingora) is therefore in
//! the loop: a request it refuses before the WAF sees it fails its case,
//! unless the overrides file lists it with a reason.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cases::{Case, Input, Overrides, Suite};
use crate::report::{check, run_cases, Outcome, Report};

/// The marker rule to load into the gateway (before the CRS rules): it logs
/// every request that carries an `X-CRS-Test` header.
pub const MARKER_RULE: &str = r#"SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" "id:999999,phase:1,pass,t:none,log,msg:'X-CRS-Test %{MATCHED_VAR}'""#;

/// Where the HTTP run sends its requests and reads the log.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    pub gateway: SocketAddr,
    /// The gateway's WAF error log.
    pub waf_log: PathBuf,
    /// How long to wait for one response or log line.
    pub timeout: Duration,
}

/// The bytes a go-ftw client would put on the wire for one test input.
pub fn wire_request(input: &Input) -> Vec<u8> {
    if let Some(raw) = &input.raw {
        return raw.clone();
    }
    let data = expand_templates(&input.data.clone().unwrap_or_default());
    let mut headers = input.headers.clone();
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if input.autocomplete {
        if !data.is_empty()
            && !has(&headers, "content-length")
            && !has(&headers, "transfer-encoding")
        {
            headers.push(("Content-Length".into(), data.len().to_string()));
        }
        if !data.is_empty() && !has(&headers, "content-type") {
            headers.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        if !has(&headers, "connection") {
            headers.push(("Connection".into(), "close".into()));
        }
    }
    let mut out = Vec::with_capacity(256 + data.len());
    out.extend_from_slice(input.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(input.uri.as_bytes());
    if !input.version.is_empty() {
        out.push(b' ');
        out.extend_from_slice(input.version.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    for (k, v) in &headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&data);
    out
}

/// Expands go-ftw's `{{ "text" | repeat N }}` data templates, the only
/// template form CRS's tests use; anything else stays as written (a test
/// may carry `{{...}}` as an attack payload).
fn expand_templates(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    if !text.contains("{{") {
        return data.to_vec();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out.into_bytes();
        };
        let inner = after[..close].trim();
        let expanded = inner.split_once('|').and_then(|(lit, func)| {
            let lit = lit.trim().strip_prefix('"')?.strip_suffix('"')?;
            let n: usize = func.trim().strip_prefix("repeat")?.trim().parse().ok()?;
            // Test payloads are small; a cap keeps a typo from eating memory.
            (n <= 1 << 20).then(|| lit.repeat(n))
        });
        match expanded {
            Some(e) => out.push_str(&e),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// Sends raw bytes on a new connection and returns the response status
/// (0 when the connection closed without one).
pub fn send(target: SocketAddr, bytes: &[u8], timeout: Duration) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // A server may answer and close before reading a whole body; what it
    // answered is still the answer. The write side stays open, as go-ftw
    // leaves it: a half-closed client looks like one that went away.
    let _ = stream.write_all(bytes);
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + timeout;
    while !head.windows(2).any(|w| w == b"\r\n") && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(_) => break,
        }
    }
    let line = String::from_utf8_lossy(&head);
    Ok(line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

fn marker(name: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: rampart-crs-test\r\nAccept: */*\r\nX-CRS-Test: {name}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Reads the log from `offset` until a line with `needle` appears; returns
/// the lines before it, the marker line itself, and the offset after it.
fn read_log_until(
    path: &Path,
    offset: u64,
    needle: &str,
    timeout: Duration,
) -> Option<(Vec<String>, String, u64)> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            let tail = &bytes[(offset as usize).min(bytes.len())..];
            let text = String::from_utf8_lossy(tail);
            let mut lines = Vec::new();
            let mut consumed = 0u64;
            for line in text.split_inclusive('\n') {
                if !line.ends_with('\n') {
                    break;
                }
                consumed += line.len() as u64;
                if line.contains(needle) {
                    return Some((lines, line.trim_end().to_string(), offset + consumed));
                }
                lines.push(line.trim_end().to_string());
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `[unique_id "..."]` of an error log line.
fn unique_id(line: &str) -> Option<&str> {
    let start = line.find("[unique_id \"")? + "[unique_id \"".len();
    line[start..].split('"').next()
}

/// Runs one case over HTTP and returns its outcome. The log lines kept are
/// those written between the two markers by any request other than the
/// markers themselves (a marker can trip rules of its own after its marker
/// line, at high paranoia levels).
fn run_case(
    target: &HttpTarget,
    input: &Input,
    name: &str,
    offset: &mut u64,
) -> Result<Outcome, String> {
    let start = format!("{name}-start");
    let end = format!("{name}-end");
    send(target.gateway, &marker(&start), target.timeout)
        .map_err(|e| format!("marker request failed: {e}"))?;
    let (_, start_line, after_start) = read_log_until(
        &target.waf_log,
        *offset,
        &format!("X-CRS-Test {start}"),
        target.timeout,
    )
    .ok_or_else(|| {
        format!(
            "the start marker never reached {}",
            target.waf_log.display()
        )
    })?;
    let status = send(target.gateway, &wire_request(input), target.timeout).unwrap_or(0);
    send(target.gateway, &marker(&end), target.timeout)
        .map_err(|e| format!("marker request failed: {e}"))?;
    let (lines, end_line, after_end) = read_log_until(
        &target.waf_log,
        after_start,
        &format!("X-CRS-Test {end}"),
        target.timeout,
    )
    .ok_or_else(|| format!("the end marker never reached {}", target.waf_log.display()))?;
    *offset = after_end;
    let markers = [unique_id(&start_line), unique_id(&end_line)];
    let log = lines
        .into_iter()
        .filter(|l| !markers.contains(&unique_id(l)))
        .collect();
    Ok(Outcome {
        status,
        blocked: false,
        log,
    })
}

/// Runs every case of a suite over HTTP.
pub fn run_suite_http(
    target: &HttpTarget,
    suite: &Suite,
    cases: &[Case],
    overrides: &Overrides,
) -> Report {
    let mut offset = std::fs::metadata(&target.waf_log)
        .map(|m| m.len())
        .unwrap_or(0);
    run_cases(suite, cases, overrides, |input, name, expect, reasons| {
        match run_case(target, input, name, &mut offset) {
            Ok(outcome) => {
                let before = reasons.len();
                check(expect, Some(&outcome), reasons);
                if reasons.len() > before {
                    // Over HTTP the status tells whether the front end
                    // answered before the WAF could judge the request.
                    reasons.push(format!("(the gateway answered {})", outcome.status));
                }
                true
            }
            Err(why) => {
                reasons.push(why);
                false
            }
        }
    })
}

/// The overrides file for runs over HTTP: cases whose requests rampart's
/// front end answers itself, each with its reason.
pub fn default_http_overrides_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("http-overrides.yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_requests_are_completed_like_go_ftw() {
        let input = Input {
            method: "POST".into(),
            uri: "/?a=1".into(),
            version: "HTTP/1.1".into(),
            headers: vec![("Host".into(), "localhost".into())],
            data: Some(b"x=1".to_vec()),
            raw: None,
            autocomplete: true,
        };
        let text = String::from_utf8(wire_request(&input)).unwrap();
        assert!(text.starts_with("POST /?a=1 HTTP/1.1\r\nHost: localhost\r\n"));
        assert!(text.contains("Content-Length: 3\r\n") && text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nx=1"));
        let raw = Input {
            raw: Some(b"GET / HTTP/1.0\r\n\r\n".to_vec()),
            ..input
        };
        assert_eq!(wire_request(&raw), b"GET / HTTP/1.0\r\n\r\n");
    }

    #[test]
    fn repeat_templates_expand_and_payloads_stay() {
        assert_eq!(expand_templates(br#"a{{ "1" | repeat 3 }}b"#), b"a111b");
        assert_eq!(
            expand_templates(b"{{constructor.constructor('alert(1)')()}}"),
            b"{{constructor.constructor('alert(1)')()}}"
        );
    }

    #[test]
    fn unique_ids_are_read_from_log_lines() {
        assert_eq!(
            unique_id(r#"x [id "1"] [unique_id "abc-1"] y"#),
            Some("abc-1")
        );
        assert_eq!(unique_id("no id"), None);
    }

    #[test]
    fn log_is_read_between_markers() {
        let path = std::env::temp_dir().join(format!("rampart-crstest-log-{}", std::process::id()));
        std::fs::write(
            &path,
            "a X-CRS-Test t-start\nline one\nline two\nb X-CRS-Test t-end\npartial",
        )
        .unwrap();
        let (_, _, after) =
            read_log_until(&path, 0, "X-CRS-Test t-start", Duration::from_millis(50)).unwrap();
        let (lines, _, _) =
            read_log_until(&path, after, "X-CRS-Test t-end", Duration::from_millis(50)).unwrap();
        assert_eq!(lines, vec!["line one", "line two"]);
        assert!(read_log_until(&path, 0, "missing", Duration::from_millis(20)).is_none());
    }
}
