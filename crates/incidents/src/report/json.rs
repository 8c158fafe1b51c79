//! The report as JSON.

use super::{sections_of, Organisation, ReportInput, Sections, TimelinePoint};
use crate::model::{Incident, Millis};
use crate::scrub::scrubbed;
use crate::time::rfc3339;
use serde::Serialize;

#[derive(Serialize)]
struct JsonReport<'a> {
    report: &'static str,
    format_version: u32,
    reference: String,
    generated_at: String,
    generated_at_ms: Millis,
    handling: &'static str,
    organisation: &'a Organisation,
    incident: &'a Incident,
    timeline: &'a [TimelinePoint],
    sections: &'a Sections,
}

/// The report as pretty JSON: the (scrubbed) incident, the timeline and the
/// derived [`Sections`], under stable field names (`format_version` 1).
pub fn json(input: &ReportInput) -> String {
    let incident = scrubbed(input.incident);
    let sections = sections_of(&incident, input);
    let report = JsonReport {
        report: "rampart incident report",
        format_version: 1,
        reference: incident.reference(),
        generated_at: rfc3339(input.generated_at),
        generated_at_ms: input.generated_at,
        handling: "TLP:AMBER",
        organisation: input.organisation,
        incident: &incident,
        timeline: input.timeline,
        sections: &sections,
    };
    let mut text = serde_json::to_string_pretty(&report).expect("a report serialises");
    text.push('\n');
    text
}
