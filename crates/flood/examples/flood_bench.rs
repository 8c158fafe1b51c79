//! Timing and memory figures for the flood layer, next to a naive peer.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-flood cargo run -p rampart-flood --release --example flood_bench`
//!
//! The peer is what a straightforward limiter looks like: one
//! `Mutex<std::collections::HashMap<IpAddr, TokenBucket>>` with SipHash and
//! floating-point token buckets, unbounded. It is not a published crate; it
//! is the design this crate replaces, measured in the same run on the same
//! workload.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rampart_flood::{
    ClientTable, FloodConfig, FloodVerdict, KeyKind, Keyring, Limit, LimitKey, RequestFacts,
    RouteId, Shield, SiteId, Time,
};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged and only
// counts bytes and calls on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The naive peer: a float token bucket per address behind one mutex.
struct NaivePeer {
    map: Mutex<HashMap<IpAddr, (f64, u64)>>,
    per_sec: f64,
    burst: f64,
}

impl NaivePeer {
    fn take(&self, client: IpAddr, now_ns: u64) -> bool {
        let mut m = self.map.lock().unwrap();
        let e = m.entry(client).or_insert((self.burst, now_ns));
        let elapsed = now_ns.saturating_sub(e.1) as f64 / 1e9;
        e.0 = (e.0 + elapsed * self.per_sec).min(self.burst);
        e.1 = now_ns;
        if e.0 >= 1.0 {
            e.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

fn addr(i: u32) -> IpAddr {
    // Spread addresses over the whole space so prefixes differ too.
    IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(0x9E37_79B9) | 1))
}

fn mb(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let t0 = Time::from_secs(1_795_939_200);
    let rate = Limit {
        requests: 20,
        per_secs: 1,
        burst: 100,
    }
    .rate()
    .unwrap();
    const N: u32 = 2_000_000;

    // 1. One GCRA take on a hot key, single thread.
    let table = ClientTable::new(4096);
    let key = LimitKey::new(KeyKind::Client, 0, Some(addr(7)));
    let start = Instant::now();
    for i in 0..N {
        black_box(table.take(
            black_box(&key),
            rate,
            Time::from_nanos(t0.as_nanos() + u64::from(i) * 50_000_000),
        ));
    }
    let ours_hot = start.elapsed().as_nanos() as f64 / f64::from(N);
    let peer = NaivePeer {
        map: Mutex::new(HashMap::new()),
        per_sec: 20.0,
        burst: 100.0,
    };
    let start = Instant::now();
    for i in 0..N {
        black_box(peer.take(
            black_box(addr(7)),
            t0.as_nanos() + u64::from(i) * 50_000_000,
        ));
    }
    let peer_hot = start.elapsed().as_nanos() as f64 / f64::from(N);
    println!("take, one hot key:           ours {ours_hot:6.1} ns/op   naive peer {peer_hot:6.1} ns/op   ratio {:.2}", ours_hot / peer_hot);

    // 2. Memory and cost with one million distinct clients.
    let before = LIVE.load(Ordering::Relaxed);
    let config: FloodConfig = toml_config();
    let shield = Shield::in_memory(&config, Keyring::generate([5; 32]), t0).unwrap();
    let table_bytes = LIVE.load(Ordering::Relaxed) - before;
    let site = SiteId(0);
    let start = Instant::now();
    for i in 0..1_000_000u32 {
        let f = RequestFacts {
            client: addr(i),
            site,
            route: RouteId::NONE,
            is_api: false,
            is_browser: true,
            clearance_cookie: None,
            ticket_cookie: None,
            now: Time::from_nanos(t0.as_nanos() + u64::from(i) * 1000),
        };
        black_box(shield.admit(&f));
    }
    let fill = start.elapsed().as_nanos() as f64 / 1e6;
    let after_fill = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "1,000,000 clients tracked:   ours {:.1} MB (allocated up front: {:.1} MB; {} live keys = clients + prefixes, capacity {})",
        mb(after_fill),
        mb(table_bytes),
        shield.state().table().live(Time::from_nanos(t0.as_nanos() + 1_000_000_000)),
        shield.state().table().capacity()
    );
    let before_peer = LIVE.load(Ordering::Relaxed);
    let peer = NaivePeer {
        map: Mutex::new(HashMap::new()),
        per_sec: 20.0,
        burst: 100.0,
    };
    for i in 0..1_000_000u32 {
        peer.take(addr(i), t0.as_nanos() + u64::from(i) * 1000);
    }
    let peer_bytes = LIVE.load(Ordering::Relaxed) - before_peer;
    println!(
        "                             naive peer {:.1} MB for client keys only (no prefix keys, unbounded)   ratio {:.2}",
        mb(peer_bytes),
        after_fill as f64 / peer_bytes as f64
    );
    println!("  admitting the first 1,000,000 distinct clients took {fill:.0} ns each (inserts)");

