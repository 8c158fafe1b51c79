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

use crate::export::{attack_pattern, AttackPatternInfo};
use crate::model::{
    source_prefix, DataLeft, Incident, IncidentKind, IncidentStatus, Millis, Severity, Tally,
    ICO_WINDOW_MS,
};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

// ---------------------------------------------------------------------------
// Time

/// Reads a UTC time written `2026-11-29T10:15Z`, `2026-11-29T10:15:30Z` or
/// `2026-11-29 10:15` into Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z').trim_end_matches(" UTC");
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`; negative counts are days
/// before 1970).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    milli: u32,
}

fn civil(ms: Millis) -> Civil {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1000 % 60) as u32,
        milli: (in_day % 1000) as u32,
    }
}

/// RFC 3339 in UTC with milliseconds, as STIX wants: `2026-11-29T10:15:00.000Z`.
pub fn rfc3339(ms: Millis) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

/// A time for people, to the second (a flood's timeline moves by the
/// second): `2026-11-29 10:15:07 UTC`.
pub fn human_time(ms: Millis) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The calendar date alone: `2026-11-29`.
pub fn date(ms: Millis) -> String {
    let c = civil(ms);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// A duration in hours and minutes, rounded down: `61 h 20 min`.
fn hours_minutes(ms: Millis) -> String {
    let minutes = ms.max(0) / 60_000;
    format!("{} h {} min", minutes / 60, minutes % 60)
}

// ---------------------------------------------------------------------------
// Scrubbing

/// Masks what looks like personal data in free text: email addresses become
/// `[email]`, payment card numbers and other long digit runs (10 digits or
/// more, spaces or dashes between groups) become `[card number]` or
/// `[number]`, National Insurance numbers become `[NI number]`, and whole
/// IPv4 or IPv6 addresses become their source prefix (`203.0.113.0/24`,
/// `2001:db8:0:0::/64`). Prefixes already in prefix form are kept.
///
/// It errs towards masking: a long number that is not a card is masked too.
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes[..copied] are in `out`
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_word(bytes[i - 1]);
        let found = if boundary { scrub_at(text, i) } else { None };
        match found {
            Some((len, replacement)) => {
                out.push_str(&text[copied..i]);
                match replacement {
                    Some(mask) => out.push_str(&mask),
                    None => out.push_str(&text[i..i + len]),
                }
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// What starts at `i`: the length of a match and its mask (`None` to keep
/// it as it is, for a prefix).
fn scrub_at(text: &str, i: usize) -> Option<(usize, Option<String>)> {
    let bytes = text.as_bytes();
    let b = bytes[i];
    // An address or email part never follows a dot or colon it belongs to.
    if i > 0 && matches!(bytes[i - 1], b'.' | b':' | b'@' | b'-' | b'+' | b'%') {
        return None;
    }
    if let Some(len) = email_at(bytes, i) {
        return Some((len, Some("[email]".into())));
    }
    if b.is_ascii_hexdigit() || b == b':' {
        if let Some(found) = ip_at(text, i) {
            return Some(found);
        }
    }
    if b.is_ascii_alphabetic() {
        if let Some(len) = ni_number_at(bytes, i) {
            return Some((len, Some("[NI number]".into())));
        }
    }
    if b.is_ascii_digit() || b == b'+' {
        if let Some((len, digits)) = digit_run_at(bytes, i) {
            let mask = if (13..=19).contains(&digits) {
                "[card number]"
            } else {
                "[number]"
            };
            return Some((len, Some(mask.into())));
        }
    }
    None
}

fn email_at(bytes: &[u8], i: usize) -> Option<usize> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let mut j = i;
    while j < bytes.len() && local(bytes[j]) {
        j += 1;
    }
    if j == i || j >= bytes.len() || bytes[j] != b'@' {
        return None;
    }
    let domain_start = j + 1;
    let mut k = domain_start;
    while k < bytes.len()
        && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'.' || bytes[k] == b'-')
    {
        k += 1;
    }
    while k > domain_start && matches!(bytes[k - 1], b'.' | b'-') {
        k -= 1;
    }
    let domain = &bytes[domain_start..k];
    let last_dot = domain.iter().rposition(|&b| b == b'.')?;
    let tld = &domain[last_dot + 1..];
    (last_dot > 0 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)).then_some(k - i)
}

/// A whole IPv4 or IPv6 address (masked to its prefix), or a prefix in CIDR
/// form whose host bits are zero and whose length is at most the grouping
/// prefix (kept).
fn ip_at(text: &str, i: usize) -> Option<(usize, Option<String>)> {
    let bytes = text.as_bytes();
    let mut j = i;
    while j < bytes.len() && (bytes[j].is_ascii_hexdigit() || bytes[j] == b':' || bytes[j] == b'.')
    {
        j += 1;
    }
    // Trailing punctuation belongs to the sentence ("... from 203.0.113.77.").
    let mut end = j;
    let mut addr = None;
    while end > i {
        let candidate = &text[i..end];
        let parsed = if candidate.contains(':') {
            let hex_digits = candidate.bytes().filter(u8::is_ascii_hexdigit).count();
            // Four hex digits at least: `a::b` in prose is not an address.
            (candidate.bytes().filter(|&b| b == b':').count() >= 2 && hex_digits >= 4)
                .then(|| candidate.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
                .flatten()
        } else {
            (candidate.bytes().filter(|&b| b == b'.').count() == 3)
                .then(|| candidate.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
                .flatten()
        };
        if parsed.is_some() {
            addr = parsed;
            break;
        }
        if !matches!(bytes[end - 1], b'.' | b':') {
            break;
        }
        end -= 1;
    }
    let addr = addr?;
    // Glued to more word characters (`1.2.3.4abc`): not an address on its own.
    if end < bytes.len() && is_word(bytes[end]) && end == j {
        return None;
    }
    // A CIDR suffix.
    if end == j && end < bytes.len() && bytes[end] == b'/' {
        let digits = bytes[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if (1..=3).contains(&digits) {
            let len: u32 = text[end + 1..end + 1 + digits].parse().ok()?;
            let total = end + 1 + digits - i;
            let keep = match addr {
                IpAddr::V4(v4) => len <= 24 && u32::from(v4).checked_shl(len).unwrap_or(0) == 0,
                IpAddr::V6(v6) => len <= 64 && u128::from(v6).checked_shl(len).unwrap_or(0) == 0,
            };
            let mask = (!keep).then(|| source_prefix(addr));
            return Some((total, mask));
        }
    }
    Some((end - i, Some(source_prefix(addr))))
}

/// `QQ 12 34 56 C`, `QQ123456C`: two letters, three pairs of digits, a
/// letter A to D, spaces optional between the groups.
fn ni_number_at(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let letter = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_alphabetic);
    if !(letter(j) && letter(j + 1)) {
        return None;
    }
    j += 2;
    for _ in 0..3 {
        if bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if !(bytes.get(j).is_some_and(u8::is_ascii_digit)
            && bytes.get(j + 1).is_some_and(u8::is_ascii_digit))
        {
            return None;
        }
        j += 2;
    }
    if bytes.get(j) == Some(&b' ') {
        j += 1;
    }
    if !bytes
        .get(j)
        .is_some_and(|b| matches!(b.to_ascii_uppercase(), b'A'..=b'D'))
    {
        return None;
    }
    j += 1;
    (!bytes.get(j).copied().is_some_and(is_word)).then_some(j - i)
}

/// A run of digits with single spaces or dashes between groups (an optional
/// leading `+`), of 10 digits or more: a card, phone or account number.
/// Returns its length in bytes and its digit count.
fn digit_run_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if bytes[j] == b'+' {
        j += 1;
    }
    let mut digits = 0;
    let mut end = j;
    while j < bytes.len() {
        if bytes[j].is_ascii_digit() {
            digits += 1;
            j += 1;
            end = j;
        } else if matches!(bytes[j], b' ' | b'-')
            && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
            && end == j
        {
            j += 1;
        } else {
            break;
        }
    }
    if bytes.get(end).copied().is_some_and(is_word) {
        return None;
    }
    (digits >= 10).then_some((end - i, digits))
}

/// A copy of the incident with every free-text field scrubbed.
pub(crate) fn scrubbed(incident: &Incident) -> Incident {
    let mut copy = incident.clone();
    copy.title = scrub(&copy.title);
    copy.site = scrub(&copy.site);
    for tallies in [&mut copy.top_prefixes, &mut copy.rules, &mut copy.attacks] {
        for tally in tallies.iter_mut() {
            tally.key = scrub(&tally.key);
        }
    }
    for action in &mut copy.actions {
        action.what = scrub(&action.what);
    }
    for decision in &mut copy.decisions {
        decision.by = scrub(&decision.by);
        decision.text = scrub(&decision.text);
        decision.told = decision.told.as_deref().map(scrub);
    }
    if let Some(data) = &mut copy.data {
        for tally in &mut data.entities {
            tally.key = scrub(&tally.key);
        }
        for category in &mut data.categories {
            *category = scrub(category);
        }
    }
    copy
}

// ---------------------------------------------------------------------------
// The derived sections

/// Something that happened at a time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moment {
    /// When, RFC 3339.
    pub at: String,
    /// When, Unix milliseconds.
    pub at_ms: Millis,
    /// What.
    pub what: String,
}

impl Moment {
    fn new(at_ms: Millis, what: impl Into<String>) -> Moment {
        Moment {
            at: rfc3339(at_ms),
            at_ms,
            what: what.into(),
        }
    }
}

/// One attack type seen, with its CAPEC entry when known.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttackType {
    /// The key as recorded (`sqli`).
    pub key: String,
    /// How many times.
    pub count: u64,
    /// Its name in words (`SQL injection`).
    pub name: String,
    /// The CAPEC id (`CAPEC-66`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capec: Option<String>,
}

/// The technical analysis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Technical {
    /// Attack types, most first.
    pub attack_types: Vec<AttackType>,
    /// The highest request rate in one traffic window, per second.
    pub peak_rps: f64,
    /// When, RFC 3339.
    pub peak_at: String,
    /// Requests seen at the site while the incident was open.
    pub requests: u64,
    /// Requests denied.
    pub blocked: u64,
    /// Requests challenged.
    pub challenged: u64,
    /// Requests limited.
    pub limited: u64,
    /// Upstream failures over the timeline.
    pub upstream_errors: u64,
    /// Events grouped into the incident.
    pub events: u64,
    /// Distinct client addresses (a count; the addresses are not kept here).
    pub distinct_sources: u64,
    /// The busiest source prefixes.
    pub top_prefixes: Vec<Tally>,
    /// WAF rules hit.
    pub rules: Vec<Tally>,
    /// Events dropped before the store saw them.
    pub dropped_events: u64,
}

/// A party that was told about the incident.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Told {
    /// When, RFC 3339.
    pub at: String,
    /// When, Unix milliseconds.
    pub at_ms: Millis,
    /// Who was told (`NCSC`).
    pub party: String,
    /// Who told them.
    pub by: String,
    /// The decision log entry.
    pub text: String,
}

/// An entry of the decision log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionEntry {
    /// When, RFC 3339.
    pub at: String,
    /// When, Unix milliseconds.
    pub at_ms: Millis,
    /// Who decided.
    pub by: String,
    /// The decision and its reason.
    pub text: String,
    /// A party that was told, if the entry records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub told: Option<String>,
}

/// What UK GDPR Article 33(3) asks the ICO to be told.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PersonalData {
    /// Whether personal data was involved (the section applies).
    pub involved: bool,
    /// Whether it left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<DataLeft>,
    /// One sentence on where things stand.
    pub statement: String,
    /// Article 33(3)(a): the nature of the breach, in sentences.
    pub nature: Vec<String>,
    /// The categories of personal data.
    pub categories: Vec<String>,
    /// Whether any is special-category data.
    pub special_category: bool,
    /// Matches per entity kind.
    pub entities: Vec<Tally>,
    /// The approximate number of data subjects.
    pub data_subjects: u64,
    /// The approximate number of records.
    pub records: u64,
    /// Article 33(3)(c): the likely consequences.
    pub likely_consequences: Vec<String>,
    /// Article 33(3)(d): measures taken or proposed.
    pub measures: Vec<String>,
    /// Article 33(3)(b): the contact point.
    pub contact_point: String,
}

/// The ICO's 72-hour window at the time of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IcoWindow {
    /// Whether the window applies (personal data was involved).
    pub applicable: bool,
    /// When the organisation became aware, RFC 3339.
    pub aware_at: String,
    /// Aware plus 72 hours, RFC 3339.
    pub deadline: String,
    /// Milliseconds from the report to the deadline (negative once passed).
    pub remaining_ms: i64,
    /// When the decision log records the ICO as told, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ico_told_at: Option<String>,
    /// The line the human reports print.
    pub line: String,
}

/// Everything a report says, derived from the input once.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sections {
    /// One paragraph.
    pub summary: String,
    /// What it did to the site, the visitors and the data.
    pub impact: Vec<String>,
    /// First event, aware, peak, actions, decisions, closed; in time order.
    pub timeline: Vec<Moment>,
    /// The technical analysis.
    pub technical: Technical,
    /// What the gateway did.
    pub mitigations_done: Vec<Moment>,
    /// What to do next about the cause, derived from the kinds.
    pub mitigations_planned: Vec<String>,
    /// Who else has been told (from the decision log).
    pub told: Vec<Told>,
    /// The Article 33(3) section.
    pub personal_data: PersonalData,
    /// The 72-hour window.
    pub ico_window: IcoWindow,
    /// What to do now.
    pub next_steps: Vec<String>,
    /// The decision log, in time order.
    pub decisions: Vec<DecisionEntry>,
    /// Whether events were dropped, so totals are lower bounds.
    pub totals_are_lower_bounds: bool,
}

fn kind_phrase(kind: IncidentKind) -> &'static str {
    match kind {
        IncidentKind::Flood => "an HTTP flood",
        IncidentKind::Injection => "an injection campaign",
        IncidentKind::CredentialStuffing => "a credential-stuffing run",
        IncidentKind::DataLeak => "personal data in responses",
        IncidentKind::CanaryTrip => "a planted canary record in a response",
        IncidentKind::Availability => "upstream failures",
    }
}

/// The names the reports, exports and alerts print (as serde spells them).
pub(crate) fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

pub(crate) fn status_name(status: IncidentStatus) -> &'static str {
    match status {
        IncidentStatus::Open => "open",
        IncidentStatus::Closed => "closed",
    }
}

pub(crate) fn left_name(left: DataLeft) -> &'static str {
    match left {
        DataLeft::No => "no",
        DataLeft::Prevented => "prevented",
        DataLeft::Yes => "yes",
        DataLeft::Unknown => "unknown",
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_words<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// `12,345`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn rate(rps: f64) -> String {
    if rps >= 10.0 {
        format!("{rps:.0}")
    } else {
        format!("{rps:.1}")
    }
}

fn is_party(told: &str, party: &str) -> bool {
    told.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word.eq_ignore_ascii_case(party))
}

fn told_at(incident: &Incident, party: &str) -> Option<Millis> {
    incident
        .decisions
        .iter()
        .filter(|d| d.told.as_deref().is_some_and(|t| is_party(t, party)))
        .map(|d| d.at)
        .min()
}

fn personal_data_involved(incident: &Incident) -> bool {
    incident
        .data
        .as_ref()
        .is_some_and(|d| d.left != DataLeft::No)
}

fn has(incident: &Incident, kind: IncidentKind) -> bool {
    incident.kinds.contains(&kind)
}

fn has_entity(incident: &Incident, kinds: &[&str]) -> bool {
    incident
        .data
        .as_ref()
        .is_some_and(|d| d.entities.iter().any(|t| kinds.contains(&t.key.as_str())))
}

/// The command that records a party as told, for the reports to quote.
fn note_command(incident: &Incident, party: &str) -> String {
    format!("rampart incidents note {} --told {party}", incident.id)
}

/// Derives every section of the report from the input. The markdown, HTML
/// and JSON reports all print these.
pub fn sections(input: &ReportInput) -> Sections {
    let incident = &scrubbed(input.incident);
    sections_of(incident, input)
}

pub(crate) fn sections_of(incident: &Incident, input: &ReportInput) -> Sections {
    let upstream_errors: u64 = input.timeline.iter().map(|p| p.upstream_errors).sum();
    let lower_bounds = incident.dropped_events > 0;
    let attack_types: Vec<AttackType> = incident
        .attacks
        .iter()
        .map(|t| {
            let AttackPatternInfo { name, capec, .. } = attack_pattern(&t.key);
            AttackType {
                key: t.key.clone(),
                count: t.count,
                name: name.to_string(),
                capec: capec.map(|(id, _)| id.to_string()),
            }
        })
        .collect();

    // Summary.
    let kinds: Vec<&str> = incident.kinds.iter().map(|&k| kind_phrase(k)).collect();
    let state = match (incident.status, incident.closed_at) {
        (IncidentStatus::Closed, Some(at)) => format!("closed {}", human_time(at)),
        (IncidentStatus::Closed, None) => "closed".to_string(),
        (IncidentStatus::Open, _) => "still open at the time of this report".to_string(),
    };
    let summary = format!(
        "{} at site {}: {}. Severity {}; {}. The first event was at {}; the organisation became aware at {}, when rampart opened the incident.",
        incident.reference(),
        incident.site,
        if kinds.is_empty() { "activity the gateway grouped together".to_string() } else { join_words(&kinds) },
        severity_name(incident.severity),
        state,
        human_time(incident.first_event),
        human_time(incident.aware_at),
    );

    // Impact.
    let mut impact = Vec::new();
    if incident.requests > 0 {
        impact.push(format!(
            "{} requests reached the gateway while the incident was open: {} blocked, {} challenged, {} limited.",
            count(incident.requests),
            count(incident.blocked),
            count(incident.challenged),
            count(incident.limited)
        ));
    }
    if has(incident, IncidentKind::Flood) && incident.peak_rps > 0.0 {
        impact.push(format!(
            "Peak {} requests/s at {}.",
            rate(incident.peak_rps),
            human_time(incident.peak_at)
        ));
    }
    if upstream_errors > 0 || has(incident, IncidentKind::Availability) {
        impact.push(format!(
            "The site degraded: the upstream failed {} requests, so visitors saw errors.",
            count(upstream_errors)
        ));
    } else if has(incident, IncidentKind::Flood) {
        impact.push("The upstream kept serving: the flood was absorbed at the gateway.".into());
    }
    if has(incident, IncidentKind::Injection) {
        let attempts: u64 = incident.attacks.iter().map(|t| t.count).sum();
        let names: Vec<&str> = attack_types.iter().map(|a| a.name.as_str()).collect();
        impact.push(format!(
            "{} injection attempts matched WAF rules ({}); blocked requests never reached the application.",
            count(attempts),
            if names.is_empty() { "types not recorded".to_string() } else { join_words(&names) }
        ));
    }
    if has(incident, IncidentKind::CredentialStuffing) {
        impact.push(
            "Failed logins in bulk on the login routes: accounts that reuse passwords from other breaches are at risk.".into(),
        );
    }
    if let Some(data) = &incident.data {
        let categories = join_words(&data.categories);
        match data.left {
            DataLeft::Yes => impact.push(format!(
                "Personal data left the organisation: about {} records concerning about {} people ({categories}).",
                count(data.records),
                count(data.people)
            )),
            DataLeft::Prevented => impact.push(format!(
                "Personal data was in responses, but the gateway blocked or redacted it before it left (about {} records; {categories}).",
                count(data.records)
            )),
            DataLeft::Unknown => impact.push(format!(
                "It is not known whether personal data left (events were dropped, or a response could not be scanned whole): treat it as if it did until shown otherwise (about {} records; {categories}).",
                count(data.records)
            )),
            DataLeft::No => {}
        }
    }
    if has(incident, IncidentKind::CanaryTrip) {
        let left = incident
            .data
            .as_ref()
            .is_some_and(|d| d.left == DataLeft::Yes);
        impact.push(if left {
            "A planted canary record left: someone can read the data store it was planted in.".into()
        } else {
            "A planted canary record was stopped at the gateway: someone can read the data store it was planted in.".into()
        });
    }
    if lower_bounds {
        impact.push(format!(
            "{} events were dropped before the store saw them: every total in this report is a lower bound.",
            count(incident.dropped_events)
        ));
    }

    // Timeline.
    let mut timeline = vec![
        Moment::new(incident.first_event, "First event"),
        Moment::new(
            incident.aware_at,
            "Aware: rampart opened the incident (the ICO's 72-hour clock starts here)",
        ),
    ];
    if incident.peak_rps > 0.0 {
        timeline.push(Moment::new(
            incident.peak_at,
            format!("Peak: {} requests/s", rate(incident.peak_rps)),
        ));
    }
    for action in &incident.actions {
        timeline.push(Moment::new(action.at, format!("Action: {}", action.what)));
    }
    for decision in &incident.decisions {
        timeline.push(Moment::new(
            decision.at,
            format!("Decision by {}: {}", decision.by, decision.text),
        ));
    }
    timeline.push(Moment::new(incident.last_event, "Last event"));
    match incident.closed_at {
        Some(at) => timeline.push(Moment::new(at, "Closed: quiet for the configured period")),
        None => timeline.push(Moment::new(
            input.generated_at,
            "Still open at the time of this report",
        )),
    }
    timeline.sort_by_key(|m| m.at_ms);

    let technical = Technical {
        attack_types,
        peak_rps: incident.peak_rps,
        peak_at: rfc3339(incident.peak_at),
        requests: incident.requests,
        blocked: incident.blocked,
        challenged: incident.challenged,
        limited: incident.limited,
        upstream_errors,
        events: incident.events,
        distinct_sources: incident.distinct_sources,
        top_prefixes: incident.top_prefixes.clone(),
        rules: incident.rules.clone(),
        dropped_events: incident.dropped_events,
    };

    let mitigations_done: Vec<Moment> = incident
        .actions
        .iter()
        .map(|a| Moment::new(a.at, a.what.clone()))
        .collect();
    let mitigations_planned = planned_mitigations(incident);

    // In time order; a stable sort keeps the log's order for equal times.
    let mut decisions: Vec<DecisionEntry> = incident
        .decisions
        .iter()
        .map(|d| DecisionEntry {
            at: rfc3339(d.at),
            at_ms: d.at,
            by: d.by.clone(),
            text: d.text.clone(),
            told: d.told.clone(),
        })
        .collect();
    decisions.sort_by_key(|d| d.at_ms);
    let told: Vec<Told> = decisions
        .iter()
        .filter_map(|d| {
            let party = d.told.clone()?;
            Some(Told {
                at: d.at.clone(),
                at_ms: d.at_ms,
                party,
                by: d.by.clone(),
                text: d.text.clone(),
            })
        })
        .collect();

    let personal_data = personal_data_section(incident, input.organisation, &mitigations_done);
    let ico_window = ico_window(incident, input.generated_at);
    let next_steps = next_steps(incident, &ico_window, input.generated_at);

    Sections {
        summary,
        impact,
        timeline,
        technical,
        mitigations_done,
        mitigations_planned,
        told,
        personal_data,
        ico_window,
        next_steps,
        decisions,
        totals_are_lower_bounds: lower_bounds,
    }
}

fn planned_mitigations(incident: &Incident) -> Vec<String> {
    let mut planned = Vec::new();
    if has(incident, IncidentKind::Flood) {
        planned.push("Keep the under-attack schedule in place for polling day and the days either side: floods against a party cluster around votes and announcements.".into());
        planned.push("Tighten the rate limits and concurrency caps on the routes that took the peak (the gateway's per-route metrics show which), and keep serve-stale caching on for public pages.".into());
        planned.push("If the peak came near the link's capacity, ask the hosting provider about network-level DDoS protection: the gateway cannot absorb what never reaches it.".into());
    }
    if has(incident, IncidentKind::Injection) {
        planned.push("Keep the WAF blocking on the targeted routes; review the rules hit for false positives before relaxing any.".into());
        planned.push("Check the application behind the targeted routes for the weakness the attempts probed (patch it, or parameterise the queries) rather than relying on the WAF alone.".into());
        planned.push(
            "Consider longer bans for the top source prefixes if they keep returning.".into(),
        );
    }
    if has(incident, IncidentKind::CredentialStuffing) {
        planned.push("Reset the passwords of accounts that logged in successfully from the attacking prefixes, and turn on multi-factor authentication for staff and volunteer accounts.".into());
        planned.push(
            "Tighten the login guard's per-account and per-client limits on the login routes."
                .into(),
        );
    }
    if has(incident, IncidentKind::DataLeak) {
        planned.push("Fix the feed or page that published personal data (donor data in particular must never be served on a public route), then keep the leak guard in block mode on that route.".into());
        planned.push("Rotate any credentials or API keys that were exposed with the data or that give access to its source.".into());
        planned.push("Search the access logs of that route from before the incident for earlier copies of the same responses.".into());
    }
    if has(incident, IncidentKind::CanaryTrip) {
        planned.push("Find how the canary record was read: treat the system that holds it as compromised until shown otherwise, and rotate the credentials that can read it.".into());
        planned.push(
            "Keep the canaries planted, and plant fresh ones in the exports that system produces."
                .into(),
        );
    }
    if has(incident, IncidentKind::Availability) {
        planned.push("Check the upstream's capacity and its health checks, and keep serve-stale caching on so that visitors see cached pages while it recovers.".into());
    }
    planned
}

fn personal_data_section(
    incident: &Incident,
    organisation: &Organisation,
    done: &[Moment],
) -> PersonalData {
    let contact_point = organisation.contact.clone();
    let data = match &incident.data {
        Some(data) if data.left != DataLeft::No => data,
        _ => {
            return PersonalData {
                involved: false,
                left: incident.data.as_ref().map(|d| d.left),
                statement: "No personal data was involved: ICO notification is not indicated by the gateway's evidence.".into(),
                nature: Vec::new(),
                categories: Vec::new(),
                special_category: false,
                entities: Vec::new(),
                data_subjects: 0,
                records: 0,
                likely_consequences: Vec::new(),
                measures: Vec::new(),
                contact_point,
            }
        }
    };
    let statement = match data.left {
        DataLeft::Yes => "Personal data left the organisation: this is a personal data breach. Notify the ICO within 72 hours of becoming aware unless it is unlikely to result in a risk to people's rights and freedoms, and record the decision either way.",
        DataLeft::Prevented => "Personal data was in responses but the gateway blocked or redacted it: as far as the gateway saw, none left. Record this near miss and its assessment (Article 33(5)); the ICO need not be told unless other evidence shows data left.",
        _ => "It is not known whether personal data left: assess it as a breach until shown otherwise, within the same 72 hours.",
    }
    .to_string();
    let entity_words: Vec<String> = data
        .entities
        .iter()
        .map(|t| {
            format!(
                "{} ({} match{})",
                t.key,
                count(t.count),
                if t.count == 1 { "" } else { "es" }
            )
        })
        .collect();
    let mut nature = vec![
        format!("Categories of personal data: {}.", join_words(&data.categories)),
        format!("Approximate number of data subjects concerned: {}.", count(data.people)),
        format!("Approximate number of personal data records concerned: {}.", count(data.records)),
        format!("What the leak guard matched: {}.", join_words(&entity_words)),
        format!(
            "Whether it left: {} (from the gateway's leak guard, which scans responses as they go out).",
            left_name(data.left)
        ),
    ];
    if data.special_category {
        nature.push("Special category data is involved (Article 9).".into());
    }
    if incident.dropped_events > 0 {
        nature.push("Events were dropped, so these numbers are lower bounds.".into());
    }

    let mut consequences = Vec::new();
    if has_entity(incident, &["donor_list"])
        || data.categories.iter().any(|c| c.contains("political"))
    {
        consequences.push("Donor records reveal political opinions (special category data): the people concerned risk discrimination, targeting or harassment, and reputational harm; the organisation risks the trust of its supporters.".into());
    }
    if has_entity(incident, &["card", "iban", "bank_account", "donor_list"])
        || data.categories.iter().any(|c| c.starts_with("financial"))
    {
        consequences.push("Financial details: a risk of fraud and of convincing phishing that quotes real donations or payments.".into());
    }
    if has_entity(incident, &["ni_number", "nhs_number", "date_of_birth"]) {
        consequences
            .push("Official identifiers or dates of birth: a risk of identity fraud.".into());
    }
    if has_entity(incident, &["nhs_number"])
        || data.categories.iter().any(|c| c.starts_with("health"))
    {
        consequences.push("Health data: a risk of distress and discrimination.".into());
    }
    if has_entity(incident, &["email", "phone", "postcode"]) {
        consequences.push("Contact details: a risk of unwanted contact, phishing and, with addresses, doorstep targeting.".into());
    }
    if has_entity(incident, &["canary"]) {
        consequences.push("The canary records concern no real person, but a canary in a response shows that the data store it was planted in is being read: other records from it may have been read by the same path.".into());
    }
    if consequences.is_empty() {
        consequences.push("Loss of confidentiality of the records concerned; assess the harm to the people concerned from what the records hold.".into());
    }
    match data.left {
        DataLeft::Prevented => consequences.push("Because the gateway stopped the responses it saw, these consequences are unlikely to have arisen through them; they apply in full if the data left by any other path.".into()),
        DataLeft::Unknown => consequences.push("Until it is known whether the data left, plan for these consequences as if it did.".into()),
        _ => {}
    }

    let mut measures: Vec<String> = done
        .iter()
        .map(|m| format!("Taken {}: {}", human_time(m.at_ms), m.what))
        .collect();
    if has(incident, IncidentKind::DataLeak) || has(incident, IncidentKind::CanaryTrip) {
        measures.push("Proposed: fix the feed or page that published the data, keep the leak guard blocking on that route, rotate exposed credentials or keys, and search earlier access logs for other copies.".into());
    }
    if data.left == DataLeft::Yes && data.special_category {
        measures.push("Proposed: tell the people concerned without undue delay if the risk to them is high (Article 34).".into());
    }

    PersonalData {
        involved: true,
        left: Some(data.left),
        statement,
        nature,
        categories: data.categories.clone(),
        special_category: data.special_category,
        entities: data.entities.clone(),
        data_subjects: data.people,
        records: data.records,
        likely_consequences: consequences,
        measures,
        contact_point,
    }
}

fn ico_window(incident: &Incident, generated_at: Millis) -> IcoWindow {
    let applicable = personal_data_involved(incident);
    let deadline = if incident.deadline > incident.aware_at {
        incident.deadline
    } else {
        incident.aware_at + ICO_WINDOW_MS
    };
    let remaining_ms = deadline - generated_at;
    let ico_told = told_at(incident, "ICO");
    let line = if !applicable {
        "ICO 72-hour window: not applicable: no personal data involved.".to_string()
    } else {
        let state = if remaining_ms > 0 {
            format!(
                "{} left at the time of this report",
                hours_minutes(remaining_ms)
            )
        } else {
            format!("passed {} ago", hours_minutes(-remaining_ms))
        };
        let told = ico_told
            .map(|at| format!("; the ICO was told {}", human_time(at)))
            .unwrap_or_default();
        format!(
            "ICO 72-hour window: aware {}, deadline {} — {state}{told}.",
            human_time(incident.aware_at),
            human_time(deadline)
        )
    };
    IcoWindow {
        applicable,
        aware_at: rfc3339(incident.aware_at),
        deadline: rfc3339(deadline),
        remaining_ms,
        ico_told_at: ico_told.map(rfc3339),
        line,
    }
}

fn next_steps(incident: &Incident, window: &IcoWindow, generated_at: Millis) -> Vec<String> {
    let mut steps = Vec::new();
    if incident.status == IncidentStatus::Open {
        steps.push("The incident is still open: keep watching the console. rampart closes it after the quiet period, and the totals here grow until then.".into());
    }
    if window.applicable && window.ico_told_at.is_none() {
        if window.remaining_ms > 0 {
            steps.push(format!(
                "Decide whether to notify the ICO before {} and record the decision either way (`{}` once told).",
                human_time(generated_at + window.remaining_ms),
                note_command(incident, "ICO")
            ));
        } else {
            steps.push("The 72-hour window has passed: if the breach is notifiable, notify the ICO now and give the reasons for the delay (Article 33(1)).".into());
        }
        if incident
            .data
            .as_ref()
            .is_some_and(|d| d.left == DataLeft::Yes && d.special_category)
        {
            steps.push("Decide whether to tell the people concerned (Article 34): special category data left.".into());
        }
    }
    if incident.severity >= Severity::Medium && told_at(incident, "NCSC").is_none() {
        steps.push(format!(
            "Report the incident to the NCSC and share the STIX 2.1 or MISP export of it (TLP:AMBER); record it with `{}`.",
            note_command(incident, "NCSC")
        ));
    }
    steps.push("Work through the planned mitigations, and record each decision and its reason in the decision log.".into());
    if incident.dropped_events > 0 {
        steps.push("Events were dropped: check the event channel's capacity and the store's disk before the next surge.".into());
    }
    steps
}

// ---------------------------------------------------------------------------
// The document: one list of blocks, printed as Markdown or HTML.

enum Inline {
    Text(String),
    Code(String),
    Strong(String),
}

#[derive(Default)]
struct Line(Vec<Inline>);

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

enum Block {
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
const HANDLING: &str =
    "share within the recipient organisation and its clients on a need-to-know basis";

fn document(incident: &Incident, input: &ReportInput, s: &Sections) -> Vec<Block> {
    use Block::*;
    let org = input.organisation;
    let kinds: Vec<&str> = incident.kinds.iter().map(|k| k.name()).collect();
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
                severity_name(incident.severity),
                status_name(incident.status),
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

// ---------------------------------------------------------------------------
// Markdown

fn md_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '<' | '>' | '[' | ']' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

fn md_line(line: &Line, out: &mut String) {
    for inline in &line.0 {
        match inline {
            Inline::Text(s) => md_escape(s, out),
            Inline::Code(s) => {
                out.push('`');
                out.push_str(&s.replace('`', "'"));
                out.push('`');
            }
            Inline::Strong(s) => {
                out.push_str("**");
                md_escape(s, out);
                out.push_str("**");
            }
        }
    }
}

