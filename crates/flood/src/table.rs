//! The client table: GCRA state for every tracked key, in fixed memory.
//!
//! Shape: a set-associative cache. The table is one allocation of buckets,
//! made at construction and never grown. Each bucket is 128 bytes (two cache
//! lines, aligned) holding its own lock and seven slots of (fingerprint,
//! TAT). A key hashes to exactly one bucket, so a lookup touches one pair of
//! adjacent cache lines and takes one uncontended lock: the cost per request
//! is one memory miss even with millions of clients tracked.
//!
//! Eviction is per bucket and needs no sweeps. A slot whose TAT is in the
//! past is a fully refilled bucket, which is exactly what a missing entry
//! means, so it is free. When all seven slots of a bucket are live, a new key
//! replaces the one with the lowest TAT: the client that owed the least and
//! is closest to refilled. A spoofed-address flood therefore churns through
//! its own one-request entries, while heavy hitters, whose TAT runs far
//! ahead, keep theirs.
//!
//! Keys are stored as a 64-bit keyed hash (the fingerprint), not in full.
//! The hash is seeded at random per process, so an attacker cannot aim two
//! addresses at one fingerprint; an accidental collision needs two of a few
//! million keys to share 64 bits.

use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use foldhash::fast::RandomState;

use crate::addr::addr_bytes;
use crate::gcra::{step, Rate, Take};
use crate::time::Time;

/// Slots per bucket: seven 16-byte slots and the lock fill two cache lines.
const WAYS: usize = 7;

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Keyed hash of the key; 0 marks an empty slot.
    fp: u64,
    /// Theoretical arrival time in nanoseconds since the epoch.
    tat: u64,
}

#[repr(align(64))]
struct Bucket(Mutex<[Slot; WAYS]>);

/// What a key limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum KeyKind {
    /// One client address on one site.
    Client = 1,
    /// One address prefix (/24, /64) on one site.
    Prefix = 2,
    /// All clients together on one route.
    Route = 3,
    /// Strikes counted against one client address, towards a ban.
    Strike = 4,
    /// One client address on one route with its own client limit.
    RouteClient = 5,
    /// One prefix on one route with its own prefix limit.
    RoutePrefix = 6,
    /// Clearances one prefix redeemed through the no-script wait path.
    WaitPrefix = 7,
}

/// A limiter key: what is limited (kind), where (scope: a site or route
/// index) and for whom (an address or prefix, or nothing for route keys).
/// Fixed-size and `Copy` so the hot path never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitKey {
    addr: [u8; 16],
    scope: u32,
    kind: KeyKind,
}

impl LimitKey {
    /// Builds a key. `scope` is the site or route index the key applies to.
    pub fn new(kind: KeyKind, scope: u32, addr: Option<IpAddr>) -> LimitKey {
        LimitKey {
            addr: addr.map(addr_bytes).unwrap_or([0; 16]),
            scope,
            kind,
        }
    }

    /// A stable byte encoding (kind, scope, address) for networked backends.
    pub fn to_bytes(&self) -> [u8; 21] {
        let mut out = [0u8; 21];
        out[0] = self.kind as u8;
        out[1..5].copy_from_slice(&self.scope.to_be_bytes());
        out[5..].copy_from_slice(&self.addr);
        out
    }

    /// What the key limits.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }
}

/// A bounded, set-associative table of GCRA arrival times.
pub struct ClientTable {
    buckets: Box<[Bucket]>,
    hasher: RandomState,
}

impl ClientTable {
    /// A table with room for at least `max_keys` keys, all memory allocated
    /// now. Fill it to about a third for few evictions of live state: at
    /// that load under one bucket in three hundred overflows.
    pub fn new(max_keys: usize) -> ClientTable {
        let n = max_keys.div_ceil(WAYS).max(1);
        let buckets = (0..n)
            .map(|_| Bucket(Mutex::new([Slot::default(); WAYS])))
            .collect();
        ClientTable {
            buckets,
            hasher: RandomState::default(),
        }
    }

