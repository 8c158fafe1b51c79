//! The document: one list of blocks, printed as Markdown or HTML.

use super::sections::note_command;
use super::{ReportInput, Sections};
use crate::model::Incident;
use crate::time::human_time;
use crate::words::{count, rate};

pub(super) enum Inline {
    Text(String),
    Code(String),
    Strong(String),
}

#[derive(Default)]
pub(super) struct Line(pub(super) Vec<Inline>);

impl Line {
    fn text(mut self, s: impl Into<String>) -> Line {
        self.0.push(Inline::Text(s.into()));
        self
    }
    fn code(mut self, s: impl Into<String>) -> Line {
        self.0.push(Inline::Code(s.into()));
        self
    }
    fn strong(mut self, s: impl Into<String>) -> Line {
        self.0.push(Inline::Strong(s.into()));
        self
    }
}

fn text(s: impl Into<String>) -> Line {
    Line::default().text(s)
}

/// Text with `code spans` in backquotes, for the generated sentences that
/// quote a command. Only for text this module writes, never free text.
fn with_code(s: &str) -> Line {
    let mut line = Line::default();
    for (i, part) in s.split('`').enumerate() {
        if part.is_empty() {
            continue;
        }
        line = if i % 2 == 1 {
            line.code(part)
        } else {
            line.text(part)
        };
    }
    line
}

pub(super) enum Block {
    Title(String),
    Heading(String),
    Subheading(String),
    Para(Line),
    List(Vec<Line>),
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    },
    /// The TLP handling line.
    Handling,
    Chart,
}

/// What TLP:AMBER asks of the reader, printed under the title.
pub(super) const HANDLING: &str =
    "share within the recipient organisation and its clients on a need-to-know basis";

