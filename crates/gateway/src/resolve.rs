//! One view of a request, resolved once: its authority and its path, in
//! the forms every layer decides on.
//!
//! An attacker who reads our code looks for two spellings of one resource:
//! one that a policy matches and one that the origin serves. So every
//! decision that depends on where a request goes (site, route, leak-guard
//! policy, WAF exclusions, flood route, cache key) is taken from the values
//! this module makes, never from the raw `Host` header or the raw path, and
//! the upstream is sent the same normalised authority and path.
//!
//! Three forms of the path exist:
//! * the raw path, which the WAF inspects (CRS looks for `../` in it);
//! * the forwarded path (RFC 3986 section 6.2.2: unreserved characters
//!   decoded, other escapes upper-cased, a `%` that starts no escape
//!   written `%25`, dot segments removed), plus duplicate slashes merged
//!   as nginx does: what the upstream receives;
//! * the matching path: the forwarded path decoded once more in full (so
//!   `%2f` is a slash), backslashes read as slashes, `;parameters` dropped
//!   from segments, dot segments removed again and lower-cased. Route
//!   prefixes are matched against it, so that any spelling an origin might
//!   read as `/donations/feed` meets the policy of `/donations/feed`.
//!   Over-matching only ever applies a route's policy to a path the origin
//!   might serve under it; it never lets a path escape one.

use std::fmt;

use crate::verdict::BadRequest;

/// Why a request's authority was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorityError {
    /// HTTP/1.1 without a `Host` header (RFC 9112 section 3.2).
    Missing,
    /// More than one `Host` header.
    Repeated,
    /// `Host` and the request target's authority (absolute form, or
    /// HTTP/2's `:authority`) name different hosts.
    Conflicting,
    /// Not a valid host, IP literal or port.
    Invalid,
}

impl AuthorityError {
    /// Why the request is refused, for the access log.
    pub fn verdict(&self) -> BadRequest {
        match self {
            AuthorityError::Missing => BadRequest::HostMissing,
            AuthorityError::Repeated => BadRequest::HostRepeated,
            AuthorityError::Conflicting => BadRequest::HostConflict,
            AuthorityError::Invalid => BadRequest::HostInvalid,
        }
    }
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::verdict::Verdict::BadRequest(self.verdict()).fmt(f)
    }
}

/// A request's authority, normalised: lower case, one trailing dot removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    /// The host without port: a name, an IPv4 address or `[v6]`; empty for
    /// an HTTP/1.0 request without `Host`.
    pub host: String,
    /// The port, when one was given.
    pub port: Option<u16>,
}

impl Authority {
    /// The value for the upstream's `Host` header.
    pub fn header_value(&self) -> String {
        match self.port {
            Some(port) => format!("{}:{port}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Parses and normalises one authority (`host[:port]`).
pub fn parse_authority(text: &str) -> Result<Authority, AuthorityError> {
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']').ok_or(AuthorityError::Invalid)?;
        let literal = &rest[..end];
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(AuthorityError::Invalid);
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(AuthorityError::Invalid)?),
        };
        (format!("[{}]", literal.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        // A name of letters, digits, `-`, `_` and dots, as DNS and IPv4
        // addresses are written. RFC 3986 would also allow percent escapes
        // and sub-delimiters in a name; no real host has them, and servers
        // disagree on what they mean, so they are refused. One trailing dot
        // (the root) is dropped; a second would leave a name that no site or
        // policy spells, so it is refused too.
        let host = host.strip_suffix('.').unwrap_or(host);
        let valid = !host.is_empty()
            && !host.ends_with('.')
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !host.starts_with('.')
            && !host.contains("..");
        if !valid {
            return Err(AuthorityError::Invalid);
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        // RFC 3986 allows an empty port; it means the default.
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| AuthorityError::Invalid)?)
        }
        Some(_) => return Err(AuthorityError::Invalid),
    };
    Ok(Authority { host, port })
}

