//! The serve-stale cache: short-lived copies of anonymous GET responses.
//!
//! The gateway does not answer from this cache in normal operation: the
//! origin stays the source of truth. It answers from it when the origin
//! cannot: the site is under attack (a flood of page views then costs the
//! origin nothing), no upstream server is healthy, or the upstream failed or
//! timed out on this request. A copy is kept for `ttl` and may be served
//! stale for `stale` after that.
//!
//! Only what a shared cache may keep is kept: requests without cookies or
//! credentials, responses without `Set-Cookie`, `private`, `no-store` or
//! `no-cache`, and no `Vary` beyond `Accept-Encoding`. The crate has no I/O
//! and reads no clock: every call takes `now` in milliseconds.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

/// The cache's settings (`[cache]` in the gateway's configuration).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Keep copies at all.
    pub enabled: bool,
    /// Memory for bodies and headers across all sites. 64 MiB holds a few
    /// thousand pages of a campaign site: its whole public face.
    pub max_bytes: usize,
    /// The largest response kept. Pages and feeds fit in 1 MiB; downloads
    /// and media are better served by the origin or a CDN.
    pub max_entry_bytes: usize,
    /// How long a copy is fresh when the response does not say
    /// (`s-maxage`, `max-age`). Ten seconds: long enough to absorb a flood
    /// of page views, short enough that an edited page shows quickly.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// How long after that a copy may still be served when the origin is
    /// down or the site is under attack (`stale-if-error` overrides it).
    /// Ten minutes rides out an origin restart or a flood's first wave.
    #[serde(with = "humantime_serde")]
    pub stale: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            ttl: Duration::from_secs(10),
            stale: Duration::from_secs(600),
        }
    }
}

impl CacheConfig {
    /// Problems serde cannot see.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.enabled && self.max_entry_bytes > self.max_bytes {
            out.push(format!(
                "`max_entry_bytes` ({}) is larger than `max_bytes` ({})",
                self.max_entry_bytes, self.max_bytes
            ));
        }
        if self.enabled && self.ttl.is_zero() && self.stale.is_zero() {
            out.push("`ttl` and `stale` are both zero, so nothing could be served; set `enabled = false` instead".to_string());
        }
        out
    }
}

/// A kept response.
#[derive(Debug)]
pub struct CachedResponse {
    pub status: u16,
    /// End-to-end headers only (no `Connection`, `Transfer-Encoding`,
    /// `Content-Length`: the gateway sets those when it serves the copy).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// When it was stored.
    pub stored_at: u64,
    fresh_until: u64,
    stale_until: u64,
    /// Which insertion this is, so that the eviction queue can tell a copy
    /// from a newer copy under the same key.
    generation: u64,
}

impl CachedResponse {
    /// Seconds since it was stored, for the `Age` header.
    pub fn age_secs(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored_at) / 1000
    }

    fn size(&self) -> usize {
        self.body.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 32)
                .sum::<usize>()
            + 128
    }
}

/// How a found copy stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
}

/// The cache key of a request, from [`Cache::key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(u64);

/// Hashing the request's identity with per-process random keys, so that
/// nobody can craft a URL whose key collides with another page's and have
/// their response served in its place.
fn key_for(
    state: &std::collections::hash_map::RandomState,
    site: &str,
    host: &str,
    path_and_query: &str,
    accept_encoding: Option<&str>,
) -> Key {
    let mut h = state.build_hasher();
    site.hash(&mut h);
    for b in host.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    path_and_query.hash(&mut h);
    encoding_class(accept_encoding).hash(&mut h);
    Key(h.finish())
}

/// Which body variants a client accepts: 0 identity only, 1 gzip, 2 br and gzip.
fn encoding_class(accept_encoding: Option<&str>) -> u8 {
    let Some(value) = accept_encoding else {
        return 0;
    };
    let v = value.to_ascii_lowercase();
    match (v.contains("br"), v.contains("gzip")) {
        (true, true) => 2,
        (_, true) => 1,
        _ => 0,
    }
}

/// Whether a request may be answered from, or stored in, a shared cache:
/// GET or HEAD, without cookies or credentials.
pub fn request_is_cacheable(method: &str, has_cookie: bool, has_authorization: bool) -> bool {
    (method == "GET" || method == "HEAD") && !has_cookie && !has_authorization
}

