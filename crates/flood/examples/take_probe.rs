//! Probe: raw table cost for random keys among N tracked, to separate the
//! memory-bound part from the rest of admit().
use rampart_flood::{ClientTable, KeyKind, Limit, LimitKey, Time};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

fn main() {
    let rate = Limit {
        requests: 20,
        per_secs: 1,
        burst: 100,
    }
    .rate()
    .unwrap();
    let t0 = 1_795_939_200_000_000_000u64;
    for (cap, n) in [
        (3_500_000usize, 1_000_000u32),
        (3_500_000, 10_000),
        (300_000, 100_000),
    ] {
        let t = ClientTable::new(cap);
        let key = |i: u32| {
            LimitKey::new(
                KeyKind::Client,
                0,
                Some(IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(0x9E37_79B9) | 1))),
            )
        };
        for i in 0..n {
            t.take(&key(i), rate, Time::from_nanos(t0));
        }
        let mut x = 0x1234_5678u32;
        let m = 2_000_000u32;
        let start = Instant::now();
        for i in 0..m {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            black_box(t.take(
                &key(x % n),
                rate,
                Time::from_nanos(t0 + u64::from(i) * 1000),
            ));
        }
        println!(
            "table cap {cap}, {n} tracked, random take: {:.1} ns",
            start.elapsed().as_nanos() as f64 / f64::from(m)
        );
    }
}
