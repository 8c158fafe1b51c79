//! The `State` trait: everything the flood layer must share between the
//! nodes of a cluster, and its in-memory backend.
//!
//! The trait is deliberately small so a Redis backend is a handful of Lua
//! scripts: GCRA take-token on a key, ban records with expiry, single-use
//! nonces, and one blob of key material. Everything else (detector windows,
//! waiting-room queues) stays per node, because it is either statistical or
//! tied to connections held by this node.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use foldhash::fast::RandomState;

use crate::addr::{addr_bytes, canonical};
use crate::gcra::{Rate, Take};
use crate::table::{lock, ClientTable, LimitKey};
use crate::time::Time;

/// Why a client was banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BanReason {
    /// It kept exceeding rate limits.
    RateLimits,
    /// The WAF kept blocking its requests.
    Waf,
    /// An operator banned it.
    Manual,
    /// Many addresses of its prefix were banned for rate limits: a flood
    /// spread over one network. The ban covers the whole prefix and is
    /// listed under the prefix's network address.
    Flood,
}

/// A ban on one client address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BanRecord {
    /// The ban is in force until this time.
    pub until: Time,
    /// Which step of the escalation ladder this ban is (1 for a first ban).
    pub level: u8,
    /// Why the client was banned.
    pub reason: BanReason,
    /// The record is kept after `until` so that a repeat offender escalates;
    /// after this time it may be forgotten.
    #[serde(skip)]
    pub remember_until: Time,
}

impl BanRecord {
    /// Whether the ban is in force at `now`.
    pub fn active(&self, now: Time) -> bool {
        now < self.until
    }
}

/// Shared state of the flood layer. Implementations must be cheap to call on
/// every request and must never block on I/O for long: a networked backend
/// should fall back to local answers when its store is unreachable, because a
/// limiter outage must not become a site outage.
pub trait State: Send + Sync + 'static {
    /// Takes one token for `key` at `rate`: the GCRA step, atomically.
    fn take_token(&self, key: &LimitKey, rate: Rate, now: Time) -> Take;

    /// Takes one token for each key in order, stopping at the first refusal
    /// and returning its index and retry-after. The request path calls this
    /// once per request with every limit that applies, so a networked
    /// backend can answer in one round trip.
    fn take_tokens(&self, keys: &[(LimitKey, Rate)], now: Time) -> Result<(), (usize, Duration)> {
        for (i, (key, rate)) in keys.iter().enumerate() {
            if let Take::Denied { retry_after } = self.take_token(key, *rate, now) {
                return Err((i, retry_after));
            }
        }
        Ok(())
    }

    /// The ban record of a client, active or remembered, if any.
    fn ban_get(&self, client: IpAddr, now: Time) -> Option<BanRecord>;

    /// Stores a ban record, replacing any earlier one.
    fn ban_set(&self, client: IpAddr, record: BanRecord, now: Time);

    /// Removes a client's ban record, returning it.
    fn ban_remove(&self, client: IpAddr) -> Option<BanRecord>;

    /// Appends up to `max` ban records that are in force at `now` to `out`.
    fn ban_list(&self, now: Time, max: usize, out: &mut Vec<(IpAddr, BanRecord)>);

    /// How many bans are in force at `now`, counting at most to `max`. The
    /// console asks each second: a backend should count without copying.
    fn ban_count(&self, now: Time, max: usize) -> usize {
        let mut out = Vec::new();
        self.ban_list(now, max, &mut out);
        out.len()
    }

    /// Marks a nonce as used until `expires`. Returns `true` the first time
    /// and `false` if it was already used (a replay) or cannot be recorded.
    fn claim_nonce(&self, nonce: [u8; 16], expires: Time, now: Time) -> bool;

    /// The stored key material, if any.
    fn key_material(&self) -> Option<Vec<u8>>;

    /// Stores key material for the other nodes to load.
    fn put_key_material(&self, bytes: &[u8]);
}

