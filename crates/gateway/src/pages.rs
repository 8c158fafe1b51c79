//! The pages the gateway itself answers with: errors and refusals.
//!
//! A page shows the status, one sentence for the visitor and a reference id
//! that is also in the access log, so a visitor who reports a problem can be
//! matched to the log line. Nothing internal (upstream addresses, rule ids)
//! is ever shown.

use bytes::Bytes;

/// The visitor-facing sentence for each status the gateway produces.
pub fn explanation(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("Bad request", "The request could not be understood."),
        403 => ("Forbidden", "This request was blocked by the site's security gateway."),
        404 => ("Not found", "This address does not serve any site here."),
        408 => ("Request timeout", "The request took too long to arrive."),
        413 => ("Request too large", "The request body is larger than this site accepts."),
        429 => ("Too many requests", "Too many requests came from your address; please wait a moment."),
        431 => ("Request headers too large", "The request headers (often cookies) are larger than this site accepts; clearing this site's cookies usually helps."),
        502 => ("Bad gateway", "The site's server could not be reached or gave an invalid answer. Please try again shortly."),
        503 => ("Service unavailable", "The site is temporarily unavailable. Please try again shortly."),
        504 => ("Gateway timeout", "The site's server took too long to answer. Please try again shortly."),
        _ => ("Error", "The request could not be completed."),
    }
}

/// Whether the client would rather read JSON: API routes always, otherwise
/// when Accept prefers JSON over HTML.
pub fn wants_json(api_route: bool, accept: Option<&str>) -> bool {
    if api_route {
        return true;
    }
    match accept {
        Some(a) => a.contains("application/json") && !a.contains("text/html"),
        None => false,
    }
}

/// Renders an error page; returns (content type, body).
pub fn render(status: u16, reference: &str, json: bool) -> (&'static str, Bytes) {
    let (title, sentence) = explanation(status);
    if json {
        let body = serde_json::json!({
            "error": { "status": status, "title": title, "detail": sentence, "reference": reference }
        });
        return ("application/json", Bytes::from(body.to_string()));
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{status} {title}</title><style>body{{font-family:system-ui,sans-serif;background:#f5f6f8;color:#222;display:flex;min-height:100vh;align-items:center;justify-content:center;margin:0}}\
main{{background:#fff;padding:2.5rem 3rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08);max-width:34rem}}h1{{margin-top:0;font-size:1.6rem}}code{{background:#eef;padding:.1rem .4rem;border-radius:4px}}</style></head>\
<body><main><h1>{status} · {title}</h1><p>{sentence}</p><p>Reference: <code>{reference}</code></p></main></body></html>\n"
    );
    ("text/html; charset=utf-8", Bytes::from(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_chosen_by_route_or_accept() {
        assert!(wants_json(true, Some("text/html")));
        assert!(wants_json(false, Some("application/json")));
        assert!(!wants_json(
            false,
            Some("text/html,application/xhtml+xml,application/json;q=0.9")
        ));
        assert!(!wants_json(false, None));
    }

    #[test]
    fn pages_carry_the_reference_and_nothing_internal() {
        let (ct, body) = render(502, "ref-123", false);
        assert!(ct.starts_with("text/html"));
        let text = std::str::from_utf8(&body).unwrap();
        assert!(text.contains("502") && text.contains("ref-123"));
        let (ct, body) = render(504, "ref-9", true);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["status"], 504);
        assert_eq!(v["error"]["reference"], "ref-9");
    }
}
