//! The derived sections: everything a report says, worked out once.

use super::{Organisation, ReportInput};
use crate::attacks::{attack_pattern, AttackPatternInfo};
use crate::model::{
    DataLeft, Incident, IncidentKind, IncidentStatus, Millis, Severity, Tally, ICO_WINDOW_MS,
};
use crate::scrub::scrubbed;
use crate::time::{hours_minutes, human_time, rfc3339};
use crate::words::{count, join_words, rate};
use serde::Serialize;

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
pub(super) fn note_command(incident: &Incident, party: &str) -> String {
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
        incident.severity,
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
            data.left
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
