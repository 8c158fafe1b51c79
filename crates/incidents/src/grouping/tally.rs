//! Bounded counting structures for incidents: top-N counters, distinct
//! sources, and client prefixes as compact keys.

use super::*;

/// A client's /24 or /64, compact (no allocation per event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum PrefixKey {
    V4([u8; 3]),
    V6([u16; 4]),
}

impl PrefixKey {
    pub(super) fn of(client: IpAddr) -> PrefixKey {
        match client {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                PrefixKey::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                PrefixKey::V6([s[0], s[1], s[2], s[3]])
            }
        }
    }

    pub(super) fn label(&self) -> String {
        let address = match *self {
            PrefixKey::V4([a, b, c]) => IpAddr::V4(Ipv4Addr::new(a, b, c, 0)),
            PrefixKey::V6([a, b, c, d]) => IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)),
        };
        source_prefix(address)
    }

    /// Reads a label back (for incidents restored from the store).
    pub(super) fn parse(label: &str) -> Option<PrefixKey> {
        let (address, _) = label.split_once('/')?;
        address.parse::<IpAddr>().ok().map(PrefixKey::of)
    }
}

/// Counts by key, keeping at most `cap` keys. When a new key would pass the
/// cap, the less-counted half is forgotten: the busiest keys (the ones
/// reported) keep exact counts, and a key forgotten and seen again restarts
/// from zero, which only matters for keys near the bottom of the list.
#[derive(Clone, Debug)]
pub(super) struct TopCounter<K> {
    pub(super) counts: HashMap<K, u64>,
    pub(super) cap: usize,
}

impl<K: Hash + Eq + Clone + Ord> TopCounter<K> {
    pub(super) fn new(cap: usize) -> TopCounter<K> {
        TopCounter {
            counts: HashMap::new(),
            cap,
        }
    }

    pub(super) fn add<Q>(&mut self, key: &Q, n: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(count) = self.counts.get_mut(key) {
            *count += n;
            return;
        }
        if self.counts.len() >= self.cap {
            let mut all: Vec<(u64, K)> = self.counts.drain().map(|(k, c)| (c, k)).collect();
            let keep = self.cap / 2;
            all.select_nth_unstable_by(keep, |a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            all.truncate(keep);
            self.counts.extend(all.into_iter().map(|(c, k)| (k, c)));
        }
        self.counts.insert(key.to_owned(), n);
    }

    pub(super) fn top(&self, n: usize, label: impl Fn(&K) -> String) -> Vec<Tally> {
        let mut all: Vec<(&K, u64)> = self.counts.iter().map(|(k, c)| (k, *c)).collect();
        let order = |a: &(&K, u64), b: &(&K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        if all.len() > n {
            all.select_nth_unstable_by(n, order);
            all.truncate(n);
        }
        all.sort_unstable_by(order);
        all.into_iter()
            .map(|(k, c)| Tally {
                key: label(k),
                count: c,
            })
            .collect()
    }
}

/// Distinct client addresses: exact up to [`SOURCES_CAP`], then estimated by
/// linear counting over a 2^20-bit map (128 KiB; within a few percent up to
/// millions of addresses). After a restart the count continues from the
/// stored number, so an address seen both before and after counts twice.
#[derive(Debug)]
pub(super) struct Sources {
    pub(super) base: u64,
    pub(super) exact: HashSet<IpAddr>,
    pub(super) bits: Option<Vec<u64>>,
    pub(super) hasher: RandomState,
}

pub(super) const SOURCE_BITS: usize = 1 << 20;

impl Sources {
    pub(super) fn new(base: u64) -> Sources {
        Sources {
            base,
            exact: HashSet::new(),
            bits: None,
            hasher: RandomState::new(),
        }
    }

    pub(super) fn insert(&mut self, client: IpAddr) {
        if let Some(bits) = &mut self.bits {
            let bit = (self.hasher.hash_one(client) as usize) & (SOURCE_BITS - 1);
            bits[bit / 64] |= 1 << (bit % 64);
            return;
        }
        if self.exact.insert(client) && self.exact.len() > SOURCES_CAP {
            let mut bits = vec![0u64; SOURCE_BITS / 64];
            for client in self.exact.drain() {
                let bit = (self.hasher.hash_one(client) as usize) & (SOURCE_BITS - 1);
                bits[bit / 64] |= 1 << (bit % 64);
            }
            self.exact = HashSet::new();
            self.bits = Some(bits);
        }
    }

    pub(super) fn count(&self) -> u64 {
        let seen = match &self.bits {
            None => self.exact.len() as u64,
            Some(bits) => {
                let m = SOURCE_BITS as f64;
                let zeros = bits
                    .iter()
                    .map(|w| w.count_zeros() as u64)
                    .sum::<u64>()
                    .max(1) as f64;
                (m * (m / zeros).ln()).round() as u64
            }
        };
        self.base + seen
    }
}