    // 3. Full admit() of a known client among a million tracked: the cost
    //    the gateway pays per request (client + prefix GCRA, detector, ban
    //    check, allowlist), and its allocations.
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    let mut x = 0x1234_5678u32;
    let start = Instant::now();
    let mut limited = 0u32;
    for i in 0..N {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let f = RequestFacts {
            client: addr(x % 1_000_000),
            site,
            route: RouteId::NONE,
            is_api: false,
            is_browser: true,
            clearance_cookie: None,
            ticket_cookie: None,
            now: Time::from_nanos(t0.as_nanos() + 1_000_000_000 + u64::from(i) * 1000),
        };
        if let FloodVerdict::Limited { .. } = black_box(shield.admit(&f)) {
            limited += 1;
        }
    }
    let ours_admit = start.elapsed().as_nanos() as f64 / f64::from(N);
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    let start = Instant::now();
    let mut x = 0x1234_5678u32;
    for i in 0..N {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        black_box(peer.take(
            addr(x % 1_000_000),
            t0.as_nanos() + 1_000_000_000 + u64::from(i) * 1000,
        ));
    }
    let peer_one = start.elapsed().as_nanos() as f64 / f64::from(N);
    println!(
        "admit(), 1M tracked, random: ours {ours_admit:6.1} ns/request (2 limits + detector + bans)   naive peer {peer_one:6.1} ns (1 limit)   ratio {:.2}",
        ours_admit / peer_one
    );
    println!("  allocations during {N} admits: {allocs}; limited: {limited}");
    // Real traffic is not uniform over every client ever seen: most requests
    // come from the clients active right now.
    let start = Instant::now();
    for i in 0..N {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let f = RequestFacts {
            client: addr(x % 10_000),
            site,
            route: RouteId::NONE,
            is_api: false,
            is_browser: true,
            clearance_cookie: None,
            ticket_cookie: None,
            now: Time::from_nanos(t0.as_nanos() + 3_000_000_000 + u64::from(i) * 1000),
        };
        black_box(shield.admit(&f));
    }
    println!(
        "admit(), 10k active of 1M:   ours {:6.1} ns/request",
        start.elapsed().as_nanos() as f64 / f64::from(N)
    );

