//! Every format carries every section the NCSC's incident report and UK GDPR
//! Article 33(3) ask for, for a realistic incident: a flood with an
//! injection campaign, a donor-list leak stopped by the leak guard and a
//! canary.

use crate::report_fixture::*;
use rampart_incidents::export::{
    misp_event, render, stix_bundle, Format, INCIDENT_CORE_EXTENSION, TLP_AMBER,
};
use rampart_incidents::report::{self, html, json, markdown, Organisation, ReportInput};
use rampart_incidents::{Decision, IncidentKind, Tally};
use serde_json::Value;

const NCSC_SECTIONS: &[&str] = &[
    "Summary and impact",
    "Timeline",
    "Technical analysis",
    "Attack types",
    "Peak rate and volumes",
    "Sources",
    "Rules hit",
    "Mitigations done",
    "Mitigations planned",
    "Who else has been told",
    "Next steps",
    "Decision log",
];

const ARTICLE_33_3: &[&str] = &[
    "Personal data and the ICO (UK GDPR Article 33(3))",
    "Nature of the breach",
    "Likely consequences",
    "Measures taken or proposed",
    "Contact point",
];

const WINDOW_LINE: &str =
    "ICO 72-hour window: aware 2026-11-29 10:15:00 UTC, deadline 2026-12-02 10:15:00 UTC — 61 h 20 min left at the time of this report";

fn check_human(name: &str, text: &str) {
    for section in NCSC_SECTIONS.iter().chain(ARTICLE_33_3) {
        assert!(
            text.contains(section),
            "{name} lacks the section {section:?}"
        );
    }
    assert!(
        text.contains(WINDOW_LINE),
        "{name} lacks the 72-hour line:\n{text}"
    );
    // Timeline moments.
    for moment in [
        "First event",
        "Aware",
        "Peak: 950 requests/s",
        "Last event",
        "Still open at the time of this report",
    ] {
        assert!(text.contains(moment), "{name} timeline lacks {moment:?}");
    }
    // Technical analysis figures.
    for figure in [
        "SQL injection",
        "CAPEC-66",
        "cross-site scripting",
        "CAPEC-63",
        "942100",
        "203.0.113.0/24",
        "2001:db8:0:0::/64",
    ] {
        assert!(text.contains(figure), "{name} lacks {figure:?}");
    }
    assert!(
        text.contains("Distinct sources: 4 client addresses"),
        "{name}"
    );
    // Mitigations planned, derived from the kinds.
    for planned in [
        "under-attack schedule in place for polling day",
        "Tighten the rate limits",
        "Fix the feed or page that published personal data",
        "Rotate any credentials or API keys",
        "canary record was read",
    ] {
        assert!(
            text.contains(planned),
            "{name} lacks the planned mitigation {planned:?}"
        );
    }
    // Done: the actions.
    assert!(text.contains("switched to under-attack mode"), "{name}");
    // Article 33(3) contents.
    for element in [
        "political opinions (special category)",
        "Approximate number of data subjects concerned: 40",
        "Approximate number of personal data records concerned: 85",
        "discrimination",
        "fraud",
        "Data Protection Officer, dpo",
    ] {
        assert!(text.contains(element), "{name} lacks {element:?}");
    }
    // Who else has been told, from the decision log.
    assert!(text.contains("hosting provider"), "{name}");
    // The decision log, in time order (10:30 before 10:40 although logged after).
    let feed = text
        .find("Took the donor feed offline")
        .expect("decision 10:30");
    let host = text
        .rfind("Kept under-attack mode on until the count")
        .expect("decision 10:40");
    assert!(feed < host, "{name}: the decision log is not in time order");
    // Next steps.
    assert!(
        text.contains("Decide whether to notify the ICO before 2026-12-02 10:15:00 UTC"),
        "{name}"
    );
    assert!(
        text.contains("rampart incidents note 42 --told NCSC"),
        "{name}"
    );
}

#[test]
fn markdown_has_every_section() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let text = markdown(&input(&incident, &timeline, &org));
    check_human("markdown", &text);
    assert!(text.starts_with("# Incident report INC-42: "), "{text}");
    assert!(text.contains("## 1. Summary and impact"));
    assert!(text.contains("### Mitigations planned"));
    assert!(
        text.contains("| Time (UTC) | Requests | Blocked |"),
        "the timeline's points as a table"
    );
}