/// Resolves a request's authority from its `Host` headers and the
/// authority of its target (absolute form, or HTTP/2's `:authority`).
/// `http11` says whether `Host` is required (HTTP/1.1 and later).
pub fn resolve_authority<'a>(
    mut hosts: impl Iterator<Item = &'a [u8]>,
    target: Option<&str>,
    http11: bool,
) -> Result<Authority, AuthorityError> {
    let first = hosts.next();
    if first.is_some() && hosts.next().is_some() {
        return Err(AuthorityError::Repeated);
    }
    let host = match first {
        // An empty `Host` names no host: HTTP/1.0 requests (which need no
        // name) go to the catch-all site, if any; HTTP/1.1 ones are refused
        // as if it were missing, as Apache does.
        Some(bytes) if bytes.iter().all(|b| *b == b' ' || *b == b'\t') => {
            if http11 && target.is_none() {
                return Err(AuthorityError::Missing);
            }
            Some(Authority {
                host: String::new(),
                port: None,
            })
        }
        Some(bytes) => Some(parse_authority(
            std::str::from_utf8(bytes).map_err(|_| AuthorityError::Invalid)?,
        )?),
        None => None,
    };
    let target = match target {
        Some(t) => Some(parse_authority(t)?),
        None => None,
    };
    match (host, target) {
        (Some(h), Some(t)) if h.host != t.host => Err(AuthorityError::Conflicting),
        (_, Some(t)) => Ok(t),
        (Some(h), None) => Ok(h),
        (None, None) if http11 => Err(AuthorityError::Missing),
        (None, None) => Ok(Authority {
            host: String::new(),
            port: None,
        }),
    }
}

/// A request path in the forms the gateway uses (see the module's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    /// What the upstream is sent, without the query.
    pub forwarded: String,
    /// What route prefixes are matched against.
    pub matching: String,
}

/// Normalises a raw request path (without the query string).
pub fn resolve_path(raw: &str) -> ResolvedPath {
    let forwarded = forwarded_path(raw);
    let matching = matching_path(&forwarded);
    ResolvedPath {
        forwarded,
        matching,
    }
}

