//! Behaviour of the leak guard through its public API: recognisers at chunk boundaries and behind
//! encodings, each policy, canaries, and the demo site's donor feed and thank-you page.

use std::io::Write;

use rampart_leakguard::{
    is_scannable, Action, EntityKind, GuardConfig, LeakGuard, Overflow, PolicySet, Progress,
    RoutePolicy, Severity,
};

const DONORS: &[(&str, i64, &str)] = &[
    ("Margaret", 2500, "Fri, 01 Nov 2019 09:12:44 GMT"),
    ("David Okafor", 10000, "Fri, 01 Nov 2019 18:40:02 GMT"),
    ("Priya", 1500, "Sat, 02 Nov 2019 11:05:19 GMT"),
    ("Siobhan", 5000, "Sun, 03 Nov 2019 20:17:55 GMT"),
    ("Tom", 1000, "Mon, 04 Nov 2019 07:58:31 GMT"),
    ("Gareth Llewellyn", 25000, "Tue, 05 Nov 2019 13:22:08 GMT"),
    ("Aisha", 2000, "Wed, 06 Nov 2019 16:45:37 GMT"),
    ("Callum", 500, "Thu, 07 Nov 2019 22:03:14 GMT"),
    ("Eleanor", 7500, "Fri, 08 Nov 2019 10:31:50 GMT"),
    ("Mohammed", 3000, "Sat, 09 Nov 2019 14:09:26 GMT"),
    ("Fiona", 1200, "Sun, 10 Nov 2019 19:54:03 GMT"),
    ("Rhys", 2000, "Mon, 11 Nov 2019 08:26:47 GMT"),
    ("Hannah Whitfield", 50000, "Tue, 12 Nov 2019 14:03:00 GMT"),
    ("Oluwaseun", 4000, "Wed, 13 Nov 2019 12:37:21 GMT"),
    ("Bethan", 1000, "Thu, 14 Nov 2019 17:11:09 GMT"),
    ("James", 15000, "Fri, 15 Nov 2019 21:48:42 GMT"),
    ("Zainab", 2500, "Sat, 16 Nov 2019 09:02:58 GMT"),
    ("Ruth Abernethy", 100000, "Sun, 17 Nov 2019 15:30:12 GMT"),
    ("Kwame", 3500, "Mon, 18 Nov 2019 11:19:36 GMT"),
    ("Harriet", 20000, "Tue, 19 Nov 2019 18:55:04 GMT"),
];