#[test]
fn html_has_every_section_and_a_chart() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let page = html(&input(&incident, &timeline, &org));
    check_human("html", &page);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<h2>1. Summary and impact</h2>"));
    // Standalone: no scripts, no external assets.
    assert!(!page.contains("<script"), "no scripts");
    assert!(!page.contains("src="), "no external assets");
    assert!(!page.contains("<link"), "no external stylesheets");
    assert!(!page.contains("url("), "no CSS fetches");
    // The chart: three series, UTC axis labels, the peak marked.
    let svg = &page[page.find("<svg").expect("an inline SVG chart")..page.find("</svg>").unwrap()];
    assert_eq!(
        svg.matches("<polyline").count(),
        4,
        "requests, blocked, challenged or limited, upstream errors"
    );
    for label in [
        "requests",
        "blocked",
        "challenged or limited",
        "time (UTC)",
        "10:00",
        "10:20",
        "10:40",
        "peak 950 req/s, 2026-11-29 10:12:00 UTC",
        "requests per 1 min",
    ] {
        assert!(svg.contains(label), "the chart lacks {label:?}");
    }
    assert!(svg.contains("stroke-dasharray"), "the peak line");
}

#[test]
fn json_has_every_section_under_stable_names() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let text = json(&input(&incident, &timeline, &org));
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["reference"], "INC-42");
    assert_eq!(v["generated_at"], "2026-11-29T20:55:00.000Z");
    assert_eq!(v["incident"]["id"], 42);
    assert_eq!(v["timeline"].as_array().unwrap().len(), 43);
    let s = &v["sections"];
    for field in [
        "summary",
        "impact",
        "timeline",
        "technical",
        "mitigations_done",
        "mitigations_planned",
        "told",
        "personal_data",
        "ico_window",
        "next_steps",
        "decisions",
        "totals_are_lower_bounds",
    ] {
        assert!(!s[field].is_null(), "sections.{field} is missing");
    }
    let t = &s["technical"];
    for field in [
        "attack_types",
        "peak_rps",
        "peak_at",
        "requests",
        "blocked",
        "challenged",
        "limited",
        "distinct_sources",
        "top_prefixes",
        "rules",
    ] {
        assert!(!t[field].is_null(), "technical.{field} is missing");
    }
    assert_eq!(t["attack_types"][0]["capec"], "CAPEC-66");
    let p = &s["personal_data"];
    assert_eq!(p["involved"], true);
    assert_eq!(p["left"], "prevented");
    assert_eq!(p["data_subjects"], 40);
    assert_eq!(
        p["contact_point"],
        "Data Protection Officer, dpo@example.org"
    );
    for field in ["nature", "likely_consequences", "measures", "categories"] {
        assert!(
            !p[field].as_array().unwrap().is_empty(),
            "personal_data.{field} is empty"
        );
    }
    assert_eq!(s["ico_window"]["applicable"], true);
    assert_eq!(s["ico_window"]["deadline"], "2026-12-02T10:15:00.000Z");
    assert_eq!(s["ico_window"]["remaining_ms"], (61 * 60 + 20) * 60_000);
    assert!(s["ico_window"]["line"]
        .as_str()
        .unwrap()
        .starts_with(WINDOW_LINE));
    assert_eq!(
        s["decisions"][0]["at"], "2026-11-29T10:30:00.000Z",
        "time order"
    );
    assert_eq!(s["told"][0]["party"], "hosting provider");
}

