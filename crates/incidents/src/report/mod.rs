//! Human reports of one incident: Markdown, a standalone HTML page and JSON.
//!
//! A report follows what the NCSC's incident report asks for (summary and
//! impact, timeline, technical analysis, mitigations done and planned, who
//! else has been told, next steps) and, when personal data was involved, what
//! UK GDPR Article 33(3) asks the ICO to be told (nature of the breach, likely
//! consequences, measures taken or proposed, contact point), with the 72-hour
//! window's state at the time of the report.
//!
//! All three formats are drawn from one set of derived [`Sections`], so they
//! say the same thing. A report never carries personal data: the [`Incident`]
//! holds counts, categories and address prefixes only, and every free-text
//! field (titles, actions, decisions) goes through [`scrub`] first, which
//! masks anything that looks like an email address, a payment card number, a
//! National Insurance number or a whole IP address. Decisions are written by
//! operators and are printed (scrubbed): that is what a decision log is for.
//! The organisation's contact point is printed as configured: it is the
//! contact the ICO asks for, not data about the people in the breach.
//!
//! Times are printed in UTC, as `2026-11-29 10:15:00 UTC` for people and as RFC
//! 3339 with milliseconds (`2026-11-29T10:15:00.000Z`) for machines.
//!
//! Each format has its own module; [`sections()`] derives what they all say,
//! and the document module lays it out as blocks that the Markdown and HTML
//! printers share.

mod document;
mod html;
mod json;
mod markdown;
mod sections;

pub use html::html;
pub use json::json;
pub use markdown::markdown;
pub(crate) use sections::sections_of;
pub use sections::*;

// The calendar and scrubbing live beside this module because exports and
// alerts print them too; they keep their public paths under `report`.
pub use crate::scrub::scrub;
pub(crate) use crate::scrub::scrubbed;
pub use crate::time::{civil_from_days, date, human_time, parse_time, rfc3339};

use crate::model::{Incident, Millis};
use serde::{Deserialize, Serialize};

/// One bucket of a site's traffic, for the timeline chart (the store's type).
pub use crate::store::TimelinePoint;

/// Who the report is from: the `[incidents] organisation` part of the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// The organisation's name (`Example Party`).
    pub name: String,
    /// The contact point for the ICO and the NCSC
    /// (`Data Protection Officer, dpo@example.org`).
    pub contact: String,
    /// The sector, in words (`political party`).
    pub sector: String,
}

impl Default for Organisation {
    /// Placeholders that say where to set the real values, so a report made
    /// before the config is complete shows what is missing instead of
    /// inventing anything.
    fn default() -> Organisation {
        Organisation {
            name: "(organisation not set: set [incidents] organisation in the config)".into(),
            contact: "(contact point not set: set [incidents] organisation in the config)".into(),
            sector: "(sector not set: set [incidents] organisation in the config)".into(),
        }
    }
}

/// Everything a report or export is made from.
#[derive(Clone, Copy, Debug)]
pub struct ReportInput<'a> {
    /// The incident.
    pub incident: &'a Incident,
    /// Traffic over the incident's span, oldest first (may be empty).
    pub timeline: &'a [TimelinePoint],
    /// Who the report is from.
    pub organisation: &'a Organisation,
    /// When the report is made: the 72-hour line counts from here, and
    /// exports use it as their `modified` and `published` time.
    pub generated_at: Millis,
}