fn money(pence: i64) -> String {
    let pounds = (pence / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in pounds.chars().enumerate() {
        if i > 0 && (pounds.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("£{grouped}.{:02}", pence % 100)
}

/// The demo site's feed markup, as `crates/demo/src/pages.rs` renders it.
fn demo_feed() -> String {
    let mut items = String::new();
    for (i, (name, pence, date)) in DONORS.iter().enumerate() {
        let amount = money(*pence);
        items.push_str(&format!(
            "    <item>\n      <title>{name} donated {amount}</title>\n      <description>{name} gave {amount} to the Northfield Independents campaign.</description>\n      <link>http://localhost:8080/donate</link>\n      <guid isPermaLink=\"false\">donation-{}</guid>\n      <pubDate>{date}</pubDate>\n    </item>\n",
            i + 1
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\">\n  <channel>\n    <title>Northfield Independents: recent donations</title>\n    <link>http://localhost:8080/</link>\n    <description>Thank you to everyone who has donated to the campaign.</description>\n    <language>en-gb</language>\n{items}  </channel>\n</rss>\n"
    )
}

fn thank_you_page() -> String {
    r#"<!doctype html><html lang="en-gb"><head><meta charset="utf-8"><title>Thank you</title>
<link rel="stylesheet" href="/static/style.css"></head><body><header><a href="/">Northfield Independents</a></header>
<main><section class="card" style="border-top: 6px solid #0b6e4f">
<h1>Thank you, Alice!</h1>
<p>We have received your donation of <strong>£25.00</strong>. A receipt is on its way to your inbox.</p>
<a class="button" href="/">Back to the campaign</a>
</section></main><footer>Promoted by J. Smith on behalf of Northfield Independents, 1 High St, Northfield. Published 19 Nov 2019.</footer></body></html>"#
        .to_string()
}

fn guard() -> LeakGuard {
    LeakGuard::new(GuardConfig::default()).unwrap()
}

/// Scans `body` fed in chunks of `chunk` bytes; returns the bytes sent and the outcome.
fn scan_with(
    guard: &LeakGuard,
    policy: &RoutePolicy,
    body: &[u8],
    chunk: usize,
) -> (Vec<u8>, rampart_leakguard::Outcome) {
    let mut scanner = guard.scanner(policy);
    let mut out = Vec::new();
    for piece in body.chunks(chunk.max(1)) {
        if scanner.push(piece, &mut out) == Progress::Block {
            break;
        }
    }
    let outcome = scanner.finish(&mut out);
    (out, outcome)
}

fn count(outcome: &rampart_leakguard::Outcome, kind: EntityKind) -> u32 {
    outcome
        .findings
        .iter()
        .find(|f| f.kind == kind)
        .map_or(0, |f| f.count)
}

#[test]
fn demo_feed_is_a_donor_list_and_is_blocked_by_default() {
    let feed = demo_feed();
    for chunk in [1, 7, 100, 4096, usize::MAX] {
        let (out, outcome) = scan_with(&guard(), &RoutePolicy::default(), feed.as_bytes(), chunk);
        assert_eq!(outcome.action, Action::Block, "chunk {chunk}: {outcome:?}");
        assert!(out.is_empty(), "nothing of a blocked response is sent");
        let donor = outcome
            .findings
            .iter()
            .find(|f| f.kind == EntityKind::DonorList)
            .expect("donor list");
        assert!(donor.count >= 5, "{donor:?}");
        assert!(
            !donor.sample.contains("Margaret"),
            "sample is masked: {}",
            donor.sample
        );
    }
    // An alert route still blocks a donor list: donors' political opinions
    // are special-category data, and only an explicit allow publishes them.
    let (_, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Alert),
        feed.as_bytes(),
        512,
    );
    assert_eq!(outcome.action, Action::Block, "{outcome:?}");
    // Without early blocking (donor lists only alerted), every record is counted.
    let alert_only = RoutePolicy {
        donor_list_action: Action::Alert,
        ..RoutePolicy::with_action(Action::Alert)
    };
    let (_, outcome) = scan_with(&guard(), &alert_only, feed.as_bytes(), 512);
    assert_eq!(count(&outcome, EntityKind::DonorList), 20, "{outcome:?}");
    assert_eq!(outcome.action, Action::Alert);
    // A route that publishes donor lists on purpose says so, and passes.
    let published = RoutePolicy {
        allow: vec![EntityKind::DonorList],
        ..RoutePolicy::with_action(Action::Alert)
    };
    let (_, outcome) = scan_with(&guard(), &published, feed.as_bytes(), 512);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
}

#[test]
fn thank_you_page_passes() {
    let page = thank_you_page();
    let (out, outcome) = scan_with(&guard(), &RoutePolicy::default(), page.as_bytes(), 64);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
    assert_eq!(out, page.as_bytes());
}

#[test]
fn card_split_across_chunks_is_found_at_every_split_point() {
    let body = "<p>Paid with 4242 4242 4242 4242 yesterday.</p>";
    for split in 0..body.len() {
        let mut scanner = guard().scanner(&RoutePolicy::with_action(Action::Alert));
        let mut out = Vec::new();
        scanner.push(&body.as_bytes()[..split], &mut out);
        scanner.push(&body.as_bytes()[split..], &mut out);
        let outcome = scanner.finish(&mut out);
        assert_eq!(count(&outcome, EntityKind::Card), 1, "split {split}");
        assert_eq!(out, body.as_bytes());
    }
}

#[test]
fn entity_encoded_emails_are_found() {
    for body in [
        "contact jo.bloggs&#64;example.org",
        "contact jo.bloggs&commat;example.org",
        "contact jo.bloggs&#x40;example.org",
        r#"{"email":"jo.bloggs\u0040example.org"}"#,
    ] {
        let (_, outcome) = scan_with(
            &guard(),
            &RoutePolicy::with_action(Action::Alert),
            body.as_bytes(),
            3,
        );
        assert_eq!(count(&outcome, EntityKind::Email), 1, "{body}");
    }
}

#[test]
fn redaction_masks_in_the_original_bytes_and_keeps_markup() {
    let body = "<td>jo&#64;example.org</td><td>Card 4111 1111 1111 1111</td><td>&lt;b&gt;</td>";
    for chunk in [1, 5, 1000] {
        let (out, outcome) = scan_with(
            &guard(),
            &RoutePolicy::with_action(Action::Redact),
            body.as_bytes(),
            chunk,
        );
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out, "<td>[email]</td><td>Card [card ending 1111]</td><td>&lt;b&gt;</td>",
            "chunk {chunk}"
        );
        assert_eq!(outcome.action, Action::Redact);
    }
}

#[test]
fn redaction_of_a_long_body_keeps_everything_else_byte_for_byte() {
    let mut body = String::new();
    for i in 0..3000 {
        body.push_str(&format!(
            "<p>Paragraph {i} of ordinary text &amp; markup.</p>\n"
        ));
        if i % 500 == 0 {
            body.push_str("<p>Call 020 7946 0958 or email help@example.org</p>\n");
        }
    }
    let (out, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Redact),
        body.as_bytes(),
        1000,
    );
    let expected = body
        .replace("020 7946 0958", "[phone]")
        .replace("help@example.org", "[email]");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    assert_eq!(count(&outcome, EntityKind::Phone), 6);
}

#[test]
fn thresholds_tolerate_a_contact_page_but_not_a_member_list() {
    let contact = "<p>Press: press@example.org, volunteers: help@example.org</p>";
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), contact.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
    assert_eq!(count(&outcome, EntityKind::Email), 2);
    let members: String = (0..50)
        .map(|i| format!("<li>member{i}@example.org</li>\n"))
        .collect();
    let (out, outcome) = scan_with(&guard(), &RoutePolicy::default(), members.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Block);
    assert!(out.is_empty());
}

/// Three people's own addresses at different domains are a member list, however short; a team
/// page's addresses at the organisation's one domain, and a contact page's role mailboxes at
/// several, are not.
#[test]
fn three_personal_addresses_at_several_domains_are_a_member_list() {
    let policy = RoutePolicy::with_action(Action::Block);
    let members = "name,email\nAisha Mwangi,aisha.mwangi@gmail.com\nKofi Baxter,kbaxter71@outlook.com\nFfion Singh,ffion_singh@btinternet.com\n";
    let (_, outcome) = scan_with(&guard(), &policy, members.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Block, "{outcome:?}");
    let two = members.lines().take(3).collect::<Vec<_>>().join("\n");
    let (_, outcome) = scan_with(&guard(), &policy, two.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "two members: {outcome:?}");
    let team: String = ["aisha.mwangi", "kofi.baxter", "ffion.singh", "sam.okafor"]
        .iter()
        .map(|l| format!("<p>{l}@valleygreens.org.uk</p>\n"))
        .collect();
    let (_, outcome) = scan_with(&guard(), &policy, team.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "team page: {outcome:?}");
    let contact = "<p>info@valleygreens.org.uk, press@valleygreens.org, Volunteers@gmail.com, hello@example.net</p>";
    let (_, outcome) = scan_with(&guard(), &policy, contact.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "contact page: {outcome:?}");
    // The threshold can be switched off.
    let mut lenient = policy.clone();
    lenient.thresholds.personal_email = 0;
    let (_, outcome) = scan_with(&guard(), &lenient, members.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
}

#[test]
fn allowlisted_kinds_are_reported_but_not_acted_on() {
    let members: String = (0..50)
        .map(|i| format!("<li>member{i}@example.org</li>\n"))
        .collect();
    let policy = RoutePolicy {
        allow: vec![EntityKind::Email],
        ..RoutePolicy::default()
    };
    let (out, outcome) = scan_with(&guard(), &policy, members.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow);
    assert_eq!(count(&outcome, EntityKind::Email), 50);
    assert_eq!(out, members.as_bytes());
}

#[test]
fn alert_sends_the_body_unchanged_and_reports() {
    let body = "NI number: AB 12 34 56 C, NHS 943 476 5919, IBAN GB82 WEST 1234 5698 7654 32, sort code 20-00-00 account 12345678";
    let (out, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Alert),
        body.as_bytes(),
        10,
    );
    assert_eq!(out, body.as_bytes());
    assert_eq!(outcome.action, Action::Alert);
    for kind in [
        EntityKind::NiNumber,
        EntityKind::NhsNumber,
        EntityKind::Iban,
        EntityKind::BankAccount,
    ] {
        assert_eq!(count(&outcome, kind), 1, "{kind:?} in {outcome:?}");
    }
    for f in &outcome.findings {
        assert!(
            !body.contains(&f.sample) || f.sample.len() < 4,
            "sample {} leaks",
            f.sample
        );
    }
}

#[test]
fn invalid_checksums_are_not_findings() {
    let body = "card 4242 4242 4242 4241, NHS 943 476 5918, IBAN GB82 WEST 1234 5698 7654 33, NI GB 12 34 56 C";
    let (_, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Alert),
        body.as_bytes(),
        4096,
    );
    assert!(outcome.findings.is_empty(), "{outcome:?}");
}

