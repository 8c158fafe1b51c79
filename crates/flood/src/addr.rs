//! Client addresses, prefixes and allowlists.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::{Error, ErrorKind};

/// The most ranges one allowlist may hold. Allowlists are scanned linearly on
/// every request, and real ones (offices, monitors, a few crawler operators)
/// have tens of entries; the cap keeps a pasted-in country list from turning
/// the check into the slowest thing on the request path.
pub const MAX_ALLOW_RANGES: usize = 4096;

/// An address range such as `192.0.2.0/24` or `2001:db8::/32`.
///
/// IPv4 ranges also match IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`),
/// because a dual-stack listener reports IPv4 clients that way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// A range from a base address and prefix length; host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Result<Cidr, Error> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(Error::new(
                ErrorKind::BadCidr,
                format!("prefix length {len} is longer than {max}"),
            ));
        }
        Ok(Cidr {
            addr: mask(addr, len),
            len,
        })
    }

    /// Whether `client` lies inside this range.
    pub fn contains(&self, client: IpAddr) -> bool {
        let client = canonical(client);
        match (self.addr, client) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(client, self.len) == self.addr
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = Error;

    /// Parses `addr/len`, or a bare address as a single-host range.
    fn from_str(s: &str) -> Result<Cidr, Error> {
        let s = s.trim();
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            Error::new(
                ErrorKind::BadCidr,
                format!("{s:?} is not an IP address or range"),
            )
        })?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l.parse::<u8>().map_err(|_| {
                Error::new(ErrorKind::BadCidr, format!("{s:?} has a bad prefix length"))
            })?,
        };
        Cidr::new(addr, len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 clients; treat them as such so a
/// dual-stack listener cannot give one client two identities.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Clears the host bits of `addr` beyond `len` bits.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// How long the prefix of a client is: who counts as "the same network" for
/// prefix limits and for binding clearance cookies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixLens {
    /// IPv4 prefix length; /24 is the smallest block routed on the internet,
    /// so one /24 is usually one organisation or one ISP pool.
    pub v4: u8,
    /// IPv6 prefix length; /64 is one subnet, and a single host can hold a
    /// whole /64, so per-address limits alone are meaningless for IPv6.
    pub v6: u8,
}

impl Default for PrefixLens {
    fn default() -> PrefixLens {
        PrefixLens { v4: 24, v6: 64 }
    }
}

impl PrefixLens {
    /// The prefix (network) of a client address.
    pub fn prefix_of(&self, client: IpAddr) -> IpAddr {
        let client = canonical(client);
        match client {
            IpAddr::V4(_) => mask(client, self.v4),
            IpAddr::V6(_) => mask(client, self.v6),
        }
    }
}

/// 16 bytes for an address: IPv4 as IPv4-mapped IPv6, so tables hold one
/// fixed-size key type for both families.
pub(crate) fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    match canonical(addr) {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// A set of ranges whose clients bypass every ban, limit and challenge.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    ranges: Vec<Cidr>,
}

impl AllowList {
    /// Parses every range, collecting all errors so a config check can report
    /// each bad entry at once.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, Vec<Error>> {
        let mut ranges = Vec::with_capacity(entries.len().min(MAX_ALLOW_RANGES));
        let mut errors = Vec::new();
        if entries.len() > MAX_ALLOW_RANGES {
            errors.push(Error::new(
                ErrorKind::BadConfig,
                format!(
                    "allowlist has {} ranges; at most {MAX_ALLOW_RANGES} are allowed",
                    entries.len()
                ),
            ));
        }
        for e in entries.iter().take(MAX_ALLOW_RANGES) {
            match e.as_ref().parse::<Cidr>() {
                Ok(c) => ranges.push(c),
                Err(err) => errors.push(err),
            }
        }
        if errors.is_empty() {
            Ok(AllowList { ranges })
        } else {
            Err(errors)
        }
    }

    /// Whether the client is in any range.
    pub fn contains(&self, client: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(client))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}