/// How long a response may be kept, from its status and headers; `None`
/// when a shared cache must not keep it.
pub fn storable_for<'a>(
    config: &CacheConfig,
    status: u16,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<(u64, u64)> {
    if !matches!(status, 200 | 203 | 204 | 300 | 301 | 404 | 410) {
        return None;
    }
    // Cache-Control speaks whole seconds, so the defaults are taken in them.
    let mut ttl = config.ttl.as_secs();
    let mut stale = config.stale.as_secs();
    let mut s_maxage = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("set-cookie") {
            return None;
        }
        if name.eq_ignore_ascii_case("vary") {
            let only_encoding = value
                .split(',')
                .map(str::trim)
                .all(|v| v.is_empty() || v.eq_ignore_ascii_case("accept-encoding"));
            if !only_encoding {
                return None;
            }
        }
        if name.eq_ignore_ascii_case("cache-control") {
            for directive in value.split(',').map(str::trim) {
                let (d, arg) = directive
                    .split_once('=')
                    .map_or((directive, None), |(d, a)| {
                        (d.trim(), Some(a.trim().trim_matches('"')))
                    });
                let secs = || arg.and_then(|a| a.parse::<u64>().ok());
                match d.to_ascii_lowercase().as_str() {
                    "private" | "no-store" | "no-cache" => return None,
                    "s-maxage" => s_maxage = secs(),
                    "max-age" => ttl = secs().unwrap_or(ttl),
                    "stale-if-error" => stale = secs().unwrap_or(stale),
                    _ => {}
                }
            }
        }
    }
    let ttl = s_maxage.unwrap_or(ttl);
    (ttl > 0 || stale > 0).then_some((ttl, stale))
}

