//! Arbitrary bytes as an HTTP/1 request head, parsed with `httparse`, then
//! the gateway's one resolution of the request: its authority (from the
//! `Host` headers and the target) and its path, taken as the proxy takes it.
//!
//! Invariants:
//! * a resolved authority is lower case and reads back as itself;
//! * the forwarded path starts with `/` and has no empty, `.` or `..`
//!   segment (no `//`, `/./`, `/../`);
//! * the matching path starts with `/`, has no such segment either and no
//!   upper-case ASCII letter;
//! * resolving the forwarded path again gives the same forwarded and
//!   matching paths (the upstream would resolve it as we did).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_gateway::resolve::{parse_authority, resolve_authority, resolve_path};

/// Checks that `path` starts with `/` and has no empty, `.` or `..`
/// segment, apart from the empty ones before the first slash and after a
/// trailing slash.
fn assert_normal(what: &str, path: &str, raw: &str) {
    assert!(path.starts_with('/'), "{what} path {path:?} of {raw:?}");
    let inner = &path[1..];
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return;
    }
    for segment in inner.split('/') {
        assert!(
            !matches!(segment, "" | "." | ".."),
            "{what} path {path:?} of {raw:?} has segment {segment:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = request.parse(data) else {
        return;
    };
    let (Some(target), Some(version)) = (request.path, request.version) else {
        return;
    };

    // The path as `request_path` in proxy.rs takes it: the raw origin-form
    // path up to `?`, or the path of an absolute-form target.
    let (path, target_authority) = if target.starts_with('/') {
        let end = target.find('?').unwrap_or(target.len());
        (target[..end].to_string(), None)
    } else {
        match target.parse::<http::Uri>() {
            Ok(uri) => (
                uri.path().to_string(),
                uri.authority().map(|a| a.as_str().to_string()),
            ),
            Err(_) => return,
        }
    };

    let hosts = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| h.value);
    if let Ok(authority) = resolve_authority(hosts, target_authority.as_deref(), version >= 1) {
        let value = authority.header_value();
        assert!(
            !value.bytes().any(|b| b.is_ascii_uppercase()),
            "authority {value:?} is not lower case"
        );
        if !authority.host.is_empty() {
            assert_eq!(
                parse_authority(&value).as_ref(),
                Ok(&authority),
                "authority {value:?} does not read back as itself"
            );
        }
    }

    let resolved = resolve_path(&path);
    assert_normal("forwarded", &resolved.forwarded, &path);
    assert_normal("matching", &resolved.matching, &path);
    assert!(
        !resolved.matching.bytes().any(|b| b.is_ascii_uppercase()),
        "matching path {:?} of {path:?} is not lower case",
        resolved.matching
    );
    let again = resolve_path(&resolved.forwarded);
    assert_eq!(
        again, resolved,
        "resolving the forwarded path of {path:?} again changes it"
    );
});
