use super::*;

#[test]
fn durations_read_naturally() {
    assert_eq!(duration(60_000), "60 s");
    assert_eq!(duration(300_000), "5 minutes");
    assert_eq!(duration(3000), "3 s");
    assert_eq!(duration(2 * 3_600_000), "2 hours");
    assert_eq!(duration(1500), "1.5 s");
}

#[test]
fn prefix_keys_print_like_source_prefix() {
    for address in ["203.0.113.77", "2001:db8:1:2:3:4:5:6"] {
        let ip: IpAddr = address.parse().unwrap();
        let label = PrefixKey::of(ip).label();
        assert_eq!(label, source_prefix(ip));
        assert_eq!(PrefixKey::parse(&label), Some(PrefixKey::of(ip)));
    }
}

#[test]
fn top_counter_keeps_the_busiest_past_its_cap() {
    let mut counter: TopCounter<u32> = TopCounter::new(100);
    for heavy in 0..5u32 {
        counter.add(&heavy, 1000 + u64::from(heavy));
    }
    for light in 100..10_000u32 {
        counter.add(&light, 1);
    }
    assert!(counter.counts.len() <= 100);
    let top = counter.top(5, u32::to_string);
    let keys: Vec<&str> = top.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["4", "3", "2", "1", "0"]);
    assert_eq!(top[0].count, 1004);
}

#[test]
fn sources_estimate_past_the_cap() {
    let mut sources = Sources::new(0);
    let n = SOURCES_CAP as u32 + 50_000;
    for i in 0..n {
        sources.insert(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
        sources.insert(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i / 2)));
    }
    let count = sources.count() as f64;
    assert!(
        (count - f64::from(n)).abs() / f64::from(n) < 0.03,
        "estimate {count} for {n}"
    );
}

#[test]
fn actions_past_the_cap_become_a_summary() {
    let mut open = Open::new("demo", IncidentKind::Flood, 0);
    for i in 0..(ACTIONS_CAP as i64 + 50) {
        open.action(i, "bans", format!("ban {i}"));
    }
    open.action(1000, "mode changes", "mode".into());
    assert_eq!(open.incident.actions.len(), ACTIONS_CAP);
    let last = &open.incident.actions[ACTIONS_CAP - 1].what;
    assert_eq!(
        last,
        "and 52 more actions not listed one by one (51 bans, 1 mode changes)"
    );
}

#[test]
fn waf_blocks_are_not_flood_pressure() {
    let mut site = Site::default();
    for i in 0..40 {
        site.count_waf_block(10_000 + i * 10);
    }
    assert_eq!(site.waf_blocks_between(10_000, 11_000), 40);
    assert_eq!(site.waf_blocks_between(11_000, 12_000), 0);
}