#[test]
fn allow_route_scans_but_never_acts() {
    let body = "card 4242 4242 4242 4242";
    let (out, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Allow),
        body.as_bytes(),
        4096,
    );
    assert_eq!(out, body.as_bytes());
    assert_eq!(outcome.action, Action::Allow);
    assert_eq!(count(&outcome, EntityKind::Card), 1);
}

fn canary_guard() -> LeakGuard {
    LeakGuard::new(GuardConfig {
        fingerprint_key: b"0123456789abcdef0123456789abcdef".to_vec(),
        canaries_csv: Some("first_name,last_name,email,phone\nZebedee,Quarrington,z.quarrington.7f3a@example.net,07700 900461\n".into()),
        records_csv: Some("name,email\nPat Doe,pat.doe@example.com\n".into()),
        public_values: vec!["press@example.org".into()],
    })
    .unwrap()
}

/// A caller may scan after sending only where no finding could change or stop the response.
#[test]
fn only_reports_exactly_where_no_finding_can_change_the_response() {
    let plain = guard();
    let records_only = LeakGuard::new(GuardConfig {
        fingerprint_key: b"0123456789abcdef0123456789abcdef".to_vec(),
        canaries_csv: None,
        records_csv: Some("name,email\nPat Doe,pat.doe@example.com\n".into()),
        public_values: vec![],
    })
    .unwrap();
    let with_canaries = canary_guard();
    let canary_alert = RoutePolicy {
        canary_action: Action::Alert,
        donor_list_action: Action::Alert,
        ..RoutePolicy::with_action(Action::Alert)
    };
    for (guard, name, canaries) in [
        (&plain, "no exact records", false),
        (&records_only, "records only", false),
        (&with_canaries, "canaries", true),
    ] {
        for action in [Action::Allow, Action::Alert, Action::Redact, Action::Block] {
            // Donor lists block by default, whatever the route's action, so a
            // route with every other setting at its default never only reports.
            let scanner = guard.scanner(&RoutePolicy::with_action(action));
            assert!(!scanner.only_reports(), "{name}, {action:?}");
            for lenient in [
                RoutePolicy {
                    donor_list_action: Action::Alert,
                    ..RoutePolicy::with_action(action)
                },
                RoutePolicy {
                    allow: vec![EntityKind::DonorList],
                    ..RoutePolicy::with_action(action)
                },
            ] {
                // Canaries block by default, whatever the route's action.
                let want = action <= Action::Alert && !canaries;
                let scanner = guard.scanner(&lenient);
                assert_eq!(scanner.only_reports(), want, "{name}, {action:?}");
            }
        }
        assert!(
            guard.scanner(&canary_alert).only_reports(),
            "{name}, canaries alerted"
        );
    }
}

#[test]
fn canary_trip_is_critical_and_blocks_even_on_an_alert_route() {
    let guard = canary_guard();
    assert_eq!(guard.canary_report().rows, 1);
    assert_eq!(
        guard.canary_report().skipped.len(),
        2,
        "names are not stored: {:?}",
        guard.canary_report()
    );
    let body = "<td>Z.Quarrington.7F3A@example.net</td>";
    let (_, outcome) = scan_with(
        &guard,
        &RoutePolicy::with_action(Action::Alert),
        body.as_bytes(),
        5,
    );
    assert_eq!(outcome.action, Action::Block, "{outcome:?}");
    assert_eq!(outcome.findings[0].kind, EntityKind::Canary);
    assert_eq!(outcome.findings[0].severity, Severity::Critical);
    assert!(!outcome.findings[0].sample.contains("quarrington"));
    // The phone canary in another format trips too.
    let (_, outcome) = scan_with(
        &guard,
        &RoutePolicy::with_action(Action::Allow),
        b"tel +44 7700 900461",
        4096,
    );
    assert_eq!(count(&outcome, EntityKind::Canary), 1, "{outcome:?}");
    // A canary ignores the route allowlist.
    let policy = RoutePolicy {
        allow: vec![EntityKind::Email, EntityKind::Canary],
        ..RoutePolicy::with_action(Action::Alert)
    };
    let (_, outcome) = scan_with(&guard, &policy, body.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Block);
}

#[test]
fn own_records_and_public_values() {
    let guard = canary_guard();
    let (_, outcome) = scan_with(
        &guard,
        &RoutePolicy::default(),
        b"owner pat.doe@example.com",
        4096,
    );
    assert_eq!(count(&outcome, EntityKind::Record), 1);
    assert_eq!(outcome.action, Action::Block);
    let (_, outcome) = scan_with(
        &guard,
        &RoutePolicy::default(),
        b"press PRESS@example.org",
        4096,
    );
    assert!(outcome.findings.is_empty(), "{outcome:?}");
}

#[test]
fn short_fingerprint_key_is_refused() {
    let err = LeakGuard::new(GuardConfig {
        fingerprint_key: b"short".to_vec(),
        canaries_csv: Some("email\na@b.org\n".into()),
        ..GuardConfig::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), &rampart_leakguard::ErrorKind::Key);
}