    // 4. Two threads (the machine has two cores) on the shared shield.
    let shield = Arc::new(shield);
    let start = Instant::now();
    let per_thread = N / 2;
    let hs: Vec<_> = (0..2u32)
        .map(|th| {
            let shield = Arc::clone(&shield);
            std::thread::spawn(move || {
                let mut x = 0x9876_5432u32 ^ th;
                for i in 0..per_thread {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let f = RequestFacts {
                        client: addr(x % 1_000_000),
                        site,
                        route: RouteId::NONE,
                        is_api: false,
                        is_browser: true,
                        clearance_cookie: None,
                        ticket_cookie: None,
                        now: Time::from_nanos(t0.as_nanos() + 10_000_000_000 + u64::from(i) * 2000),
                    };
                    black_box(shield.admit(&f));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "admit(), 2 threads:          {:.1} M requests/s aggregate ({:.0} ns wall per request)",
        f64::from(N) / wall / 1e6,
        wall * 1e9 / f64::from(N)
    );

    // 5. Spoofed flood: 10 million distinct addresses through the default
    //    table; live memory must not move.
    let live = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    for i in 0..10_000_000u32 {
        let f = RequestFacts {
            client: IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(0x2545_F491) ^ 0x5bd1_e995)),
            site,
            route: RouteId::NONE,
            is_api: false,
            is_browser: true,
            clearance_cookie: None,
            ticket_cookie: None,
            now: Time::from_nanos(t0.as_nanos() + 20_000_000_000 + u64::from(i) * 100),
        };
        black_box(shield.admit(&f));
    }
    let per = start.elapsed().as_nanos() as f64 / 1e7;
    let grown = LIVE.load(Ordering::Relaxed) as i64 - live as i64;
    println!(
        "spoofed flood, 10M addresses in 1 s: {per:.0} ns/request incl. eviction; live memory change {:+.1} MB; tracked {}",
        grown as f64 / (1 << 20) as f64,
        shield.state().table().len()
    );

    // 6. The under-attack path: a cleared visitor's cookie is checked on
    //    every request; a visitor without one gets a fresh challenge.
    shield.set_mode(site, Some(true), t0);
    let keys = shield.keyring();
    let prefix: IpAddr = "198.51.100.0".parse().unwrap();
    let cookie = rampart_flood::token::issue_clearance(
        &keys,
        "party",
        prefix,
        Time::from_secs(t0.as_secs() + 3600),
    );
    let start = Instant::now();
    for _ in 0..200_000 {
        black_box(rampart_flood::token::verify_clearance(
            &keys,
            "party",
            prefix,
            black_box(&cookie),
            t0,
        ))
        .unwrap();
    }
    println!(
        "clearance cookie check:      {:.0} ns",
        start.elapsed().as_nanos() as f64 / 200_000.0
    );
    let start = Instant::now();
    for i in 0..100_000u32 {
        let f = RequestFacts {
            client: addr(i + 5_000_000),
            site,
            route: RouteId::NONE,
            is_api: false,
            is_browser: true,
            clearance_cookie: None,
            ticket_cookie: None,
            now: Time::from_nanos(t0.as_nanos() + 40_000_000_000 + u64::from(i) * 100_000),
        };
        black_box(shield.admit(&f));
    }
    println!(
        "admit() issuing a challenge: {:.0} ns (two signed tokens, two nonces)",
        start.elapsed().as_nanos() as f64 / 100_000.0
    );

    // 7. Proof-of-work cost at the default difficulties, native SHA-256.
    for bits in [14u8, 17, 20] {
        let start = Instant::now();
        let mut total = 0u64;
        for k in 0..5 {
            total += rampart_flood::token::solve(
                &format!("00000001.{k:032x}.1795939200.{bits}.{:032x}", 0),
                bits,
            );
        }
        println!(
            "proof of work {bits:2} bits: {:.0} hashes on average, {:.1} ms native per solve (a phone's WebCrypto is ~10-50x slower)",
            total as f64 / 5.0,
            start.elapsed().as_secs_f64() * 1000.0 / 5.0
        );
    }
}

fn toml_config() -> FloodConfig {
    let mut c = FloodConfig::default();
    // Limits with an hour's period keep every client's state live for the
    // whole run, so the memory figure is for a million clients all tracked
    // at once, not for entries that refilled and were reused.
    c.sites.push(rampart_flood::SiteConfig {
        name: "party".into(),
        client: Limit {
            requests: 1,
            per_secs: 3600,
            burst: 100,
        },
        prefix: Limit {
            requests: 1,
            per_secs: 3600,
            burst: 1000,
        },
        ..Default::default()
    });
    c
}
