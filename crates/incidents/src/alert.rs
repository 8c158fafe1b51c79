//! Webhook payloads for an incident that opened, escalated or closed.
//!
//! Two shapes: [`slack_payload`] for Slack and the many chat tools that take
//! Slack's incoming-webhook JSON (`text` plus `blocks`), and
//! [`generic_payload`], a JSON object with stable field names for anything
//! else (a SIEM, an on-call tool, a script). This module builds the text
//! only; the gateway posts it, with retries and backoff.
//!
//! Like the reports, payloads carry no personal data: counts, categories and
//! source prefixes, and free text (the title, the reason) goes through
//! [`scrub`].

use crate::model::{DataLeft, Incident};
use crate::scrub::scrub;
use crate::time::{human_time, rfc3339};
use crate::words::{count, rate};
use serde_json::{json, Value};

/// How many source prefixes an alert lists: enough to recognise a botnet's
/// shape at a glance, few enough to read on a phone.
const ALERT_PREFIXES: usize = 5;

/// The change as an event name part: lower case letters, digits and `_`
/// only (`opened`, `escalated`, `closed`), so a receiver can route on it.
fn change_word(change: &str) -> String {
    let word: String = change
        .trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if word.is_empty() {
        "changed".into()
    } else {
        word
    }
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped, and nothing else.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming-webhook payload: a one-line `text` (what notifications
/// show) and `blocks` with the title, site, severity, kinds, reference,
/// peak, data state and the top source prefixes with their counts.
///
/// `change` is what happened (`opened`, `escalated`, `closed`); `why` says
/// why in words (`severity rose to high: the upstream is failing`).
pub fn slack_payload(incident: &Incident, change: &str, why: &str) -> String {
    let change = change_word(change);
    let title = slack_escape(&scrub(&incident.title));
    let site = slack_escape(&scrub(&incident.site));
    let why = slack_escape(&scrub(why));
    let severity = incident.severity;
    let kinds: Vec<String> = incident.kinds.iter().map(ToString::to_string).collect();
    let text = format!(
        "[rampart] {} {change}: {title} (severity {severity}, site {site})",
        incident.reference()
    );

    let mut fields = vec![
        json!({ "type": "mrkdwn", "text": format!("*Reference*\n{}", incident.reference()) }),
        json!({ "type": "mrkdwn", "text": format!("*Site*\n{site}") }),
        json!({ "type": "mrkdwn", "text": format!("*Severity*\n{severity}") }),
        json!({ "type": "mrkdwn", "text": format!("*Status*\n{}", incident.status) }),
        json!({ "type": "mrkdwn", "text": format!("*Kinds*\n{}", kinds.join(", ")) }),
    ];
    if incident.peak_rps > 0.0 {
        fields.push(json!({
            "type": "mrkdwn",
            "text": format!("*Peak*\n{} req/s at {}", rate(incident.peak_rps), human_time(incident.peak_at)),
        }));
    }
    if let Some(data) = incident.data.as_ref().filter(|d| d.left != DataLeft::No) {
        fields.push(json!({
            "type": "mrkdwn",
            "text": format!("*Personal data left*\n{} (about {} records)", data.left, count(data.records)),
        }));
        fields.push(json!({ "type": "mrkdwn", "text": format!("*ICO deadline*\n{}", human_time(incident.deadline)) }));
    }
    // Slack allows at most ten fields in a section.
    fields.truncate(10);

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": truncate(&format!("{} {change}: {}", incident.reference(), scrub(&incident.title)), 150) },
        }),
        json!({ "type": "section", "fields": fields }),
    ];
    if !why.is_empty() {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("*Why:* {why}") } }));
    }
    let mut volumes = format!(
        "{} requests, {} blocked, {} challenged, {} limited; {} distinct sources",
        count(incident.requests),
        count(incident.blocked),
        count(incident.challenged),
        count(incident.limited),
        count(incident.distinct_sources)
    );
    if incident.dropped_events > 0 {
        volumes.push_str(" (lower bounds: events were dropped)");
    }
    blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": volumes } }));
    if !incident.top_prefixes.is_empty() {
        let prefixes: Vec<String> = incident
            .top_prefixes
            .iter()
            .take(ALERT_PREFIXES)
            .map(|t| format!("`{}` {}", slack_escape(&scrub(&t.key)), count(t.count)))
            .collect();
        blocks.push(json!({
            "type": "context",
            "elements": [ { "type": "mrkdwn", "text": format!("Top source prefixes: {}", prefixes.join(" · ")) } ],
        }));
    }
    json!({ "text": text, "blocks": blocks }).to_string()
}