pub(super) fn document(incident: &Incident, input: &ReportInput, s: &Sections) -> Vec<Block> {
    use Block::*;
    let org = input.organisation;
    let kinds: Vec<String> = incident.kinds.iter().map(ToString::to_string).collect();
    let mut doc = vec![
        Title(format!(
            "Incident report {}: {}",
            incident.reference(),
            incident.title
        )),
        Handling,
        List(vec![
            text("Organisation: ")
                .text(&org.name)
                .text(format!(" ({})", org.sector)),
            text("Site: ").text(&incident.site),
            text(format!(
                "Severity: {}; status: {}; kinds: {}",
                incident.severity,
                incident.status,
                kinds.join(", ")
            )),
            text(format!(
                "Report generated {}",
                human_time(input.generated_at)
            )),
        ]),
    ];

    doc.push(Heading("1. Summary and impact".into()));
    doc.push(Para(text(&s.summary)));
    doc.push(List(s.impact.iter().map(text).collect()));

    doc.push(Heading("2. Timeline".into()));
    doc.push(Table {
        head: vec!["Time (UTC)", "What"],
        rows: s
            .timeline
            .iter()
            .map(|m| vec![human_time(m.at_ms), m.what.clone()])
            .collect(),
    });
    doc.push(Chart);

    doc.push(Heading("3. Technical analysis".into()));
    let t = &s.technical;
    doc.push(Subheading("Attack types".into()));
    if t.attack_types.is_empty() {
        doc.push(Para(text("No WAF attack types were recorded.")));
    } else {
        doc.push(Table {
            head: vec!["Type", "Count", "CAPEC"],
            rows: t
                .attack_types
                .iter()
                .map(|a| {
                    vec![
                        format!("{} ({})", a.name, a.key),
                        count(a.count),
                        a.capec.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect(),
        });
    }
    doc.push(Subheading("Peak rate and volumes".into()));
    let mut volumes = vec![
        text(format!(
            "Peak rate: {} requests/s at {}",
            rate(t.peak_rps),
            human_time(incident.peak_at)
        )),
        text(format!("Requests: {}", count(t.requests))),
        text(format!("Blocked: {}", count(t.blocked))),
        text(format!("Challenged: {}", count(t.challenged))),
        text(format!("Limited: {}", count(t.limited))),
        text(format!("Upstream errors: {}", count(t.upstream_errors))),
        text(format!("Events grouped: {}", count(t.events))),
    ];
    if s.totals_are_lower_bounds {
        volumes.push(text(format!(
            "Dropped events: {} — every total here is a lower bound.",
            count(t.dropped_events)
        )));
    }
    doc.push(List(volumes));
    doc.push(Subheading("Sources".into()));
    doc.push(Para(text(format!(
        "Distinct sources: {} client addresses (addresses are not printed; prefixes are /24 for IPv4 and /64 for IPv6).",
        count(t.distinct_sources)
    ))));
    if !t.top_prefixes.is_empty() {
        doc.push(Table {
            head: vec!["Top source prefixes", "Events"],
            rows: t
                .top_prefixes
                .iter()
                .map(|p| vec![p.key.clone(), count(p.count)])
                .collect(),
        });
    }
    doc.push(Subheading("Rules hit".into()));
    if t.rules.is_empty() {
        doc.push(Para(text("No WAF rules were hit.")));
    } else {
        doc.push(Table {
            head: vec!["Rule", "Hits"],
            rows: t
                .rules
                .iter()
                .map(|r| vec![r.key.clone(), count(r.count)])
                .collect(),
        });
    }

    doc.push(Heading("4. Mitigations".into()));
    doc.push(Subheading("Mitigations done".into()));
    if s.mitigations_done.is_empty() {
        doc.push(Para(text("No actions were recorded.")));
    } else {
        doc.push(List(
            s.mitigations_done
                .iter()
                .map(|m| text(format!("{}: ", human_time(m.at_ms))).text(&m.what))
                .collect(),
        ));
    }
    doc.push(Subheading("Mitigations planned".into()));
    if s.mitigations_planned.is_empty() {
        doc.push(Para(text("None suggested for these kinds of incident.")));
    } else {
        doc.push(List(s.mitigations_planned.iter().map(text).collect()));
    }

    doc.push(Heading("5. Who else has been told".into()));
    if s.told.is_empty() {
        doc.push(Para(
            text("No one recorded yet — record with ")
                .code(note_command(incident, "NCSC"))
                .text("."),
        ));
    } else {
        doc.push(List(
            s.told
                .iter()
                .map(|t| {
                    Line::default()
                        .strong(&t.party)
                        .text(format!(", {} by {}: ", human_time(t.at_ms), t.by))
                        .text(&t.text)
                })
                .collect(),
        ));
    }

    doc.push(Heading(
        "6. Personal data and the ICO (UK GDPR Article 33(3))".into(),
    ));
    let p = &s.personal_data;
    doc.push(Para(text(&p.statement)));
    if p.involved {
        doc.push(Subheading("Nature of the breach".into()));
        doc.push(List(p.nature.iter().map(text).collect()));
        doc.push(Subheading("Likely consequences".into()));
        doc.push(List(p.likely_consequences.iter().map(text).collect()));
        doc.push(Subheading("Measures taken or proposed".into()));
        doc.push(List(p.measures.iter().map(text).collect()));
        doc.push(Subheading("Contact point".into()));
        doc.push(Para(text(&p.contact_point)));
    }
    doc.push(Para(Line::default().strong(&s.ico_window.line)));

    doc.push(Heading("7. Next steps".into()));
    doc.push(List(
        s.next_steps.iter().map(|step| with_code(step)).collect(),
    ));

    doc.push(Heading("8. Decision log".into()));
    if s.decisions.is_empty() {
        doc.push(Para(text("No decisions recorded yet.")));
    } else {
        doc.push(Table {
            head: vec!["Time (UTC)", "By", "Decision", "Told"],
            rows: s
                .decisions
                .iter()
                .map(|d| {
                    vec![
                        human_time(d.at_ms),
                        d.by.clone(),
                        d.text.clone(),
                        d.told.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
        });
    }
    doc.push(Para(text(format!(
        "Made by rampart from its event store. Addresses are shown as prefixes and personal data as counts and categories only; free text is scrubbed of anything that looks like an email address, card, NI number or whole IP address.{}",
        if s.totals_are_lower_bounds { " Events were dropped: totals are lower bounds." } else { "" }
    ))));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_split_on_backquotes() {
        let line = with_code("run `a b` now");
        assert_eq!(line.0.len(), 3);
        assert!(matches!(&line.0[1], Inline::Code(c) if c == "a b"));
    }
}