/// Sizes of the in-memory backend's tables.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLimits {
    /// Limiter keys tracked (client, prefix, route and strike keys together).
    pub max_keys: usize,
    /// Ban records kept, active or remembered.
    pub max_bans: usize,
    /// Challenge nonces remembered against replay.
    pub max_nonces: usize,
}

impl Default for MemoryLimits {
    fn default() -> MemoryLimits {
        MemoryLimits {
            // One million clients with a client key and a prefix key each
            // fill this to a third, where live state is almost never
            // evicted; it costs 110 MB.
            max_keys: 6_000_000,
            // Bans are earned by clients that completed TCP handshakes and
            // kept misbehaving; a hundred thousand is far beyond real floods
            // seen by a single site and costs about 6 MB.
            max_bans: 100_000,
            // Nonces live for a challenge's lifetime (minutes) and each needs
            // a solved proof of work, so this only fills if the difficulty is
            // far too low.
            max_nonces: 200_000,
        }
    }
}

const BAN_SHARDS: usize = 16;

/// One shard of ban records, keyed by the client's 16-byte address.
type BanShard = Mutex<HashMap<[u8; 16], BanRecord, RandomState>>;

/// The default backend: everything in this process's memory, bounded.
pub struct MemoryState {
    table: ClientTable,
    bans: Box<[BanShard]>,
    ban_cap_per_shard: usize,
    ban_count: AtomicUsize,
    pick: RandomState,
    nonces: Mutex<HashMap<[u8; 16], Time, RandomState>>,
    nonce_cap: usize,
    keys: Mutex<Option<Vec<u8>>>,
}

impl MemoryState {
    /// A backend with the given table sizes, all memory allocated up front
    /// for the limiter table.
    pub fn new(limits: MemoryLimits) -> MemoryState {
        let ban_cap_per_shard = limits.max_bans.div_ceil(BAN_SHARDS).max(1);
        MemoryState {
            table: ClientTable::new(limits.max_keys),
            bans: (0..BAN_SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            ban_cap_per_shard,
            ban_count: AtomicUsize::new(0),
            pick: RandomState::default(),
            nonces: Mutex::new(HashMap::default()),
            nonce_cap: limits.max_nonces.max(1),
            keys: Mutex::new(None),
        }
    }

    /// The limiter table, for sizing reports and tests.
    pub fn table(&self) -> &ClientTable {
        &self.table
    }

    fn ban_shard(&self, key: &[u8; 16]) -> &BanShard {
        use std::hash::BuildHasher;
        &self.bans[(self.pick.hash_one(key) >> 60) as usize % BAN_SHARDS]
    }
}

impl Default for MemoryState {
    fn default() -> MemoryState {
        MemoryState::new(MemoryLimits::default())
    }
}

impl State for MemoryState {
    fn take_token(&self, key: &LimitKey, rate: Rate, now: Time) -> Take {
        self.table.take(key, rate, now)
    }

    fn take_tokens(&self, keys: &[(LimitKey, Rate)], now: Time) -> Result<(), (usize, Duration)> {
        self.table.take_many(keys, now)
    }

    fn ban_get(&self, client: IpAddr, now: Time) -> Option<BanRecord> {
        // Almost always there are no bans at all; skip hashing and locking.
        if self.ban_count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let key = addr_bytes(client);
        let mut shard = lock(self.ban_shard(&key));
        match shard.get(&key) {
            Some(r) if r.remember_until <= now && r.until <= now => {
                shard.remove(&key);
                self.ban_count.fetch_sub(1, Ordering::Relaxed);
                None
            }
            other => other.copied(),
        }
    }

