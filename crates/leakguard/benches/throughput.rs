//! Scanning throughput per core: clean HTML with no findings, and a page full of findings.
//!
//! `cargo bench -p rampart-leakguard --bench throughput`
//!
//! The peer figure is the obvious implementation the prefilter design replaces: one combined
//! regex (email, card, phone, postcode) run over the whole body with the `regex-automata` meta
//! engine. A `memchr` pass over the same bytes is printed as the memory-speed ceiling.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rampart_leakguard::{Action, GuardConfig, LeakGuard, Progress, RoutePolicy};

const PARAGRAPHS: &[&str] = &[
    "Our volunteers knocked on more than 4,000 doors across the ward last weekend, and the response was overwhelming.",
    "The council meeting on 14 March 2024 will discuss the new bus routes and the closure of the library on Elm Road.",
    "We believe every family deserves a warm home, a fair wage and a GP appointment when they need one.",
    "Join us at the community hall from 7pm for a question and answer session with our candidate.",
    "Local schools received &pound;2.5m in additional funding this year &mdash; but class sizes are still too large.",
    "Read our manifesto in full, available in large print, easy read and Welsh, from our office or online.",
];

/// A realistic campaign page: head with stylesheet and script, navigation, articles, a footer.
fn clean_html(target: usize) -> Vec<u8> {
    let mut page = String::new();
    let mut n = 0;
    while page.len() < target {
        page.push_str("<!doctype html>\n<html lang=\"en-gb\"><head><meta charset=\"utf-8\"><title>News &ndash; Northfield Independents</title>\n");
        page.push_str("<link rel=\"stylesheet\" href=\"/static/style.css?v=3\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        page.push_str("<style>.card{border-top:6px solid #0b6e4f;padding:1.25rem;margin:0 auto;max-width:42rem}</style>\n");
        page.push_str("<script>window.dataLayer=window.dataLayer||[];function track(e){dataLayer.push({event:e,ts:Date.now()});}</script></head>\n");
        page.push_str("<body><header><nav class=\"top\"><a href=\"/\">Home</a> <a href=\"/news\">News</a> <a href=\"/events\">Events</a> <a href=\"/donate\" class=\"button\">Donate</a></nav></header>\n<main>\n");
        for i in 0..12 {
            n += 1;
            page.push_str(&format!(
                "<article class=\"card\" id=\"post-{n}\"><h2><a href=\"/news/{n}\">Campaign update {i}</a></h2>\n<p class=\"meta\">Posted by the press team</p>\n<p>{}</p>\n<p>{}</p>\n</article>\n",
                PARAGRAPHS[(n + i) % PARAGRAPHS.len()],
                PARAGRAPHS[(n + 2 * i + 1) % PARAGRAPHS.len()]
            ));
        }
        page.push_str("</main><footer><p>Promoted by the agent on behalf of Northfield Independents. <a href=\"/privacy\">Privacy</a></p></footer></body></html>\n");
    }
    page.into_bytes()
}

/// A member table leaked in full: every row has an email, a phone, a postcode and a card.
fn dirty_html(target: usize) -> Vec<u8> {
    let mut page = String::from("<html><body><table>\n");
    let mut i = 0u64;
    while page.len() < target {
        i += 1;
        page.push_str(&format!(
            "<tr><td>Member {i}</td><td>member{i}@example.org</td><td>020 7946 0{:03}</td><td>SW1A {}AA</td><td>4242 4242 4242 4242</td></tr>\n",
            i % 1000,
            i % 10
        ));
    }
    page.push_str("</table></body></html>\n");
    page.into_bytes()
}

/// CPU time this thread has run, from the scheduler's own accounting, in nanoseconds. The build
/// machines are shared, so wall time measures the neighbours as much as the code; time on the
/// CPU is what "per core" means. The scheduler updates this figure at its ticks, so it is only
/// read around runs of several hundred milliseconds. `None` where the file does not exist.
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// Time per call of `f`: the best of three rounds, each repeating `f` for at least 400 ms so
/// that the scheduler's tick-sized accounting steps are noise. Returns (CPU, wall).
fn measure(mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut best_cpu = Duration::MAX;
    let mut best_wall = Duration::MAX;
    for _ in 0..3 {
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        let mut calls = 0u32;
        while calls == 0 || t.elapsed() < Duration::from_millis(400) {
            f();
            calls += 1;
        }
        let wall = t.elapsed();
        let spent = match (cpu, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => Duration::from_nanos(b - a),
            _ => wall,
        };
        best_cpu = best_cpu.min(spent / calls);
        best_wall = best_wall.min(wall / calls);
    }
    (best_cpu, best_wall)
}

fn mbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn scan(guard: &LeakGuard, policy: &RoutePolicy, body: &[u8], out: &mut Vec<u8>) -> usize {
    let mut scanner = guard.scanner(policy);
    out.clear();
    for chunk in body.chunks(16 * 1024) {
        if scanner.push(chunk, out) == Progress::Block {
            break;
        }
    }
    let outcome = scanner.finish(out);
    outcome.findings.len()
}

fn main() {
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    let naive = regex_automata::meta::Regex::new(
        r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,4}\.[A-Za-z]{2,18}|(?-u:\b)(?:\d[ -]?){12,18}\d(?-u:\b)|(?:\+44 ?|\(?0)\d{2,4}\)?[ .-]?\d{3,4}[ .-]?\d{3,4}(?-u:\b)|(?-u:\b)[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}(?-u:\b)",
    )
    .unwrap();
    let mut out = Vec::with_capacity(8 << 20);
    println!(
        "MB/s per core of CPU time; wall-clock MB/s in brackets (lower when the machine is shared)"
    );
    println!(
        "{:<34} {:>10} {:>20} {:>12} {:>7}",
        "body", "size", "rampart MB/s", "peer MB/s", "ratio"
    );
    for (name, body) in [
        ("clean HTML", clean_html(4 << 20)),
        ("HTML full of findings", dirty_html(4 << 20)),
    ] {
        if std::env::var_os("BENCH_ONLY_CLEAN").is_some() && name != "clean HTML" {
            continue;
        }
        if std::env::var_os("BENCH_ONLY_DIRTY").is_some() && name == "clean HTML" {
            continue;
        }
        let findings = scan(&guard, &RoutePolicy::report_only(), &body, &mut out);
        let only_ours = std::env::var_os("BENCH_ONLY_OURS").is_some();
        let peer = if only_ours {
            Duration::from_secs(1)
        } else {
            measure(|| {
                black_box(naive.find_iter(black_box(&body[..])).count());
            })
            .0
        };
        let (ceiling, _) = measure(|| {
            black_box(memchr::memchr_iter(b'@', black_box(&body[..])).count());
        });
        for (mode, action) in [
            ("alert", Action::Alert),
            ("redact", Action::Redact),
            ("block", Action::Block),
        ] {
            let policy = RoutePolicy {
                max_buffered: 64 << 20,
                ..RoutePolicy::with_action(action)
            };
            let (ours, ours_wall) = measure(|| {
                black_box(scan(&guard, &policy, black_box(&body), &mut out));
            });
            println!(
                "{:<34} {:>9}K {:>12.0} {:>7} {:>12.0} {:>6.1}x",
                format!("{name} ({mode})"),
                body.len() / 1024,
                mbps(body.len(), ours),
                format!("({:.0})", mbps(body.len(), ours_wall)),
                mbps(body.len(), peer),
                peer.as_secs_f64() / ours.as_secs_f64()
            );
        }
        println!(
            "  {} finding kinds; memchr('@') ceiling {:.0} MB/s",
            findings,
            mbps(body.len(), ceiling)
        );
    }
}
