//! Addresses: prefixes (CIDR), and who the client really is.

use std::net::IpAddr;

/// Address prefixes are the flood shield's type, so that the gateway and
/// the shield read `10.0.0.0/8` (and IPv4-mapped clients) the same way.
pub use rampart_flood::Cidr;

/// Works out the client's address. Forwarding headers are believed only when
/// the immediate peer is a trusted proxy; then the chain is read from the
/// right, skipping trusted hops, and the first untrusted address is the
/// client. Reading from the left would let any client choose its own address.
pub fn client_address(
    peer: IpAddr,
    trusted: &[Cidr],
    x_forwarded_for: Option<&str>,
    forwarded: Option<&str>,
) -> IpAddr {
    if trusted.is_empty() || !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    // Hops in the order written; `None` for one that is not an address
    // ("unknown", an obfuscated identifier, garbage).
    let mut hops: Vec<Option<IpAddr>> = Vec::new();
    if let Some(xff) = x_forwarded_for {
        hops.extend(xff.split(',').map(|h| parse_hop(h.trim())));
    } else if let Some(fwd) = forwarded {
        for element in fwd.split(',') {
            let hop = element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_hop(v.trim().trim_matches('"')))
            });
            hops.push(hop.flatten());
        }
    }
    // From the right: each trusted hop vouches for the one before it. The
    // first hop that is not trusted is the client. A hop that cannot be
    // read ends the walk at the last trusted address: skipping it would let
    // whatever the client wrote further left stand in for its address.
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) if trusted.iter().any(|c| c.contains(*ip)) => nearest = *ip,
            Some(ip) => return *ip,
            None => return nearest,
        }
    }
    nearest
}

fn parse_hop(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    // "[2001:db8::1]:4711" or "192.0.2.1:4711"
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.rsplit_once(':').and_then(|(a, _)| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.2.3.4")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")));
        let c6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c6.contains(ip("2001:db8:1::5")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_headers_only_from_trusted_peers() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        // An untrusted peer cannot choose its address.
        assert_eq!(
            client_address(ip("203.0.113.9"), &trusted, Some("1.2.3.4"), None),
            ip("203.0.113.9")
        );
        // A trusted proxy: the rightmost untrusted hop is the client, so a
        // client-supplied left-hand entry is ignored.
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                &trusted,
                Some("6.6.6.6, 198.51.100.7, 10.0.0.2"),
                None
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                &trusted,
                None,
                Some("for=\"[2001:db8::9]:80\";proto=https")
            ),
            ip("2001:db8::9")
        );
        let at = |xff: Option<&str>, fwd: Option<&str>| {
            client_address(ip("10.0.0.1"), &trusted, xff, fwd)
        };
        // Several lines arrive joined (the gateway joins them in order): the
        // proxy's own line, last, decides.
        assert_eq!(at(Some("6.6.6.6, 198.51.100.7"), None), ip("198.51.100.7"));
        // An unreadable hop stops the walk at the last trusted address rather
        // than letting a client-written entry further left stand in.
        assert_eq!(at(Some("6.6.6.6, unknown, 10.0.0.2"), None), ip("10.0.0.2"));
        assert_eq!(at(Some("6.6.6.6, garbage"), None), ip("10.0.0.1"));
        assert_eq!(at(None, Some("for=6.6.6.6, for=unknown")), ip("10.0.0.1"));
        // A chain of trusted hops only: the leftmost of them.
        assert_eq!(at(Some("10.0.0.3, 10.0.0.2"), None), ip("10.0.0.3"));
    }
}
