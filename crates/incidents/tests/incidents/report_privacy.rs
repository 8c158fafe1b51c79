//! No report, export or alert carries personal data: not the client
//! addresses, not the donor's name, email, card or NI number from the leak
//! guard's findings, even when free text (a title, an action, a decision)
//! carries them by mistake. Prefixes and counts do appear.

use crate::report_fixture::*;
use rampart_incidents::alert::{generic_payload, slack_payload};
use rampart_incidents::export::{render, Format};
use rampart_incidents::report::scrub;
use rampart_incidents::{ActionTaken, Decision, Tally};

const FORMATS: [Format; 5] = [
    Format::Markdown,
    Format::Html,
    Format::Json,
    Format::Stix,
    Format::Misp,
];

fn outputs(incident: &rampart_incidents::Incident) -> Vec<(String, String)> {
    let (timeline, org) = (timeline(), organisation());
    let input = input(incident, &timeline, &org);
    let mut out: Vec<(String, String)> = FORMATS
        .iter()
        .map(|&f| (format!("{f:?}"), render(&input, f)))
        .collect();
    for change in ["opened", "escalated", "closed"] {
        out.push((
            format!("slack {change}"),
            slack_payload(incident, change, "severity rose: data in responses"),
        ));
        out.push((
            format!("generic {change}"),
            generic_payload(incident, change, "severity rose: data in responses"),
        ));
    }
    out
}

fn assert_no_personal_data(incident: &rampart_incidents::Incident) {
    for (name, text) in outputs(incident) {
        for value in PERSONAL {
            assert!(!text.contains(value), "{name} carries {value:?}:\n{text}");
        }
        // The IPv6 client in any spelling.
        assert!(
            !text.to_ascii_lowercase().contains("db8::1234"),
            "{name} carries the IPv6 client"
        );
        assert!(
            !text.contains("db8:0:0:0:0:0:0:1234"),
            "{name} carries the IPv6 client"
        );
        // Prefixes are what is shared.
        assert!(
            text.contains("203.0.113.0/24"),
            "{name} lacks the IPv4 prefix"
        );
    }
}

#[test]
fn incidents_grouped_from_events_with_personal_data_print_none_of_it() {
    // The events carry client addresses and unmasked samples; the incident
    // is folded from them the way the grouping engine does.
    let incident = realistic();
    let serialised = serde_json::to_string(&incident).unwrap();
    for value in PERSONAL {
        assert!(
            !serialised.contains(value),
            "the incident itself carries {value:?}"
        );
    }
    assert_no_personal_data(&incident);
}

#[test]
fn personal_data_in_free_text_is_masked_everywhere() {
    // A grouping bug, or an operator's careless note, puts personal data in
    // every free-text field an incident has.
    let mut incident = realistic();
    incident.title = "Leak of m.thornbury@example.org from 203.0.113.77".into();
    incident.site = "demo 198.51.100.23".into();
    incident.actions.push(ActionTaken {
        at: at(10, 20),
        what: "client 203.0.113.77 and 2001:db8::1234 banned after card 4111 1111 1111 1111 and NI QQ 12 34 56 C left"
            .into(),
    });
    incident.decisions.push(Decision {
        at: at(10, 50),
        by: "m.thornbury@example.org".into(),
        text: "Called about card 4111111111111111 (NI QQ123456C), seen from 198.51.100.23 and 2001:db8::1234.".into(),
        told: Some("ICO via m.thornbury@example.org".into()),
    });
    incident.top_prefixes.push(Tally {
        key: "198.51.100.23".into(),
        count: 3,
    });
    incident.attacks.push(Tally {
        key: "sqli from 203.0.113.78".into(),
        count: 1,
    });
    incident.rules.push(Tally {
        key: "2001:db8::1234".into(),
        count: 1,
    });
    if let Some(data) = &mut incident.data {
        data.categories
            .push("contact details (m.thornbury@example.org)".into());
        data.entities.push(Tally {
            key: "QQ 12 34 56 C".into(),
            count: 1,
        });
    }
    assert_no_personal_data(&incident);
    // What was masked is still legible.
    let (timeline, org) = (timeline(), organisation());
    let text = render(&input(&incident, &timeline, &org), Format::Json);
    assert!(
        text.contains("[email]") && text.contains("[card number]") && text.contains("[NI number]"),
        "{text}"
    );
    assert!(
        text.contains("198.51.100.0/24"),
        "a whole address becomes its prefix"
    );
}

#[test]
fn the_scrubber_masks_emails_cards_ni_numbers_and_addresses() {
    let cases = [
        ("write to m.thornbury@example.org.", "write to [email]."),
        ("<jo+tag@sub.example.co.uk>", "<[email]>"),
        ("card 4111 1111 1111 1111 used", "card [card number] used"),
        ("card 4111-1111-1111-1111", "card [card number]"),
        ("card 4111111111111111", "card [card number]"),
        ("call +44 7700 900123", "call [number]"),
        ("NI QQ 12 34 56 C.", "NI [NI number]."),
        ("NI qq123456c", "NI [NI number]"),
        ("from 203.0.113.77, then", "from 203.0.113.0/24, then"),
        ("from 203.0.113.77.", "from 203.0.113.0/24."),
        ("(2001:db8::1234)", "(2001:db8:0:0::/64)"),
        ("host 203.0.113.77/32", "host 203.0.113.0/24"),
        ("host 203.0.113.77/24", "host 203.0.113.0/24"),
        ("v6 host 2001:db8::1234/128", "v6 host 2001:db8:0:0::/64"),
        ("mapped ::ffff:203.0.113.77", "mapped 0:0:0:0::/64"),
    ];
    for (input, expected) in cases {
        assert_eq!(scrub(input), expected, "scrub({input:?})");
    }
}

#[test]
fn the_scrubber_keeps_what_is_not_personal() {
    let kept = [
        "prefix 203.0.113.0/24 banned for 10 minutes (level 2)",
        "prefix 2001:db8:1:2::/64 and 10.0.0.0/8",
        "site demo switched to under-attack mode: surge: requests/s 950 > 400",
        "at 10:15 on 2026-11-29T10:15:00.000Z",
        "rule 942100 hit 1,234 times; version 1.2.3",
        "INC-42, reference R-7F3A, score 10",
        "Rust paths like model::source_prefix and a::b",
        "donor_list (120 matches), email",
        "café — ünïcode stays intact 🙂",
        "",
    ];
    for text in kept {
        assert_eq!(scrub(text), text, "scrub({text:?}) changed it");
    }
}