#[test]
fn stix_bundle_has_every_object_type() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let bundle = stix_bundle(&input(&incident, &timeline, &org));
    assert_eq!(bundle["type"], "bundle");
    let objects = bundle["objects"].as_array().unwrap();
    let of = |kind: &str| {
        objects
            .iter()
            .filter(|o| o["type"] == kind)
            .collect::<Vec<_>>()
    };
    for kind in [
        "identity",
        "marking-definition",
        "incident",
        "observed-data",
        "indicator",
        "sighting",
        "attack-pattern",
        "relationship",
        "report",
        "ipv4-addr",
        "ipv6-addr",
    ] {
        assert!(!of(kind).is_empty(), "the bundle has no {kind}");
    }
    let identity = of("identity")[0];
    assert_eq!(identity["identity_class"], "organization");
    assert_eq!(identity["name"], "Example Party");
    let marking = of("marking-definition")[0];
    assert_eq!(marking["id"], TLP_AMBER);
    assert_eq!(marking["definition"]["tlp"], "amber");
    let incident_sdo = of("incident")[0];
    let ext = &incident_sdo["extensions"][INCIDENT_CORE_EXTENSION];
    assert_eq!(ext["extension_type"], "property-extension");
    assert_eq!(ext["investigation_status"], "open");
    assert_eq!(
        ext["determination"], "confirmed",
        "the upstream failed: not merely blocked"
    );
    assert_eq!(ext["criticality"], 95);
    assert_eq!(ext["impacted_entity_counts"]["individual"], 40);
    // Patterns name prefixes, CIDR in the value.
    let patterns: Vec<&str> = of("indicator")
        .iter()
        .map(|i| i["pattern"].as_str().unwrap())
        .collect();
    assert!(
        patterns.contains(&"[ipv4-addr:value = '203.0.113.0/24']"),
        "{patterns:?}"
    );
    assert!(
        patterns.contains(&"[ipv6-addr:value = '2001:db8:0:0::/64']"),
        "{patterns:?}"
    );
    // CAPEC references.
    let capec: Vec<&str> = of("attack-pattern")
        .iter()
        .filter_map(|a| a["external_references"][0]["external_id"].as_str())
        .collect();
    for id in ["CAPEC-66", "CAPEC-63", "CAPEC-125"] {
        assert!(capec.contains(&id), "{capec:?}");
    }
    // Every created object is attributed and marked.
    for o in objects {
        let kind = o["type"].as_str().unwrap();
        if kind == "marking-definition" {
            continue;
        }
        assert_eq!(
            o["object_marking_refs"][0], TLP_AMBER,
            "{kind} is not marked"
        );
        if !kind.ends_with("-addr") {
            assert_eq!(o["created_by_ref"], identity["id"], "{kind} has no creator");
            assert!(
                o["created"].as_str().unwrap().ends_with(".000Z"),
                "{kind}: milliseconds and Z"
            );
        }
    }
    // The report references every other object.
    let report = of("report")[0];
    let refs = report["object_refs"].as_array().unwrap();
    assert_eq!(refs.len(), objects.len() - 1);
    // Reproducible.
    assert_eq!(bundle, stix_bundle(&input(&incident, &timeline, &org)));
}

#[test]
fn misp_event_has_prefixes_attacks_rules_and_counts() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let event = misp_event(&input(&incident, &timeline, &org));
    let e = &event["Event"];
    assert_eq!(e["threat_level_id"], "1");
    assert_eq!(e["analysis"], "1");
    assert_eq!(e["distribution"], "0");
    assert_eq!(e["date"], "2026-11-29");
    assert_eq!(e["Tag"][0]["name"], "tlp:amber");
    let attributes = e["Attribute"].as_array().unwrap();
    let values: Vec<(&str, &str)> = attributes
        .iter()
        .map(|a| (a["type"].as_str().unwrap(), a["value"].as_str().unwrap()))
        .collect();
    assert!(values.contains(&("ip-src", "203.0.113.0/24")), "{values:?}");
    assert!(
        values.contains(&("ip-src", "2001:db8:0:0::/64")),
        "{values:?}"
    );
    assert!(
        values
            .iter()
            .any(|(t, v)| *t == "text" && v.contains("CAPEC-66")),
        "{values:?}"
    );
    assert!(values.contains(&("text", "WAF rule 942100")), "{values:?}");
    assert!(values.iter().any(|(t, _)| *t == "counter"), "{values:?}");
    for a in attributes {
        assert!(
            a["uuid"].as_str().unwrap().len() == 36 && !a["category"].as_str().unwrap().is_empty()
        );
    }
}

#[test]
fn render_prints_each_format() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let input = input(&incident, &timeline, &org);
    assert!(render(&input, Format::Markdown).starts_with("# Incident report"));
    assert!(render(&input, Format::Html).starts_with("<!DOCTYPE html>"));
    for format in [Format::Json, Format::Stix, Format::Misp] {
        let text = render(&input, format);
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{format:?}: {e}"));
    }
    let error = "docx".parse::<Format>().unwrap_err().to_string();
    assert!(
        error.contains("md") && error.contains("markdown") && error.contains("stix"),
        "{error}"
    );
}