/// Slack's header text is capped at 150 characters.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A generic webhook payload: one JSON object with stable field names.
///
/// ```json
/// { "version": 1, "event": "incident.opened", "reference": "INC-42", "id": 42, "title": "...",
///   "site": "demo", "severity": "high", "status": "open", "kinds": ["flood"],
///   "why": "...", "first_event": "2026-11-29T09:58:00.000Z", "last_event": "...",
///   "aware_at": "...", "deadline": "...", "closed_at": null,
///   "peak": { "rps": 950.0, "at": "..." },
///   "counts": { "requests": 0, "blocked": 0, "challenged": 0, "limited": 0,
///               "events": 0, "distinct_sources": 0, "dropped_events": 0 },
///   "totals_are_lower_bounds": false,
///   "top_prefixes": [ { "prefix": "203.0.113.0/24", "count": 12 } ],
///   "data": { "left": "no" } }
/// ```
///
/// `data` always has `left`; when personal data was involved it also has
/// `records`, `people`, `categories` and `special_category`.
pub fn generic_payload(incident: &Incident, change: &str, why: &str) -> String {
    let data = match &incident.data {
        Some(data) if data.left != DataLeft::No => json!({
            "left": data.left,
            "records": data.records,
            "people": data.people,
            "categories": data.categories.iter().map(|c| scrub(c)).collect::<Vec<_>>(),
            "special_category": data.special_category,
        }),
        _ => json!({ "left": "no" }),
    };
    let payload: Value = json!({
        "version": 1,
        "event": format!("incident.{}", change_word(change)),
        "reference": incident.reference(),
        "id": incident.id,
        "title": scrub(&incident.title),
        "site": scrub(&incident.site),
        "severity": incident.severity,
        "status": incident.status,
        "kinds": incident.kinds,
        "why": scrub(why),
        "first_event": rfc3339(incident.first_event),
        "last_event": rfc3339(incident.last_event),
        "aware_at": rfc3339(incident.aware_at),
        "deadline": rfc3339(incident.deadline),
        "closed_at": incident.closed_at.map(rfc3339),
        "peak": { "rps": incident.peak_rps, "at": rfc3339(incident.peak_at) },
        "counts": {
            "requests": incident.requests,
            "blocked": incident.blocked,
            "challenged": incident.challenged,
            "limited": incident.limited,
            "events": incident.events,
            "distinct_sources": incident.distinct_sources,
            "dropped_events": incident.dropped_events,
        },
        "totals_are_lower_bounds": incident.dropped_events > 0,
        "top_prefixes": incident
            .top_prefixes
            .iter()
            .take(ALERT_PREFIXES)
            .map(|t| json!({ "prefix": scrub(&t.key), "count": t.count }))
            .collect::<Vec<_>>(),
        "data": data,
    });
    payload.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_words_are_routable() {
        assert_eq!(change_word("Opened"), "opened");
        assert_eq!(change_word(" escalated!"), "escalated");
        assert_eq!(change_word(""), "changed");
    }

    #[test]
    fn long_headers_are_cut() {
        let cut = truncate(&"x".repeat(200), 150);
        assert_eq!(cut.chars().count(), 150);
        assert!(cut.ends_with('…'));
    }
}