#[test]
fn compressed_feed_is_caught_after_decoding() {
    let feed = demo_feed();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(feed.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut decoder = rampart_decode::Decoder::new("gzip", 8 << 20).unwrap();
    let mut scanner = guard().scanner(&RoutePolicy::default());
    let mut plain = Vec::new();
    let mut out = Vec::new();
    for piece in gz.chunks(97) {
        plain.clear();
        decoder.push(piece, &mut plain).unwrap();
        scanner.push(&plain, &mut out);
    }
    plain.clear();
    decoder.finish(&mut plain).unwrap();
    scanner.push(&plain, &mut out);
    let outcome = scanner.finish(&mut out);
    assert_eq!(outcome.action, Action::Block);
    assert!(count(&outcome, EntityKind::DonorList) >= 5);
}

#[test]
fn block_route_overflow_fails_closed_or_releases() {
    let body = "<p>ordinary text</p>\n".repeat(10_000);
    let policy = RoutePolicy {
        max_buffered: 64 * 1024,
        ..RoutePolicy::default()
    };
    let (out, outcome) = scan_with(&guard(), &policy, body.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Block);
    assert_eq!(outcome.findings[0].kind, EntityKind::Oversize);
    assert!(out.is_empty());
    let policy = RoutePolicy {
        on_overflow: Overflow::Release,
        ..policy
    };
    let (out, outcome) = scan_with(&guard(), &policy, body.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow);
    assert_eq!(out, body.as_bytes());
}

#[test]
fn json_donor_array_and_html_table_are_donor_lists() {
    let json: String = {
        let items: Vec<String> = DONORS
            .iter()
            .map(|(n, p, _)| format!(r#"{{"first_name":"{n}","amount_pence":{p},"donated_at":"2019-11-0{} 10:00:00"}}"#, p % 9 + 1))
            .collect();
        format!("[{}]", items.join(","))
    };
    let (_, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Alert),
        json.as_bytes(),
        333,
    );
    assert!(count(&outcome, EntityKind::DonorList) >= 15, "{outcome:?}");
    let table: String = DONORS
        .iter()
        .map(|(n, p, d)| {
            format!(
                "<tr><td>{n}</td><td>{}</td><td>{}</td></tr>\n",
                money(*p),
                &d[5..16]
            )
        })
        .collect();
    let page =
        format!("<table><tr><th>Name</th><th>Amount</th><th>Date</th></tr>\n{table}</table>");
    let (_, outcome) = scan_with(
        &guard(),
        &RoutePolicy::with_action(Action::Alert),
        page.as_bytes(),
        4096,
    );
    assert_eq!(count(&outcome, EntityKind::DonorList), 20, "{outcome:?}");
}

#[test]
fn fewer_records_than_the_threshold_is_not_a_list() {
    let table: String = DONORS[..2]
        .iter()
        .map(|(n, p, d)| {
            format!(
                "<tr><td>{n}</td><td>{}</td><td>{}</td></tr>\n",
                money(*p),
                &d[5..16]
            )
        })
        .collect();
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), table.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
}

#[test]
fn policies_deserialise_from_toml() {
    let set: PolicySet = toml::from_str(
        r#"
        [default]
        action = "alert"

        [[sites]]
        host = "party.example"
        [sites.default]
        action = "redact"
        [[sites.routes]]
        path_prefix = "/donations/"
        action = "block"
        thresholds = { email = 3 }
        [[sites.routes]]
        path_prefix = "/team"
        action = "alert"
        allow = ["email", "phone"]
        "#,
    )
    .unwrap();
    assert_eq!(
        set.route("party.example", "/donations/feed").action,
        Action::Block
    );
    assert_eq!(
        set.route("party.example", "/donations/feed")
            .thresholds
            .email,
        3
    );
    assert_eq!(
        set.route("PARTY.example:443", "/team/x").allow,
        vec![EntityKind::Email, EntityKind::Phone]
    );
    assert_eq!(set.route("party.example", "/").action, Action::Redact);
    assert_eq!(set.route("other.example", "/").action, Action::Alert);
}

#[test]
fn scannable_types() {
    for t in [
        "text/html; charset=utf-8",
        "application/json",
        "application/rss+xml",
        "application/atom+xml",
        "text/csv",
        "text/plain",
        "application/javascript",
        "application/ld+json",
    ] {
        assert!(is_scannable(t), "{t}");
    }
    for t in [
        "image/png",
        "application/octet-stream",
        "application/zip",
        "font/woff2",
        "",
    ] {
        assert!(!is_scannable(t), "{t}");
    }
}

#[test]
fn scanner_can_be_reused() {
    let guard = guard();
    let mut scanner = guard.scanner(&RoutePolicy::default());
    let mut out = Vec::new();
    scanner.push(b"card 4242 4242 4242 4242", &mut out);
    assert_eq!(scanner.finish(&mut out).action, Action::Block);
    scanner.reset(&RoutePolicy::default());
    out.clear();
    scanner.push(b"hello", &mut out);
    let outcome = scanner.finish(&mut out);
    assert_eq!(outcome.action, Action::Allow);
    assert_eq!(out, b"hello");
}

#[test]
fn hostile_input_never_panics() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let alphabet = b"0123456789 -./@<>{}[]\n&#;x\\u\"':,AZaz\xc2\xa3GBNHS";
    for round in 0..200 {
        let len = (round * 37) % 3000;
        let body: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                alphabet[(seed % alphabet.len() as u64) as usize]
            })
            .collect();
        for action in [Action::Alert, Action::Redact, Action::Block] {
            let (_, _) = scan_with(
                &guard(),
                &RoutePolicy::with_action(action),
                &body,
                1 + round % 50,
            );
        }
    }
}

/// Redaction maps normalised offsets back to the original bytes through decoded escapes; a
/// mistake there would cut markup or leave part of an address. Exercise it at every split point
/// and across many internal windows.
#[test]
fn redaction_through_escapes_is_exact_at_every_split_and_window() {
    let guard = guard();
    let policy = RoutePolicy::with_action(Action::Redact);
    let body = "&lt;p&gt;Mail jo&#64;example.org or \\u0061l\\u0040example.org&lt;/p&gt; &amp; call 020&#32;7946&#32;0958.";
    let expected = "&lt;p&gt;Mail [email] or [email]&lt;/p&gt; &amp; call [phone].";
    for split in 0..=body.len() {
        let mut scanner = guard.scanner(&policy);
        let mut out = Vec::new();
        scanner.push(&body.as_bytes()[..split], &mut out);
        scanner.push(&body.as_bytes()[split..], &mut out);
        scanner.finish(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "split {split}");
    }
    let mut long = String::new();
    let mut want = String::new();
    for i in 0..2000 {
        let filler = "<p>Some &amp; text &#8212; more.</p>\n".repeat(i % 5);
        long.push_str(&filler);
        want.push_str(&filler);
        long.push_str(&format!(
            "<li>user{i}&#64;example.org &ndash; 4242&#x20;4242 4242 4242</li>\n"
        ));
        want.push_str("<li>[email] &ndash; [card ending 4242]</li>\n");
    }
    for chunk in [1, 100, 4096, 70_000] {
        let (out, outcome) = scan_with(&guard, &policy, long.as_bytes(), chunk);
        assert!(String::from_utf8(out).unwrap() == want, "chunk {chunk}");
        assert_eq!(count(&outcome, EntityKind::Email), 2000);
        assert_eq!(count(&outcome, EntityKind::Card), 2000);
    }
}