/// Whether a byte is one of RFC 3986's unreserved characters, which mean
/// the same percent-encoded or not.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 normalisation plus merged slashes: the path the upstream gets.
fn forwarded_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if i + 2 < bytes.len() {
                if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    let c = h * 16 + l;
                    if unreserved(c) {
                        decoded.push(c as char);
                    } else {
                        decoded.push('%');
                        decoded.push(bytes[i + 1].to_ascii_uppercase() as char);
                        decoded.push(bytes[i + 2].to_ascii_uppercase() as char);
                    }
                    i += 3;
                    continue;
                }
            }
            // A `%` that starts no escape stands for itself, and is sent
            // as `%25`: left bare, it would join the characters decoded
            // after it into an escape the upstream reads (`%%32%65` would
            // become `%2e`, a dot segment), and the path would change
            // when resolved again.
            decoded.push_str("%25");
            i += 1;
            continue;
        }
        // Bytes that are not ASCII arrive only through a lenient parser;
        // they are escaped rather than passed on raw.
        if b.is_ascii() {
            decoded.push(b as char);
        } else {
            decoded.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    let mut out = remove_dot_segments(&decoded, |s| s);
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The forwarded path decoded in full, read as the most lenient origin
/// would read it, and lower-cased: what route prefixes are matched against.
fn matching_path(forwarded: &str) -> String {
    let bytes = forwarded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                decoded.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let text: String = String::from_utf8_lossy(&decoded)
        .chars()
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    // `;` starts a segment's parameters (`/feed;jsessionid=1`), which
    // Java servers and others strip before routing.
    let mut out = remove_dot_segments(&text, |segment| segment.split(';').next().unwrap_or(""));
    if out.is_empty() {
        out.push('/');
    }
    out.make_ascii_lowercase();
    out
}

/// Removes `.` and `..` segments (RFC 3986 section 5.2.4, never above the
/// root) and empty segments (duplicate slashes), keeping a trailing slash.
/// `segment` maps each segment before it is judged.
fn remove_dot_segments<'a>(path: &'a str, segment: impl Fn(&'a str) -> &'a str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for part in path.split('/') {
        let part = segment(part);
        trailing_slash = false;
        match part {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                kept.pop();
                trailing_slash = true;
            }
            other => kept.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    for part in &kept {
        out.push('/');
        out.push_str(part);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    out
}

/// Whether `path` (a matching path, lower case) falls under `prefix`,
/// compared without case.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> Result<String, AuthorityError> {
        parse_authority(text).map(|a| a.header_value())
    }

    #[test]
    fn authorities_are_normalised_or_refused() {
        assert_eq!(host("Example.ORG"), Ok("example.org".into()));
        assert_eq!(host("example.org."), Ok("example.org".into()));
        assert_eq!(host("example.org.:8080"), Ok("example.org:8080".into()));
        assert_eq!(host("example.org:"), Ok("example.org".into()));
        assert_eq!(host("127.0.0.1:80"), Ok("127.0.0.1:80".into()));
        assert_eq!(host("[::1]:8080"), Ok("[::1]:8080".into()));
        assert_eq!(host("[2001:DB8::1]"), Ok("[2001:db8::1]".into()));
        for bad in [
            "[",
            "]:",
            ":",
            "",
            "[::1",
            "[::1]x",
            "[zz]",
            "a b",
            "example.org..",
            "example.org..:8080",
            ".example.org",
            "exa%6dple.org",
            "example.org:99999",
            "example.org:8o",
            "a@b",
            "example.org:80:80",
            "ex/ample",
        ] {
            assert_eq!(
                parse_authority(bad),
                Err(AuthorityError::Invalid),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_target_authority_wins_and_conflicts_are_refused() {
        let one = |h: &'static str| std::iter::once(h.as_bytes());
        assert_eq!(
            resolve_authority(one("a.example"), None, true)
                .unwrap()
                .host,
            "a.example"
        );
        assert_eq!(
            resolve_authority(std::iter::empty(), Some("b.example"), true)
                .unwrap()
                .host,
            "b.example"
        );
        assert_eq!(
            resolve_authority(one("B.example."), Some("b.example:443"), true)
                .unwrap()
                .header_value(),
            "b.example:443"
        );
        assert_eq!(
            resolve_authority(one("a.example"), Some("b.example"), true),
            Err(AuthorityError::Conflicting)
        );
        assert_eq!(
            resolve_authority(std::iter::empty(), None, true),
            Err(AuthorityError::Missing)
        );
        assert_eq!(
            resolve_authority(std::iter::empty(), None, false)
                .unwrap()
                .host,
            ""
        );
        assert_eq!(
            resolve_authority(std::iter::once(&b""[..]), None, false)
                .unwrap()
                .host,
            ""
        );
        assert_eq!(
            resolve_authority(std::iter::once(&b""[..]), None, true),
            Err(AuthorityError::Missing)
        );
        let two = ["a.example".as_bytes(), "a.example".as_bytes()];
        assert_eq!(
            resolve_authority(two.into_iter(), None, true),
            Err(AuthorityError::Repeated)
        );
    }

    #[test]
    fn every_spelling_of_a_path_matches_the_same_route() {
        for spelling in [
            "/donations/feed",
            "/%64onations/feed",
            "//donations/feed",
            "/donations//feed",
            "/donations/./feed",
            "/x/../donations/feed",
            "/DONATIONS/FEED",
            "/donations%2ffeed",
            "/donations%2Ffeed",
            "/donations%5cfeed",
            "/donations\\feed",
            "/donations;x=1/feed",
            "/donations/feed;jsessionid=1",
            "/./donations/feed",
            "/%2e%2e/donations/feed",
            "/x/%2e%2e/donations/feed",
            "/x/%2E%2E%2fdonations/feed",
            "/../../donations/feed",
        ] {
            let p = resolve_path(spelling);
            assert!(
                under_prefix(&p.matching, "/donations/feed"),
                "{spelling:?} -> {p:?}"
            );
        }
        assert!(!under_prefix(
            &resolve_path("/donations/feedx/../other").matching,
            "/donations/feed"
        ));
    }

    #[test]
    fn the_forwarded_path_is_rfc3986_normal() {
        assert_eq!(
            resolve_path("/%64onations/feed").forwarded,
            "/donations/feed"
        );
        assert_eq!(
            resolve_path("/x/../donations/./feed").forwarded,
            "/donations/feed"
        );
        assert_eq!(
            resolve_path("//donations//feed/").forwarded,
            "/donations/feed/"
        );
        assert_eq!(resolve_path("/a%2fb").forwarded, "/a%2Fb");
        assert_eq!(resolve_path("/a%2e%2e/b").forwarded, "/a../b");
        assert_eq!(resolve_path("/%2e%2e/b").forwarded, "/b");
        assert_eq!(resolve_path("/").forwarded, "/");
        assert_eq!(resolve_path("").forwarded, "/");
        assert_eq!(resolve_path("/..").forwarded, "/");
        assert_eq!(resolve_path("/a/b/..").forwarded, "/a/");
        assert_eq!(resolve_path("/a%").forwarded, "/a%25");
        assert_eq!(resolve_path("/a%zz").forwarded, "/a%25zz");
    }

    /// Found by the `request_head` fuzz target: a bare `%` followed by
    /// escapes of hex digits became an escape once they were decoded.
    #[test]
    fn a_bare_percent_never_makes_an_escape() {
        for (raw, forwarded, matching) in [
            ("/x/%%32%65%%32%65/y", "/x/%252e%252e/y", "/x/%2e%2e/y"),
            ("/%%62e", "/%25be", "/%be"),
            ("/%%41", "/%25A", "/%a"),
            ("/a%%", "/a%25%25", "/a%%"),
            ("/%25", "/%25", "/%"),
        ] {
            let p = resolve_path(raw);
            assert_eq!(p.forwarded, forwarded, "{raw:?}");
            assert_eq!(p.matching, matching, "{raw:?}");
            assert_eq!(resolve_path(&p.forwarded), p, "{raw:?} resolved again");
        }
    }
}