/// At most this many rows of traffic in the Markdown report: an hour at one
/// a minute; longer timelines are summed into wider buckets.
const MARKDOWN_TIMELINE_ROWS: usize = 60;

/// The timeline in time order, consecutive points summed so that at most
/// `max_rows` remain (each row starts at its first point's time).
fn condensed(timeline: &[TimelinePoint], max_rows: usize) -> Vec<TimelinePoint> {
    let mut points = timeline.to_vec();
    points.sort_by_key(|p| p.at);
    let group = points.len().div_ceil(max_rows.max(1)).max(1);
    points
        .chunks(group)
        .map(|chunk| TimelinePoint {
            at: chunk[0].at,
            requests: chunk.iter().map(|p| p.requests).sum(),
            blocked: chunk.iter().map(|p| p.blocked).sum(),
            challenged: chunk.iter().map(|p| p.challenged).sum(),
            limited: chunk.iter().map(|p| p.limited).sum(),
            upstream_errors: chunk.iter().map(|p| p.upstream_errors).sum(),
        })
        .collect()
}

/// The report as Markdown (CommonMark with pipe tables). The timeline chart
/// is in the HTML report only; the Markdown has the same points as a table.
pub fn markdown(input: &ReportInput) -> String {
    let incident = scrubbed(input.incident);
    let s = sections_of(&incident, input);
    let mut out = String::new();
    for block in document(&incident, input, &s) {
        match block {
            Block::Title(t) => {
                out.push_str("# ");
                md_escape(&t, &mut out);
                out.push_str("\n\n");
            }
            Block::Heading(t) => {
                out.push_str("## ");
                md_escape(&t, &mut out);
                out.push_str("\n\n");
            }
            Block::Subheading(t) => {
                out.push_str("### ");
                md_escape(&t, &mut out);
                out.push_str("\n\n");
            }
            Block::Para(line) => {
                md_line(&line, &mut out);
                out.push_str("\n\n");
            }
            Block::List(items) => {
                for item in &items {
                    out.push_str("- ");
                    md_line(item, &mut out);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Table { head, rows } => {
                out.push('|');
                for h in &head {
                    out.push(' ');
                    md_escape(h, &mut out);
                    out.push_str(" |");
                }
                out.push_str("\n|");
                for _ in &head {
                    out.push_str(" --- |");
                }
                out.push('\n');
                for row in &rows {
                    out.push('|');
                    for cell in row {
                        out.push(' ');
                        md_escape(cell, &mut out);
                        out.push_str(" |");
                    }
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Handling => {
                let _ = writeln!(out, "Handling: **TLP:AMBER** ({HANDLING}).\n");
            }
            Block::Chart => {
                if !input.timeline.is_empty() {
                    let points = condensed(input.timeline, MARKDOWN_TIMELINE_ROWS);
                    out.push_str("Traffic over time (the HTML report draws this as a chart):\n\n");
                    out.push_str("| Time (UTC) | Requests | Blocked | Challenged | Limited | Upstream errors |\n");
                    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
                    for p in &points {
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | {} | {} | {} |",
                            human_time(p.at),
                            count(p.requests),
                            count(p.blocked),
                            count(p.challenged),
                            count(p.limited),
                            count(p.upstream_errors)
                        );
                    }
                    out.push('\n');
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTML

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
}

fn html_line(line: &Line, out: &mut String) {
    for inline in &line.0 {
        match inline {
            Inline::Text(s) => html_escape(s, out),
            Inline::Code(s) => {
                out.push_str("<code>");
                html_escape(s, out);
                out.push_str("</code>");
            }
            Inline::Strong(s) => {
                out.push_str("<strong>");
                html_escape(s, out);
                out.push_str("</strong>");
            }
        }
    }
}

const CSS: &str = "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;background:#fff;margin:0}\
main{max-width:60rem;margin:0 auto;padding:1.5rem}\
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}\
h3{font-size:1.05rem;margin-bottom:.3rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td:first-child{white-space:nowrap}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}\
.tlp{display:inline-block;background:#000;color:#ffc000;font-weight:600;padding:.1rem .5rem;border-radius:3px}\
svg{max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#57606a}\
@media print{main{max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}";

/// The report as one standalone HTML page: inline CSS, no scripts, no
/// external assets (a Content-Security-Policy says so too), and the timeline
/// drawn as inline SVG.
pub fn html(input: &ReportInput) -> String {
    let incident = scrubbed(input.incident);
    let s = sections_of(&incident, input);
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    out.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    html_escape(
        &format!(
            "{} {} — incident report",
            incident.reference(),
            incident.title
        ),
        &mut out,
    );
    out.push_str("</title>\n<style>");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    for block in document(&incident, input, &s) {
        match block {
            Block::Title(t) => {
                out.push_str("<h1>");
                html_escape(&t, &mut out);
                out.push_str("</h1>\n");
            }
            Block::Heading(t) => {
                out.push_str("<h2>");
                html_escape(&t, &mut out);
                out.push_str("</h2>\n");
            }
            Block::Subheading(t) => {
                out.push_str("<h3>");
                html_escape(&t, &mut out);
                out.push_str("</h3>\n");
            }
            Block::Para(line) => {
                out.push_str("<p>");
                html_line(&line, &mut out);
                out.push_str("</p>\n");
            }
            Block::Handling => {
                let _ = writeln!(
                    out,
                    "<p>Handling: <span class=\"tlp\">TLP:AMBER</span> ({HANDLING}).</p>"
                );
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in &items {
                    out.push_str("<li>");
                    html_line(item, &mut out);
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                out.push_str("<table>\n<thead><tr>");
                for h in &head {
                    out.push_str("<th>");
                    html_escape(h, &mut out);
                    out.push_str("</th>");
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in &rows {
                    out.push_str("<tr>");
                    for cell in row {
                        out.push_str("<td>");
                        html_escape(cell, &mut out);
                        out.push_str("</td>");
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Chart => chart_svg(&incident, input.timeline, &mut out),
        }
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// `10 s`, `1 min`: the bucket size, from the smallest gap between points.
fn bucket_words(timeline: &[TimelinePoint]) -> Option<String> {
    let gap = timeline
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|&g| g > 0)
        .min()?;
    Some(if gap % 60_000 == 0 {
        format!("{} min", gap / 60_000)
    } else {
        format!("{} s", (gap + 999) / 1000)
    })
}

/// Tick times for a span: multiples of a round step (1 minute to 1 day),
/// at most seven of them; the start alone for a span under a minute.
fn time_ticks(t0: Millis, t1: Millis) -> Vec<Millis> {
    const STEPS_MIN: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
    let span = t1 - t0;
    if span < 60_000 {
        return vec![t0];
    }
    let step = STEPS_MIN
        .iter()
        .map(|m| m * 60_000)
        .find(|&s| span / s <= 6)
        .unwrap_or(1440 * 60_000 * (span / (1440 * 60_000 * 6) + 1));
    let first = t0 + (step - t0.rem_euclid(step)) % step;
    (0..)
        .map(|i| first + i * step)
        .take_while(|&t| t <= t1)
        .collect()
}

/// A round axis maximum at or above `max`, and its tick step: 1, 2 or 5 times
/// a power of ten, four or five ticks.
fn nice_axis(max: u64) -> (u64, u64) {
    let max = max.max(1);
    let raw = max.div_ceil(4);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    let step = [1, 2, 5, 10]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10 * magnitude);
    (step * max.div_ceil(step), step)
}

fn chart_svg(incident: &Incident, timeline: &[TimelinePoint], out: &mut String) {
    if timeline.is_empty() {
        out.push_str("<p>No traffic samples were recorded for this incident's time span, so there is no chart.</p>\n");
        return;
    }
    const W: f64 = 760.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 34.0;
    const BOTTOM: f64 = 48.0;
    let mut points: Vec<&TimelinePoint> = timeline.iter().collect();
    points.sort_by_key(|p| p.at);
    let t0 = points[0].at;
    let t1 = points[points.len() - 1].at.max(t0 + 1);
    let series_max = points
        .iter()
        .map(|p| {
            p.requests
                .max(p.blocked)
                .max(p.challenged + p.limited)
                .max(p.upstream_errors)
        })
        .max()
        .unwrap_or(0);
    let (y_max, y_step) = nice_axis(series_max);
    let x = |at: Millis| LEFT + (at - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - RIGHT);
    let y = |v: u64| TOP + (1.0 - v as f64 / y_max as f64) * (H - TOP - BOTTOM);
    let bucket = bucket_words(timeline).unwrap_or_else(|| "sample".into());

    let _ = write!(
        out,
        "<figure>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-labelledby=\"chart-title\">\n<title id=\"chart-title\">"
    );
    html_escape(
        &format!(
            "Requests, blocked and challenged or limited per {bucket} for {}, times in UTC",
            incident.reference()
        ),
        out,
    );
    out.push_str("</title>\n");
    // Grid and y axis.
    let mut v = 0;
    while v <= y_max {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eaeef2\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            count(v)
        );
        v += y_step;
    }
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">requests per {bucket}</text>",
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0
    );
    // X axis: ticks on round UTC times, with the date when the span crosses days.
    let multi_day = date(t0) != date(t1);
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\"/>",
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for at in time_ticks(t0, t1) {
        let c = civil(at);
        let label = if multi_day {
            format!("{:02}-{:02} {:02}:{:02}", c.month, c.day, c.hour, c.minute)
        } else {
            format!("{:02}:{:02}", c.hour, c.minute)
        };
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(at),
            x(at),
            H - BOTTOM,
            H - BOTTOM + 4.0,
            x(at),
            H - BOTTOM + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (UTC){}</text>",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        if multi_day {
            String::new()
        } else {
            format!(", {}", date(t0))
        }
    );
    // Series.
    let show_upstream = points.iter().any(|p| p.upstream_errors > 0);
    type Series = (&'static str, &'static str, fn(&TimelinePoint) -> u64);
    let mut series: Vec<Series> = vec![
        ("requests", "#0969da", |p| p.requests),
        ("blocked", "#cf222e", |p| p.blocked),
        ("challenged or limited", "#bf8700", |p| {
            p.challenged + p.limited
        }),
    ];
    if show_upstream {
        series.push(("upstream errors", "#8250df", |p| p.upstream_errors));
    }
    let mut legend_x = LEFT;
    for (name, colour, value) in &series {
        out.push_str("<polyline fill=\"none\" stroke=\"");
        out.push_str(colour);
        out.push_str("\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"");
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{:.1},{:.1}", x(p.at), y(value(p)));
        }
        out.push_str("\"/>\n");
        let _ = writeln!(
            out,
            "<rect x=\"{legend_x:.1}\" y=\"10\" width=\"12\" height=\"4\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"16\">{name}</text>",
            legend_x + 16.0
        );
        legend_x += 28.0 + 6.0 * name.len() as f64;
    }
    // The peak: the incident's peak time when it falls in the chart, else the
    // busiest point.
    let busiest = points
        .iter()
        .max_by_key(|p| p.requests)
        .map(|p| p.at)
        .unwrap_or(t0);
    let peak_at = if incident.peak_rps > 0.0 && (t0..=t1).contains(&incident.peak_at) {
        incident.peak_at
    } else {
        busiest
    };
    let peak_point = points
        .iter()
        .min_by_key(|p| (p.at - peak_at).abs())
        .map_or(0, |p| p.requests);
    let label = if incident.peak_rps > 0.0 {
        format!(
            "peak {} req/s, {}",
            rate(incident.peak_rps),
            human_time(peak_at)
        )
    } else {
        format!("busiest, {}", human_time(peak_at))
    };
    let px = x(peak_at);
    let anchor = if px > W * 0.7 { "end" } else { "start" };
    let dx = if anchor == "end" { -4.0 } else { 4.0 };
    let _ = writeln!(
        out,
        "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#1f2328\" stroke-dasharray=\"4 3\"/><circle cx=\"{px:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f2328\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" style=\"fill:#1f2328\">{}</text>",
        H - BOTTOM,
        y(peak_point),
        px + dx,
        TOP + 12.0,
        label
    );
    out.push_str("</svg>\n<figcaption>");
    html_escape(
        &format!("Traffic per {bucket} in UTC; the dashed line marks the peak."),
        out,
    );
    out.push_str("</figcaption>\n</figure>\n");
}

// ---------------------------------------------------------------------------
// JSON

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
    }

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0), (1, 1));
        let (max, step) = nice_axis(950);
        assert!(
            max >= 950 && max % step == 0 && max / step <= 5,
            "{max} {step}"
        );
        let (max, step) = nice_axis(7);
        assert!(max >= 7 && max / step <= 5, "{max} {step}");
    }

    #[test]
    fn time_ticks_fall_on_round_minutes() {
        let t0 = 1_795_910_400_000 + (9 * 60 + 58) * 60_000; // 09:58
        let ticks = time_ticks(t0, t0 + 42 * 60_000); // to 10:40
        let labels: Vec<String> = ticks
            .iter()
            .map(|&t| human_time(t)[11..16].to_string())
            .collect();
        assert_eq!(labels, ["10:00", "10:10", "10:20", "10:30", "10:40"]);
        assert_eq!(time_ticks(t0, t0 + 5_000), vec![t0]);
        assert!(time_ticks(t0, t0 + 30 * 86_400_000).len() <= 7);
    }

    #[test]
    fn long_timelines_are_summed_for_markdown() {
        let points: Vec<TimelinePoint> = (0..150)
            .map(|i| TimelinePoint {
                at: i * 1000,
                requests: 1,
                blocked: 0,
                challenged: 0,
                limited: 0,
                upstream_errors: 0,
            })
            .collect();
        let rows = condensed(&points, 60);
        assert!(rows.len() <= 60);
        assert_eq!(rows.iter().map(|p| p.requests).sum::<u64>(), 150);
        assert_eq!(condensed(&points[..10], 60).len(), 10);
    }

    #[test]
    fn code_spans_split_on_backquotes() {
        let line = with_code("run `a b` now");
        assert_eq!(line.0.len(), 3);
        assert!(matches!(&line.0[1], Inline::Code(c) if c == "a b"));
    }
}

#[cfg(test)]
mod parse_time_tests {
    #[test]
    fn utc_times_parse() {
        assert_eq!(super::parse_time("1970-01-01T00:00Z"), Some(0));
        assert_eq!(
            super::parse_time("2026-11-29T10:15Z"),
            Some(1_795_947_300_000)
        );
        assert_eq!(
            super::parse_time("2024-02-29 12:00:30"),
            Some(1_709_208_030_000)
        );
        assert_eq!(super::parse_time("2026-13-01T00:00Z"), None);
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