#[test]
fn policy_typos_are_errors() {
    // `rampart check` must be able to report a misspelt key rather than silently use a default.
    let route_typo = toml::from_str::<PolicySet>(
        r#"
        [[sites]]
        host = "party.example"
        [[sites.routes]]
        path_prefix = "/x"
        acton = "alert"
        "#,
    );
    assert!(route_typo.is_err(), "{route_typo:?}");
    let default_typo = toml::from_str::<PolicySet>("[default]\nthreshold = { email = 3 }\n");
    assert!(default_typo.is_err());
    let bad_kind = toml::from_str::<PolicySet>("[default]\nallow = [\"emails\"]\n");
    assert!(bad_kind.is_err());
}

/// Regression: a contact address in the header, a mailto link and the footer of every page was
/// counted as many addresses and tripped the threshold. Thresholds count distinct values.
#[test]
fn one_address_repeated_is_one_address() {
    let page: String = (0..30)
        .map(|_| "<a href=\"mailto:press@example.org\">press@example.org</a>\n")
        .collect();
    let (out, outcome) = scan_with(&guard(), &RoutePolicy::default(), page.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
    assert_eq!(out, page.as_bytes());
    let email = &outcome.findings[0];
    assert_eq!((email.count, email.distinct), (60, 1));
}

#[test]
fn policy_problems_are_listed_with_their_place() {
    let set: PolicySet = toml::from_str(
        r#"
        [default]
        max_buffered = 0

        [[sites]]
        host = "party.example"
        [[sites.routes]]
        path_prefix = "donations"
        allow = ["canary"]
        [[sites.routes]]
        path_prefix = "donations"

        [[sites]]
        host = "PARTY.example"
        "#,
    )
    .unwrap();
    let problems = set.problems();
    assert_eq!(problems.len(), 6, "{problems:#?}");
    assert!(problems[0].starts_with("default: action is block but max_buffered is 0"));
    assert!(problems.iter().any(|p| p.contains(
        "sites[0] (party.example).routes[0] (donations): path_prefix must start with '/'"
    )));
    assert!(problems
        .iter()
        .any(|p| p.contains("canary cannot be allowed")));
    assert!(problems.iter().any(|p| p.contains("listed twice")));
    assert!(PolicySet::default().problems().is_empty());
}

/// Regression: two thank-you lines with known names made a shop table's capitalised product
/// rows count as donors, and the page was blocked as a donor list. Known names now vouch only for
/// the rows of their own list.
#[test]
fn a_shop_table_does_not_borrow_names_from_thank_yous() {
    let mut page = String::from("<ul><li>Thank you Alice for £25.00 on 19 Nov 2019</li><li>Thank you Priya for £10.00 on 20 Nov 2019</li></ul>\n<table>\n");
    for (i, product) in [
        "Enamel Badge",
        "Tote Bag",
        "Window Poster",
        "Campaign Mug",
        "Rosette",
        "Tea Towel",
    ]
    .iter()
    .enumerate()
    {
        page.push_str(&format!(
            "<tr><td>{product}</td><td>£{}.50</td><td>{:02}/11/2019</td></tr>\n",
            i + 2,
            i + 10
        ));
    }
    page.push_str("</table>");
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), page.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
    // The same rows with two known names among them are a donor list.
    let donors = page
        .replace("Enamel Badge", "Margaret")
        .replace("Tote Bag", "Declan");
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), donors.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Block, "{outcome:?}");
}

/// Money raised per branch, named by towns that hold given names (`Castle Douglas`, `Kings
/// Lynn`, `Milton Keynes`), is no donor list: the header says the rows are places. The same
/// table headed as people with amounts is one.
#[test]
fn a_table_of_towns_with_given_names_is_no_donor_list() {
    let mut page =
        String::from("<table>\n<tr><th>Branch</th><th>Raised</th><th>Updated</th></tr>\n");
    for (i, town) in [
        "Kings Lynn",
        "Castle Douglas",
        "Milton Keynes",
        "Port Talbot",
    ]
    .iter()
    .enumerate()
    {
        page.push_str(&format!(
            "<tr><td>{town}</td><td>£{},{}05.00</td><td>{} June 2026</td></tr>\n",
            i + 1,
            i + 3,
            i + 4
        ));
    }
    page.push_str("</table>");
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), page.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
    let donors = page.replace(
        "<th>Branch</th><th>Raised</th>",
        "<th>Name</th><th>Amount</th>",
    );
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), donors.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Block, "{outcome:?}");
}

/// Records with no element of their own (`<dt>` name, `<dd>` sum, `<dd>` date, repeated in one
/// `<dl>`) are a list of three; one profile with a stray field after its date is one record.
#[test]
fn flat_markup_records_are_counted_one_by_one() {
    let donors = [
        ("Zoltan Pritchard", "£192.00", "9 July 2026"),
        ("Keziah Ashworth", "£13.00", "2 April 2026"),
        ("Farida van der Berg", "£25.00", "26 June 2026"),
    ];
    let mut dl = String::from("<h1>Our supporters</h1>\n<dl>\n");
    for (name, sum, when) in donors {
        dl.push_str(&format!(
            "<dt>{name}</dt>\n<dd>{sum}</dd>\n<dd>{when}</dd>\n"
        ));
    }
    dl.push_str("</dl>\n");
    for chunk in [4096, 7, 1] {
        let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), dl.as_bytes(), chunk);
        assert_eq!(
            outcome.action,
            Action::Block,
            "chunks of {chunk}: {outcome:?}"
        );
        assert_eq!(count(&outcome, EntityKind::DonorList), 3);
    }
    let profile =
        "<dl><dt>Zoltan Pritchard</dt><dd>£192.00</dd><dd>9 July 2026</dd><dd>Online</dd></dl>";
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), profile.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
}