    /// How many keys the table can hold.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// The memory held by the table, in bytes. It never changes.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// How many slots hold a key, including keys whose bucket has refilled
    /// and which are free for reuse. Walks the whole table: for reports and
    /// tests, not the request path.
    pub fn len(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| lock(&b.0).iter().filter(|s| s.fp != 0).count())
            .sum()
    }

    /// How many keys carry live state at `now` (their bucket has not
    /// refilled). Walks the whole table: for reports and tests.
    pub fn live(&self, now: Time) -> usize {
        let now = now.as_nanos();
        self.buckets
            .iter()
            .map(|b| {
                lock(&b.0)
                    .iter()
                    .filter(|s| s.fp != 0 && s.tat > now)
                    .count()
            })
            .sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one token for `key` under `rate` at `now`.
    #[inline]
    pub fn take(&self, key: &LimitKey, rate: Rate, now: Time) -> Take {
        let (fp, idx) = self.locate(key);
        self.take_at(fp, idx, rate, now)
    }

    /// Takes one token for each key in order, stopping at the first refusal;
    /// returns its index and retry-after. Tokens taken before a refusal stay
    /// taken. All buckets are touched before any is locked, so their memory
    /// misses overlap instead of queueing one after another.
    pub fn take_many(
        &self,
        keys: &[(LimitKey, Rate)],
        now: Time,
    ) -> Result<(), (usize, std::time::Duration)> {
        const MAX: usize = 8;
        let mut located = [(0u64, 0usize); MAX];
        for (slot, (key, _)) in located.iter_mut().zip(keys) {
            *slot = self.locate(key);
            // Reading the lock's poison flag is a plain load from the
            // bucket's first cache line: it starts the miss early.
            std::hint::black_box(self.buckets[slot.1].0.is_poisoned());
        }
        for (i, (key, rate)) in keys.iter().enumerate() {
            let (fp, idx) = if i < MAX {
                located[i]
            } else {
                self.locate(key)
            };
            if let Take::Denied { retry_after } = self.take_at(fp, idx, *rate, now) {
                return Err((i, retry_after));
            }
        }
        Ok(())
    }

    #[inline]
    fn locate(&self, key: &LimitKey) -> (u64, usize) {
        // Zero marks an empty slot, so no key may have fingerprint zero.
        let fp = self.hasher.hash_one(key).max(1);
        // Multiply-shift maps the hash onto the bucket count without a
        // division and without needing a power of two.
        let idx = ((u128::from(fp) * self.buckets.len() as u128) >> 64) as usize;
        (fp, idx)
    }

    #[inline]
    fn take_at(&self, fp: u64, idx: usize, rate: Rate, now: Time) -> Take {
        let mut slots = lock(&self.buckets[idx].0);
        let now_ns = now.as_nanos();
        let mut victim = 0;
        let mut victim_tat = u64::MAX;
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot.fp == fp {
                return match step(slot.tat, rate, now) {
                    Ok(new_tat) => {
                        slot.tat = new_tat;
                        Take::Allowed
                    }
                    Err(retry_after) => Take::Denied { retry_after },
                };
            }
            // Empty and refilled slots read as TAT 0: they are taken first.
            let value = if slot.fp == 0 || slot.tat <= now_ns {
                0
            } else {
                slot.tat
            };
            if value < victim_tat {
                victim = i;
                victim_tat = value;
            }
        }
        match step(0, rate, now) {
            Ok(new_tat) => {
                slots[victim] = Slot { fp, tat: new_tat };
                Take::Allowed
            }
            // A new key is only refused if a single request exceeds the
            // tolerance, which a valid `Rate` never does; nothing to store.
            Err(retry_after) => Take::Denied { retry_after },
        }
    }
}

/// Locks a mutex, recovering from poisoning: a panic elsewhere must not turn
/// the limiter into a permanent outage, and the guarded data (numbers) stays
/// valid whatever was interrupted.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