#[test]
fn an_incident_without_personal_data_says_the_ico_is_not_indicated() {
    let mut incident = realistic();
    incident.kinds = vec![IncidentKind::Flood];
    incident.data = None;
    let (timeline, org) = (timeline(), organisation());
    let text = markdown(&input(&incident, &timeline, &org));
    assert!(text.contains("No personal data was involved: ICO notification is not indicated by the gateway's evidence."));
    assert!(text.contains("ICO 72-hour window: not applicable: no personal data involved."));
    assert!(!text.contains("Nature of the breach"));
    assert!(!text.contains("Decide whether to notify the ICO"));
    // A data section that says nothing left is the same.
    incident.data = Some(no_personal_data());
    assert!(markdown(&input(&incident, &timeline, &org))
        .contains("not applicable: no personal data involved"));
}

#[test]
fn the_window_line_says_when_it_passed_and_when_the_ico_was_told() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    let late = ReportInput {
        generated_at: at(10, 15) + 75 * 3_600_000,
        ..input(&incident, &timeline, &org)
    };
    let s = report::sections(&late);
    assert_eq!(
        s.ico_window.line,
        "ICO 72-hour window: aware 2026-11-29 10:15:00 UTC, deadline 2026-12-02 10:15:00 UTC — passed 3 h 0 min ago."
    );
    assert!(s
        .next_steps
        .iter()
        .any(|step| step.contains("The 72-hour window has passed")));

    let mut told = realistic();
    told.decisions.push(Decision {
        at: at(18, 0),
        by: "Sam (DPO)".into(),
        text: "Reported the donor feed.".into(),
        told: Some("ICO".into()),
    });
    let s = report::sections(&input(&told, &timeline, &org));
    assert!(
        s.ico_window
            .line
            .ends_with("; the ICO was told 2026-11-29 18:00:00 UTC."),
        "{}",
        s.ico_window.line
    );
    assert!(!s
        .next_steps
        .iter()
        .any(|step| step.contains("notify the ICO")));
}

#[test]
fn no_one_told_yet_says_how_to_record_it() {
    let mut incident = realistic();
    incident.decisions.clear();
    let (timeline, org) = (timeline(), organisation());
    let text = markdown(&input(&incident, &timeline, &org));
    assert!(
        text.contains("No one recorded yet — record with `rampart incidents note 42 --told NCSC`"),
        "{text}"
    );
    assert!(text.contains("No decisions recorded yet."));
}

#[test]
fn dropped_events_make_totals_lower_bounds() {
    let mut incident = realistic();
    incident.dropped_events = 1234;
    let (timeline, org) = (timeline(), organisation());
    let input = input(&incident, &timeline, &org);
    for text in [markdown(&input), html(&input)] {
        assert!(text.contains("1,234 events were dropped"), "{text}");
        assert!(text.contains("lower bound"));
    }
    assert!(report::sections(&input).totals_are_lower_bounds);
}

#[test]
fn html_escapes_everything_interpolated() {
    let mut incident = realistic();
    incident.title = "<script>alert(1)</script> & \"quotes\"".into();
    incident.site = "<img src=x onerror=alert(1)>".into();
    incident.decisions[0].text = "</td><script>x()</script>".into();
    incident.top_prefixes.insert(
        0,
        Tally {
            key: "<b>bold</b>".into(),
            count: 1,
        },
    );
    let org = Organisation {
        name: "<Party>".into(),
        contact: "<a href=x>dpo</a>".into(),
        sector: "'sector'".into(),
    };
    let timeline = timeline();
    let page = html(&input(&incident, &timeline, &org));
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>bold"));
    assert!(!page.contains("<a href"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    // Markdown escapes what would become HTML or table cells.
    let text = markdown(&input(&incident, &timeline, &org));
    assert!(!text.contains("<script>"), "{text}");
}

#[test]
fn an_empty_timeline_says_so_instead_of_drawing() {
    let (incident, org) = (realistic(), organisation());
    let page = html(&input(&incident, &[], &org));
    assert!(!page.contains("<svg"));
    assert!(page.contains("no chart"));
}

#[test]
fn the_default_organisation_says_where_to_set_it() {
    let org = Organisation::default();
    for field in [&org.name, &org.contact, &org.sector] {
        assert!(
            field.contains("set [incidents] organisation in the config"),
            "{field}"
        );
    }
}