/// Names written surname first with a particle (`ap Gwilym, Keziah`), initials before a particle
/// (`R. ap Gwilym`) and titled names under a `from` key are names: three such records are a list.
#[test]
fn surnames_with_particles_and_titles_are_names() {
    let bodies = [
        "\"ap Gwilym, Keziah\",£138.00,2026-04-10\n\"García, Torquil\",£25.00,2025-02-15\n\"Adeyemi, Farida\",£5.00,2026-06-11\n".to_string(),
        ["R. ap Gwilym", "T. Jones", "E. Tanaka"]
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{{\"gift_date\":\"1{i}/03/2026\",\"contributor\":\"{n}\",\"amount_gbp\":\"GBP 2{i}.00\"}}\n"))
            .collect(),
        format!(
            "[{}]",
            ["Dr Sunita Ní Bhriain", "Ms Ottoline Thorne", "Rev Wiremu Oyelaran"]
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{{\"from\":\"{n}\",\"amount\":1{i}.00,\"when\":\"2{i}.01.2026\"}}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ];
    for body in bodies {
        for chunk in [4096, 5] {
            let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), body.as_bytes(), chunk);
            assert_eq!(outcome.action, Action::Block, "{body}: {outcome:?}");
        }
    }
}

/// A table of grants to groups written as people's names are (`Riverside Food Bank`) is no
/// donor list; plain-text lines `Name - £25 - date` of people the guard does not know are.
#[test]
fn grants_to_groups_pass_and_plain_text_donors_do_not() {
    let mut grants = String::from("<table>\n<tr><th>Group</th><th>Award</th><th>Date</th></tr>\n");
    for (i, group) in [
        "Hartley Youth Club",
        "Truro Toddlers",
        "Carlisle Choir",
        "Bangor Repair Cafe",
    ]
    .iter()
    .enumerate()
    {
        grants.push_str(&format!(
            "<tr><td>{group}</td><td>£{},500.00</td><td>{} May 2026</td></tr>\n",
            i + 2,
            i + 3
        ));
    }
    grants.push_str("</table>");
    let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), grants.as_bytes(), 4096);
    assert_eq!(outcome.action, Action::Allow, "{outcome:?}");
    for sep in [" - ", " | ", "\t"] {
        let text = ["Zoltan Pritchard", "Keziah Ashworth", "Farida Oyelaran"]
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name}{sep}£{}.00{sep}{} May 2026\n", 20 + i * 7, i + 3))
            .collect::<String>();
        let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), text.as_bytes(), 4096);
        assert_eq!(outcome.action, Action::Block, "{sep:?}: {outcome:?}");
    }
}

/// `inspect` finds what `push` finds, chunk by chunk, on an alert route,
/// without the copy; on a block route the verdict is the same too.
#[test]
fn inspect_finds_what_push_finds() {
    let guard = guard();
    let feed = demo_feed();
    for action in [Action::Alert, Action::Block] {
        let policy = RoutePolicy {
            action,
            ..RoutePolicy::default()
        };
        let mut pushed = guard.scanner(&policy);
        let mut inspected = guard.scanner(&policy);
        let mut out = Vec::new();
        for chunk in feed.as_bytes().chunks(700) {
            pushed.push(chunk, &mut out);
            inspected.inspect(chunk);
        }
        let (a, b) = (pushed.finish(&mut out), inspected.finish(&mut Vec::new()));
        assert!(
            count(&a, EntityKind::DonorList) > 0,
            "the feed is a donor list"
        );
        assert_eq!(a.action, b.action, "{action:?}");
        assert_eq!(a.findings.len(), b.findings.len(), "{action:?}");
        for kind in [
            EntityKind::DonorList,
            EntityKind::Email,
            EntityKind::DateOfBirth,
        ] {
            assert_eq!(count(&a, kind), count(&b, kind), "{action:?} {kind:?}");
        }
    }
}

/// The structure is followed from the first amount on; everything before it is skipped. A donor
/// table far down a long page, its rows giving the date before the amount, must still count
/// every row at every chunking, and so must one that follows an early, lone amount.
#[test]
fn donor_table_deep_in_a_long_page_counts_every_row() {
    let article = "<article><h2>Campaign update</h2><p>Volunteers met in the town hall on Saturday 16 November 2019 to plan leafleting across the ward. Thank you to everyone who came.</p></article>\n";
    let preamble = article.repeat(40 * 1024 / article.len());
    let rows: String = DONORS
        .iter()
        .map(|(n, p, d)| {
            format!(
                "<tr><td>{n}</td><td>{}</td><td>{}</td></tr>\n",
                &d[5..16],
                money(*p)
            )
        })
        .collect();
    let table =
        format!("<table><tr><th>Name</th><th>Date</th><th>Amount</th></tr>\n{rows}</table>\n");
    let alert = RoutePolicy::report_only();
    let (_, alone) = scan_with(&guard(), &alert, table.as_bytes(), usize::MAX);
    let want = count(&alone, EntityKind::DonorList);
    assert_eq!(want, DONORS.len() as u32, "{alone:?}");
    let late = format!("<html><body><main>{preamble}{table}{preamble}</main></body></html>");
    let early =
        format!("<html><body><p>Give £10 today.</p><main>{preamble}{table}</main></body></html>");
    for page in [&late, &early] {
        for chunk in [1, 7, 333, 4096, 16 * 1024, usize::MAX] {
            let (_, outcome) = scan_with(&guard(), &alert, page.as_bytes(), chunk);
            assert_eq!(
                count(&outcome, EntityKind::DonorList),
                want,
                "chunk {chunk}: {outcome:?}"
            );
        }
    }
    // Windows end wherever the chunks leave them: shift the table across a window's edge so the
    // first row begins in one window and its amount arrives in the next.
    for shift in 0..160 {
        let page = format!("{}{preamble}{table}", " ".repeat(shift));
        let (_, outcome) = scan_with(&guard(), &alert, page.as_bytes(), 512);
        assert_eq!(
            count(&outcome, EntityKind::DonorList),
            want,
            "shift {shift}: {outcome:?}"
        );
    }
}