/// Headers that describe one connection, not the response.
fn end_to_end(name: &str) -> bool {
    ![
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "age",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

/// Counters for the metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub entries: usize,
    pub bytes: usize,
    pub stored: u64,
    pub evicted: u64,
}

const SHARDS: usize = 16;

struct Shard {
    entries: HashMap<Key, Arc<CachedResponse>>,
    /// Insertion order, for eviction: the oldest copy goes first. Keys
    /// replaced since are skipped when they come up.
    order: VecDeque<(Key, u64)>,
    next_generation: u64,
    bytes: usize,
    stored: u64,
    evicted: u64,
}

/// The cache: sharded so that concurrent requests rarely meet on a lock.
pub struct Cache {
    config: CacheConfig,
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Cache {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: HashMap::new(),
                    order: VecDeque::new(),
                    next_generation: 0,
                    bytes: 0,
                    stored: 0,
                    evicted: 0,
                })
            })
            .collect();
        Cache {
            config,
            shards,
            hasher: RandomState::new(),
        }
    }

    /// The key of a request: site, host, path and query, and whether the
    /// client takes compressed bodies (the one `Vary` the cache honours).
    pub fn key(
        &self,
        site: &str,
        host: &str,
        path_and_query: &str,
        accept_encoding: Option<&str>,
    ) -> Key {
        key_for(&self.hasher, site, host, path_and_query, accept_encoding)
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    fn shard(&self, key: Key) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key.0 as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// A copy that may still be served (fresh, or stale within its window).
    pub fn get(&self, key: Key, now: u64) -> Option<(Arc<CachedResponse>, Freshness)> {
        let shard = self.shard(key);
        let entry = shard.entries.get(&key)?;
        if now < entry.fresh_until {
            Some((entry.clone(), Freshness::Fresh))
        } else if now < entry.stale_until {
            Some((entry.clone(), Freshness::Stale))
        } else {
            None
        }
    }

    /// Whether a response for `key` is worth copying now: there is no
    /// fresh copy, or the copy is past half its freshness. Copying on every
    /// request would cost a body copy each time for nothing.
    pub fn wants(&self, key: Key, now: u64) -> bool {
        if !self.config.enabled {
            return false;
        }
        let shard = self.shard(key);
        match shard.entries.get(&key) {
            None => true,
            Some(e) => now >= e.stored_at + (e.fresh_until.saturating_sub(e.stored_at)) / 2,
        }
    }

    /// Keeps a response. `ttl` and `stale` come from [`storable_for`].
    pub fn put(
        &self,
        key: Key,
        status: u16,
        headers: &[(String, String)],
        body: Bytes,
        (ttl, stale): (u64, u64),
        now: u64,
    ) -> bool {
        if !self.config.enabled || body.len() > self.config.max_entry_bytes {
            return false;
        }
        let headers: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| end_to_end(k))
            .cloned()
            .collect();
        let fresh_until = now + ttl * 1000;
        let mut entry = CachedResponse {
            status,
            headers,
            body,
            stored_at: now,
            fresh_until,
            stale_until: fresh_until + stale * 1000,
            generation: 0,
        };
        let size = entry.size();
        let budget = self.config.max_bytes / SHARDS;
        if size > budget {
            return false;
        }
        let mut shard = self.shard(key);
        let Shard {
            entries,
            order,
            next_generation,
            bytes,
            stored,
            evicted,
        } = &mut *shard;
        entry.generation = *next_generation;
        *next_generation += 1;
        if let Some(old) = entries.insert(key, Arc::new(entry)) {
            *bytes -= old.size();
        }
        *bytes += size;
        order.push_back((key, *next_generation - 1));
        *stored += 1;
        // The oldest copies go first. Queue entries for keys stored again
        // since are stale and skipped; the new copy fits the budget alone,
        // so the loop stops before reaching it.
        while *bytes > budget {
            let Some((old_key, generation)) = order.pop_front() else {
                break;
            };
            if entries
                .get(&old_key)
                .is_some_and(|e| e.generation == generation)
            {
                if let Some(old) = entries.remove(&old_key) {
                    *bytes -= old.size();
                    *evicted += 1;
                }
            }
        }
        // Keep the queue from growing without bound when one page is stored
        // over and over.
        if order.len() > entries.len() * 4 + 64 {
            order.retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
        true
    }

    /// Drops copies past their stale window; the gateway calls this now and then.
    pub fn purge_expired(&self, now: u64) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let Shard {
                entries,
                order,
                bytes,
                evicted,
                ..
            } = &mut *shard;
            entries.retain(|_, e| {
                let keep = now < e.stale_until;
                if !keep {
                    *bytes -= e.size();
                    *evicted += 1;
                }
                keep
            });
            order.retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            s.entries += shard.entries.len();
            s.bytes += shard.bytes;
            s.stored += shard.stored;
            s.evicted += shard.evicted;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn policy(status: u16, list: &[(&str, &str)]) -> Option<(u64, u64)> {
        storable_for(&CacheConfig::default(), status, list.iter().copied())
    }

    #[test]
    fn only_anonymous_gets_are_cacheable() {
        assert!(request_is_cacheable("GET", false, false));
        assert!(request_is_cacheable("HEAD", false, false));
        assert!(!request_is_cacheable("POST", false, false));
        assert!(!request_is_cacheable("GET", true, false));
        assert!(!request_is_cacheable("GET", false, true));
    }

    #[test]
    fn responses_that_a_shared_cache_must_not_keep_are_refused() {
        assert_eq!(
            policy(200, &[("content-type", "text/html")]),
            Some((10, 600))
        );
        assert_eq!(policy(200, &[("Set-Cookie", "a=b")]), None);
        assert_eq!(
            policy(200, &[("Cache-Control", "private, max-age=60")]),
            None
        );
        assert_eq!(policy(200, &[("cache-control", "no-store")]), None);
        assert_eq!(policy(200, &[("cache-control", "no-cache")]), None);
        assert_eq!(policy(200, &[("vary", "Cookie")]), None);
        assert_eq!(policy(200, &[("vary", "*")]), None);
        assert_eq!(policy(200, &[("vary", "Accept-Encoding")]), Some((10, 600)));
        assert_eq!(policy(500, &[]), None);
        assert_eq!(policy(302, &[]), None);
        assert_eq!(
            policy(
                200,
                &[(
                    "cache-control",
                    "public, max-age=60, s-maxage=30, stale-if-error=120"
                )]
            ),
            Some((30, 120))
        );
        assert_eq!(
            policy(200, &[("cache-control", "max-age=0")]),
            Some((0, 600)),
            "max-age=0 still allows serving stale on error"
        );
    }

    #[test]
    fn copies_go_fresh_then_stale_then_away() {
        let cache = Cache::new(CacheConfig::default());
        let key = cache.key("site", "example.org", "/", None);
        assert!(cache.get(key, 0).is_none());
        assert!(cache.wants(key, 0));
        assert!(cache.put(
            key,
            200,
            &headers(&[
                ("content-type", "text/html"),
                ("content-length", "5"),
                ("connection", "keep-alive")
            ]),
            Bytes::from_static(b"hello"),
            (10, 60),
            1_000
        ));
        let (copy, freshness) = cache.get(key, 2_000).unwrap();
        assert_eq!(
            (freshness, &copy.body[..], copy.status),
            (Freshness::Fresh, &b"hello"[..], 200)
        );
        assert_eq!(
            copy.headers,
            headers(&[("content-type", "text/html")]),
            "connection headers are not kept"
        );
        assert!(!cache.wants(key, 2_000), "a fresh copy is not copied again");
        assert!(
            cache.wants(key, 7_000),
            "past half its freshness it is refreshed"
        );
        assert_eq!(cache.get(key, 12_000).unwrap().1, Freshness::Stale);
        assert!(cache.get(key, 71_001).is_none());
        cache.purge_expired(71_001);
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().bytes, 0);
    }

    #[test]
    fn keys_separate_hosts_paths_and_encodings() {
        let cache = Cache::new(CacheConfig::default());
        let a = cache.key("s", "a.example", "/x", Some("gzip, br"));
        assert_eq!(a, cache.key("s", "A.example", "/x", Some("br, gzip")));
        assert_ne!(a, cache.key("s", "a.example", "/x", None));
        assert_ne!(a, cache.key("s", "b.example", "/x", Some("gzip, br")));
        assert_ne!(a, cache.key("s", "a.example", "/x?y", Some("gzip, br")));
        assert_ne!(a, cache.key("t", "a.example", "/x", Some("gzip, br")));
        assert_ne!(
            a,
            Cache::new(CacheConfig::default()).key("s", "a.example", "/x", Some("gzip, br")),
            "keys are secret per cache"
        );
    }

    #[test]
    fn memory_stays_under_the_cap() {
        let config = CacheConfig {
            max_bytes: 16 * 64 * 1024,
            max_entry_bytes: 16 * 1024,
            ..CacheConfig::default()
        };
        let cache = Cache::new(config.clone());
        let body = Bytes::from(vec![b'x'; 10_000]);
        for i in 0..10_000 {
            let key = cache.key("s", "h", &format!("/page/{i}"), None);
            cache.put(key, 200, &[], body.clone(), (10, 60), i);
            // One page stored over and over must not grow the queue either.
            cache.put(
                cache.key("s", "h", "/hot", None),
                200,
                &[],
                body.clone(),
                (10, 60),
                i,
            );
        }
        let stats = cache.stats();
        assert!(stats.bytes <= config.max_bytes, "{stats:?}");
        assert!(stats.evicted > 0);
        assert!(
            cache
                .get(cache.key("s", "h", "/page/9999", None), 10_000)
                .is_some(),
            "the newest copy is kept"
        );
        assert!(
            cache
                .get(cache.key("s", "h", "/hot", None), 10_000)
                .is_some(),
            "the page stored over and over is kept"
        );
        assert!(
            !cache.put(
                cache.key("s", "h", "/big", None),
                200,
                &[],
                Bytes::from(vec![0u8; 20_000]),
                (10, 60),
                0
            ),
            "too large for one entry"
        );
        for shard in &cache.shards {
            let shard = shard.lock().unwrap();
            assert!(
                shard.order.len() <= shard.entries.len() * 4 + 65,
                "the eviction queue stays bounded"
            );
        }
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = Cache::new(CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        });
        let key = cache.key("s", "h", "/", None);
        assert!(!cache.wants(key, 0));
        assert!(!cache.put(key, 200, &[], Bytes::from_static(b"x"), (10, 60), 0));
        assert!(cache.get(key, 0).is_none());
    }
}
