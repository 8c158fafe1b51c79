//! The request target and headers as the upstream gets them, and the coding of
//! the response it sends back.

use super::*;

/// The path of a request's target, without its query: from the raw bytes
/// in origin form (the URI parser may have been lenient with them), from
/// the parsed URI in absolute form.
pub(super) fn request_path(header: &pingora::http::RequestHeader) -> Cow<'_, str> {
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
pub(super) fn strip_connection_headers(upstream: &mut pingora::http::RequestHeader, upgrade: bool) {
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
pub(super) fn joined_header_values(headers: &http::HeaderMap, name: &str) -> Option<String> {
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
pub(super) fn forwarded_target(forwarded_path: &str, raw_target: &[u8]) -> Vec<u8> {
    let mut target = Vec::with_capacity(raw_target.len() + 1);
    target.extend_from_slice(forwarded_path.as_bytes());
    if let Some(q) = raw_target.iter().position(|&b| b == b'?') {
        target.extend_from_slice(&raw_target[q..]);
    }
    target
}

/// A response's content coding, when it has one other than `identity`.
pub(super) fn content_coding(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
}