/// A page in two chunks, the second one clean run scanned in place, split anywhere between the
/// first donor's name and the first amount (each row has a long note between the two): the
/// donor list counts the same as when the page is copied a byte at a time, whether the
/// structure wakes in the window or in the run, and whether the run is the body's last chunk.
#[test]
fn a_list_whose_first_amount_is_in_an_in_place_run_counts_as_when_copied() {
    let filler =
        "<p>Volunteers met in the town hall on Saturday to plan leafleting across the ward.</p>\n";
    let preamble = filler.repeat(6000 / filler.len());
    let note = "Met the candidate at the hustings and wanted to help with the leaflets. ".repeat(8);
    let rows: String = DONORS
        .iter()
        .map(|(n, p, d)| {
            format!(
                "<tr><td>{n}</td><td>{}</td><td>{note}</td><td>{}</td></tr>\n",
                &d[5..16],
                money(*p)
            )
        })
        .collect();
    let table = format!(
        "<table><tr><th>Name</th><th>Date</th><th>Note</th><th>Amount</th></tr>\n{rows}</table>\n"
    );
    let page = format!(
        "<html><body><main>{preamble}{table}{}</main></body></html>",
        preamble.repeat(3)
    );
    let alert = RoutePolicy::report_only();
    let (_, reference) = scan_with(&guard(), &alert, page.as_bytes(), 1);
    let want = count(&reference, EntityKind::DonorList);
    // Names are looked for around amounts, so the first row's (a note's length before its
    // amount) is not found: every other row is a record.
    assert_eq!(want, DONORS.len() as u32 - 1, "{reference:?}");
    let first_name = page.find(DONORS[0].0).unwrap();
    let first_amount = page.find("£").unwrap();
    assert!(first_amount - first_name > 600);
    // Split the page in two anywhere from before the first name to the first amount: the
    // second chunk is one clean run, scanned in place.
    for split in (first_name - 200..first_amount).step_by(19) {
        for last in [false, true] {
            let mut scanner = guard().scanner(&alert);
            scanner.inspect(&page.as_bytes()[..split]);
            let outcome = if last {
                scanner.inspect_last(&page.as_bytes()[split..])
            } else {
                scanner.inspect(&page.as_bytes()[split..]);
                scanner.finish(&mut Vec::new())
            };
            assert_eq!(
                count(&outcome, EntityKind::DonorList),
                want,
                "split at {split}, last {last}: {outcome:?}"
            );
        }
    }
}

/// Three gifts, as a donor list is written in each container the guard
/// follows.
fn three_gifts(container: &str) -> String {
    let rows = [
        ("Margaret Hughes", "25.00", "2026-11-01"),
        ("David Okafor", "100.00", "2026-11-02"),
        ("Priya Shah", "15.50", "2026-11-03"),
    ];
    match container {
        "csv" => std::iter::once("donor,amount,date\n".to_string())
            .chain(rows.iter().map(|(n, a, d)| format!("{n},£{a},{d}\n")))
            .collect(),
        "json" => format!(
            "[{}]",
            rows.iter()
                .map(|(n, a, d)| format!(
                    "{{\"donor\":\"{n}\",\"amount\":\"£{a}\",\"date\":\"{d}\"}}"
                ))
                .collect::<Vec<_>>()
                .join(",")
        ),
        "xml" => format!(
            "<gifts>{}</gifts>",
            rows.iter()
                .map(|(n, a, d)| format!("<gift donor=\"{n}\" amount=\"£{a}\" date=\"{d}\"/>"))
                .collect::<String>()
        ),
        _ => format!(
            "<table><tr><th>Donor</th><th>Amount</th><th>Date</th></tr>{}</table>",
            rows.iter()
                .map(|(n, a, d)| format!("<tr><td>{n}</td><td>£{a}</td><td>{d}</td></tr>"))
                .collect::<String>()
        ),
    }
}

#[test]
fn three_gifts_are_a_donor_list_in_every_container() {
    for container in ["csv", "json", "xml", "html"] {
        let body = three_gifts(container);
        for chunk in [1, 61, 4096] {
            let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), body.as_bytes(), chunk);
            assert_eq!(
                outcome.action,
                Action::Block,
                "{container}, chunks of {chunk}: {outcome:?}\n{body}"
            );
            let donor = outcome
                .findings
                .iter()
                .find(|f| f.kind == EntityKind::DonorList)
                .expect("a donor-list finding");
            // The event can say why: the score and its parts are in the sample.
            assert!(donor.sample.contains("list score"), "{}", donor.sample);
        }
    }
}

#[test]
fn event_listings_and_product_feeds_are_not_donor_lists() {
    let whats_on = [
        ("Quiz night", "12.50"),
        ("Ceilidh", "10.00"),
        ("Hustings", "5.00"),
        ("Family fun day", "7.50"),
    ]
    .iter()
    .map(|(event, price)| {
        format!("<div class=\"event\"><h3>{event}</h3><p>Organiser: Janet Murray</p><p>Tickets £{price} on the door</p><p>2026-12-1{}</p></div>", price.len())
    })
    .collect::<String>();
    let products = format!(
        "[{}]",
        [("Tote Bag", "12.00"), ("Campaign Mug", "8.50"), ("Rosette", "3.00"), ("Tea Towel", "6.00")]
            .iter()
            .map(|(name, price)| format!(
                "{{\"name\":\"{name}\",\"price\":\"£{price}\",\"sku\":\"SKU-{}\",\"updated\":\"2026-11-30\"}}",
                name.len()
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    for body in [whats_on, products] {
        let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), body.as_bytes(), 4096);
        assert!(
            outcome
                .findings
                .iter()
                .all(|f| f.kind != EntityKind::DonorList),
            "{outcome:?}\n{body}"
        );
    }
}

/// Whether `body` is judged a donor list (blocked by the default policy) at every chunking.
fn is_donor_list_at_every_chunking(body: &str) -> bool {
    let verdicts: Vec<bool> = [1, 61, 4096]
        .iter()
        .map(|&chunk| {
            let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), body.as_bytes(), chunk);
            outcome
                .findings
                .iter()
                .any(|f| f.kind == EntityKind::DonorList && f.action == Action::Block)
        })
        .collect();
    assert!(
        verdicts.iter().all(|v| *v == verdicts[0]),
        "the verdict depends on the chunking: {verdicts:?}\n{body}"
    );
    verdicts[0]
}

#[test]
fn names_written_as_people_write_them_are_names() {
    // A header says the rows are gifts, so capitalised cells count once they are found: Mc,
    // O', double-barrelled names, particles and "Last, First" are cells like any other.
    let body = "<table><tr><th>Donor</th><th>Amount</th><th>Date</th></tr>\
        <tr><td>Lucía McLeod</td><td>£25.00</td><td>2026-11-01</td></tr>\
        <tr><td>Stuart O'Connor</td><td>£40.00</td><td>2026-11-02</td></tr>\
        <tr><td>Hiroshi van der Berg</td><td>£15.50</td><td>2026-11-03</td></tr></table>";
    assert!(is_donor_list_at_every_chunking(body), "{body}");
    let body = "donor,amount,date\n\"Whitfield, Lettice\",£25.00,2026-11-01\n\
        \"Baxter-Lyle, Haruto\",£40.00,2026-11-02\n\"Ní Bhriain, Saoirse\",£15.50,2026-11-03\n";
    assert!(is_donor_list_at_every_chunking(body), "{body}");
}