    fn ban_set(&self, client: IpAddr, record: BanRecord, now: Time) {
        let key = addr_bytes(client);
        let mut shard = lock(self.ban_shard(&key));
        if !shard.contains_key(&key) && shard.len() >= self.ban_cap_per_shard {
            // Forget what may be forgotten; if the shard is still full, drop
            // the record whose memory ends first, so a new active ban is
            // never refused for lack of room.
            let before = shard.len();
            shard.retain(|_, r| r.remember_until > now || r.until > now);
            if shard.len() >= self.ban_cap_per_shard {
                if let Some(victim) = shard
                    .iter()
                    .min_by_key(|(_, r)| r.until.max(r.remember_until))
                    .map(|(k, _)| *k)
                {
                    shard.remove(&victim);
                }
            }
            self.ban_count
                .fetch_sub(before - shard.len(), Ordering::Relaxed);
        }
        if shard.insert(key, record).is_none() {
            self.ban_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn ban_remove(&self, client: IpAddr) -> Option<BanRecord> {
        let key = addr_bytes(client);
        let removed = lock(self.ban_shard(&key)).remove(&key);
        if removed.is_some() {
            self.ban_count.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    fn ban_list(&self, now: Time, max: usize, out: &mut Vec<(IpAddr, BanRecord)>) {
        let mut n = 0;
        for shard in self.bans.iter() {
            for (k, r) in lock(shard).iter() {
                if n >= max {
                    return;
                }
                if r.active(now) {
                    out.push((canonical(IpAddr::from(*k)), *r));
                    n += 1;
                }
            }
        }
    }

    fn ban_count(&self, now: Time, max: usize) -> usize {
        if self.ban_count.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        let mut n = 0;
        for shard in self.bans.iter() {
            n += lock(shard).values().filter(|r| r.active(now)).count();
            if n >= max {
                return max;
            }
        }
        n
    }

    fn claim_nonce(&self, nonce: [u8; 16], expires: Time, now: Time) -> bool {
        let mut nonces = lock(&self.nonces);
        if let Some(&exp) = nonces.get(&nonce) {
            if exp > now {
                return false;
            }
        }
        if nonces.len() >= self.nonce_cap {
            nonces.retain(|_, exp| *exp > now);
            if nonces.len() >= self.nonce_cap {
                // Refusing is the safe answer: the client is asked to solve a
                // fresh challenge rather than being let in unchecked.
                return false;
            }
        }
        nonces.insert(nonce, expires);
        true
    }

    fn key_material(&self) -> Option<Vec<u8>> {
        lock(&self.keys).clone()
    }

    fn put_key_material(&self, bytes: &[u8]) {
        *lock(&self.keys) = Some(bytes.to_vec());
    }
}

/// A shared backend is a backend: this lets the gateway keep one
/// `Arc<MemoryState>` across configuration reloads, so rebuilding the
/// `Shield` keeps every client's limiter state, ban and used nonce.
impl<T: State + ?Sized> State for std::sync::Arc<T> {
    fn take_token(&self, key: &LimitKey, rate: Rate, now: Time) -> Take {
        (**self).take_token(key, rate, now)
    }

    fn take_tokens(&self, keys: &[(LimitKey, Rate)], now: Time) -> Result<(), (usize, Duration)> {
        (**self).take_tokens(keys, now)
    }

    fn ban_get(&self, client: IpAddr, now: Time) -> Option<BanRecord> {
        (**self).ban_get(client, now)
    }

    fn ban_set(&self, client: IpAddr, record: BanRecord, now: Time) {
        (**self).ban_set(client, record, now)
    }

    fn ban_remove(&self, client: IpAddr) -> Option<BanRecord> {
        (**self).ban_remove(client)
    }

    fn ban_list(&self, now: Time, max: usize, out: &mut Vec<(IpAddr, BanRecord)>) {
        (**self).ban_list(now, max, out)
    }

    fn ban_count(&self, now: Time, max: usize) -> usize {
        (**self).ban_count(now, max)
    }

    fn claim_nonce(&self, nonce: [u8; 16], expires: Time, now: Time) -> bool {
        (**self).claim_nonce(nonce, expires, now)
    }

    fn key_material(&self) -> Option<Vec<u8>> {
        (**self).key_material()
    }

    fn put_key_material(&self, bytes: &[u8]) {
        (**self).put_key_material(bytes)
    }
}
