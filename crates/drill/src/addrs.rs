//! Which source address each attacker and each browser uses.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so a socket
//! may bind any of its sixteen million addresses and the gateway sees each
//! as a distinct client. Attackers get their own /24 each by default (as a
//! botnet's members mostly do: then no prefix limit can group them), counted
//! up from 127.0.1.0/24; browsers get their own /24s counted down from
//! 127.255.255.0/24. 127.0.0.0/24, where 127.0.0.1 and the tools of the
//! machine live, is never used.

use std::net::Ipv4Addr;

/// Host numbers used inside one /24 (1 to 254: never the network or
/// broadcast address).
pub const HOSTS_PER_PREFIX: u32 = 254;

/// /24 prefixes kept for browsers at the top of 127.0.0.0/8.
pub const MAX_BROWSERS: u32 = 1000;

/// /24 prefixes in 127.0.0.0/8.
const PREFIXES: u32 = 1 << 16;

/// How many attackers fit when `per_prefix` of them share each /24.
pub fn max_attackers(per_prefix: u32) -> u32 {
    (PREFIXES - 1 - MAX_BROWSERS) * per_prefix.clamp(1, HOSTS_PER_PREFIX)
}

fn in_prefix(prefix: u32, host: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, (prefix >> 8) as u8, (prefix & 0xff) as u8, host as u8)
}

/// The address of attacker `i` (0-based) when `per_prefix` attackers share
/// each /24. Distinct for every `i` below [`max_attackers`].
pub fn attacker(i: u32, per_prefix: u32) -> Ipv4Addr {
    let per_prefix = per_prefix.clamp(1, HOSTS_PER_PREFIX);
    let prefix = 1 + (i / per_prefix) % (PREFIXES - 1 - MAX_BROWSERS);
    // With one attacker per /24, vary the host number too, so that the
    // addresses do not all end in .1.
    let host = if per_prefix == 1 {
        1 + (i * 37) % HOSTS_PER_PREFIX
    } else {
        1 + i % per_prefix
    };
    in_prefix(prefix, host)
}

/// The address of browser `j` (0-based, below [`MAX_BROWSERS`]): each in
/// its own /24, apart from every attacker's.
pub fn browser(j: u32) -> Ipv4Addr {
    in_prefix(PREFIXES - 1 - j % MAX_BROWSERS, 10)
}

/// The address of the `n`th visitor to arrive (0-based) when visitors come
/// and go: the first [`MAX_BROWSERS`] are [`browser`]'s, later ones take
/// other host numbers in the same /24s, so that every visitor of a drill
/// (up to 240,000) arrives from a new address.
pub fn visitor(n: u32) -> Ipv4Addr {
    let round = (n / MAX_BROWSERS) % 240;
    in_prefix(PREFIXES - 1 - n % MAX_BROWSERS, 10 + round)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn prefix(a: Ipv4Addr) -> [u8; 3] {
        let o = a.octets();
        [o[0], o[1], o[2]]
    }

    #[test]
    fn five_thousand_attackers_are_distinct_in_distinct_prefixes() {
        let addrs: Vec<Ipv4Addr> = (0..5000).map(|i| attacker(i, 1)).collect();
        assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), 5000);
        assert_eq!(
            addrs
                .iter()
                .map(|a| prefix(*a))
                .collect::<HashSet<_>>()
                .len(),
            5000
        );
        for a in &addrs {
            assert!(a.is_loopback());
            assert_ne!(prefix(*a), [127, 0, 0], "127.0.0.0/24 is left alone");
            assert!(!matches!(a.octets()[3], 0 | 255));
        }
    }

    #[test]
    fn every_attacker_that_fits_is_distinct_and_apart_from_browsers() {
        let per_prefix = 3;
        let n = max_attackers(per_prefix);
        let attackers: HashSet<Ipv4Addr> = (0..n).map(|i| attacker(i, per_prefix)).collect();
        assert_eq!(attackers.len() as u32, n);
        let browsers: HashSet<Ipv4Addr> = (0..MAX_BROWSERS).map(browser).collect();
        assert_eq!(browsers.len() as u32, MAX_BROWSERS);
        assert!(attackers.is_disjoint(&browsers));
        let attacker_prefixes: HashSet<[u8; 3]> = attackers.iter().map(|a| prefix(*a)).collect();
        assert!(browsers
            .iter()
            .all(|b| !attacker_prefixes.contains(&prefix(*b))));
        assert_eq!(attacker_prefixes.len() as u32, n / per_prefix);
        let visitors: HashSet<Ipv4Addr> = (0..5 * MAX_BROWSERS).map(visitor).collect();
        assert_eq!(visitors.len() as u32, 5 * MAX_BROWSERS);
        assert!(visitors.is_superset(&browsers) && attackers.is_disjoint(&visitors));
    }
}