#[test]
fn an_initial_before_a_surname_is_a_person() {
    // Three gifts of one sum from people written as initials: names, even though the amounts
    // look like a price grid and no word says they are gifts.
    for body in [
        "A. Quill,10.00,2026-11-01\nB. Ní Bhriain,10.00,2026-11-02\nC. Stone,10.00,2026-11-03\n",
        "[{\"contributor\":\"A. Quill\",\"amount\":10.00,\"date\":\"2026-11-01\"},\
          {\"contributor\":\"B. Rook\",\"amount\":10.00,\"date\":\"2026-11-02\"},\
          {\"contributor\":\"C. Stone\",\"amount\":10.00,\"date\":\"2026-11-03\"}]",
        "{\"edges\":[{\"node\":{\"donor\":{\"displayName\":\"A. Quill\"},\"amount\":{\"value\":\"10.00\"},\"createdAt\":\"2026-11-01\"}},\
          {\"node\":{\"donor\":{\"displayName\":\"B. Rook\"},\"amount\":{\"value\":\"10.00\"},\"createdAt\":\"2026-11-02\"}},\
          {\"node\":{\"donor\":{\"displayName\":\"C. Stone\"},\"amount\":{\"value\":\"10.00\"},\"createdAt\":\"2026-11-03\"}}]}",
    ] {
        assert!(is_donor_list_at_every_chunking(body), "{body}");
    }
}

#[test]
fn a_gift_from_a_titled_or_unknown_donor_names_them() {
    // "Donation from" and a giving verb name a donor the name list does not know, in full: one
    // title on every row must not read as one name repeated.
    let rows = [
        ("Ada Quill", "5.00", "01"),
        ("Bea Rook", "70.00", "02"),
        ("Cy Stone", "12.50", "03"),
    ];
    for form in ["Donation from Cllr {n}", "Cllr {n} gave"] {
        let items: String = rows
            .iter()
            .map(|(n, a, d)| {
                format!(
                    "<item><title>{}</title><description>£{a}</description><pubDate>{d} Nov 2026</pubDate></item>\n",
                    form.replace("{n}", n)
                )
            })
            .collect();
        let body = format!("<rss><channel>\n{items}</channel></rss>\n");
        assert!(is_donor_list_at_every_chunking(&body), "{body}");
    }
}

#[test]
fn people_the_guard_does_not_know_are_a_donor_list_when_the_list_closes() {
    // No name the guard knows, no header, no word about gifts: three different people, each
    // with one sum and a date, the first on the document's first line.
    let csv = "Wiremu Tane,28 Feb 2026,£50\nOttoline Pryce,12 Dec 2025,£10\nHaruto Baxter-Lyle,20 May 2026,£137\n";
    assert!(is_donor_list_at_every_chunking(csv), "{csv}");
    let atom = "<feed><title>Recent</title>\
        <entry><title>Wiremu Tane</title><content>£50.00</content><updated>2026-02-28T10:00:00Z</updated></entry>\
        <entry><title>Ottoline Pryce</title><content>£10.00</content><updated>2025-12-12T10:00:00Z</updated></entry>\
        <entry><title>Torquil Abernethy</title><content>£137.00</content><updated>2026-05-20T10:00:00Z</updated></entry></feed>";
    assert!(is_donor_list_at_every_chunking(atom), "{atom}");
}

#[test]
fn capitalised_cells_that_repeat_or_share_a_price_or_are_one_word_are_not_people() {
    let table = |rows: &[(&str, &str)]| {
        format!(
            "<table>{}</table>",
            rows.iter()
                .enumerate()
                .map(|(i, (item, price))| format!(
                    "<tr><td>{item}</td><td>£{price}</td><td>0{}/11/2026</td></tr>",
                    i + 1
                ))
                .collect::<String>()
        )
    };
    for body in [
        // A product comes back.
        table(&[
            ("Tote Bag", "12.00"),
            ("Campaign Mug", "8.50"),
            ("Tote Bag", "12.00"),
            ("Tea Towel", "6.00"),
        ]),
        // One price for everything.
        table(&[
            ("Tote Bag", "5.00"),
            ("Campaign Mug", "5.00"),
            ("Tea Towel", "5.00"),
        ]),
        // Names of one word.
        table(&[("Rosette", "3.00"), ("Hoodie", "25.00"), ("Badge", "1.50")]),
        // A CSV of the same.
        "Tote Bag,12.00,2026-11-01\nCampaign Mug,8.50,2026-11-02\nTote Bag,12.00,2026-11-03\n"
            .to_string(),
    ] {
        assert!(!is_donor_list_at_every_chunking(&body), "{body}");
    }
}

#[test]
fn a_table_of_branches_is_not_a_list_of_people() {
    let rows = [
        ("Hemel Hempstead", "£1,240.00"),
        ("West Bromwich", "£980.50"),
        ("Market Harborough", "£2,015.00"),
    ];
    let table = |header: &str| {
        format!(
            "<table><tr><th>{header}</th><th>Raised</th><th>Updated</th></tr>{}</table>",
            rows.iter()
                .map(|(town, sum)| format!(
                    "<tr><td>{town}</td><td>{sum}</td><td>01/11/2026</td></tr>"
                ))
                .collect::<String>()
        )
    };
    let donor_list = |body: &str, chunk: usize| {
        let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), body.as_bytes(), chunk);
        outcome
            .findings
            .iter()
            .any(|f| f.kind == EntityKind::DonorList)
    };
    for chunk in [1, 61, 4096] {
        // Under a `Branch` column the capitalised cells are places.
        assert!(!donor_list(&table("Branch"), chunk), "chunks of {chunk}");
        // The same cells under a column that says nothing are taken for people: the rule
        // the place words switch off is really at work here.
        assert!(donor_list(&table("Name"), chunk), "chunks of {chunk}");
    }
}

#[test]
fn a_list_sorted_by_name_is_judged_past_its_first_three_davids() {
    // A generated API export (the evaluation's `donor_json_array_20_60`) whose first three
    // supporters are all called David: judged at its third record, it was refused as "one name
    // repeated" for good, unless a chunk boundary happened to move the judgement.
    let body = include_str!("data/supporters-sorted-by-name.json");
    for chunk in [1, 61, 200, 4096, usize::MAX] {
        let (_, outcome) = scan_with(&guard(), &RoutePolicy::default(), body.as_bytes(), chunk);
        assert_eq!(
            outcome.action,
            Action::Block,
            "chunks of {chunk}: {outcome:?}"
        );
    }
}
