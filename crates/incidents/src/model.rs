//! The event and incident model shared by the store, the grouping engine and
//! the reports.
//!
//! Times are Unix milliseconds (UTC) everywhere: the store indexes them as
//! integers and the reports format them. Nothing here holds a raw request,
//! body or personal value: leak findings carry masked samples and counts only,
//! and the reports publish address prefixes, never whole addresses.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Unix time in milliseconds, UTC.
pub type Millis = i64;

/// One thing a layer saw or did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub at: Millis,
    /// The site's name from the configuration (`""` when no site matched).
    pub site: String,
    /// The client's address, when the event concerns one client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    /// The route's path prefix (never the full path, which may carry personal data).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub route: String,
    /// What happened.
    pub kind: EventKind,
}

/// What happened, with the details each kind needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A summary of one site's traffic over a short window (one second in the
    /// gateway). Allowed requests are not recorded one by one; these samples
    /// give the totals and the peak rate.
    Traffic {
        /// The window's length.
        window_ms: u32,
        /// Requests that arrived.
        requests: u32,
        /// Requests denied by any layer (WAF, ban, leak guard, limits).
        blocked: u32,
        /// Requests answered with a challenge page.
        challenged: u32,
        /// Requests answered 429 or 503 by a limit or the waiting room.
        limited: u32,
        /// Upstream failures (502, 504, connect errors).
        upstream_errors: u32,
    },
    /// The WAF denied a request.
    WafBlock {
        /// The rule ids that matched (the CRS's, or the site's own).
        rules: Vec<u32>,
        /// The inbound anomaly score.
        score: u32,
        /// Attack types from the matched rules' tags (`sqli`, `xss`, `rce`, ...).
        attacks: Vec<String>,
        /// The status the client received.
        status: u16,
        /// What the request was and what in it matched, for the console's
        /// triage; absent in events stored before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<Box<WafDetail>>,
    },
    /// The WAF matched rules but let the request through (detection only, or
    /// below the threshold).
    WafMatch {
        /// The rule ids that matched.
        rules: Vec<u32>,
        /// The inbound anomaly score.
        score: u32,
        /// Attack types from the matched rules' tags.
        attacks: Vec<String>,
        /// As for `WafBlock`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<Box<WafDetail>>,
    },
    /// A client without clearance got the proof-of-work challenge.
    Challenged,
    /// A client got a clearance after solving the challenge (or the no-script wait).
    Cleared,
    /// A rate limit answered 429.
    RateLimited {
        /// Which limit: `client`, `prefix`, `route_client`, `route_prefix`,
        /// `route_total`, or `wait_prefix` (the no-script clearances a prefix
        /// may redeem).
        scope: String,
    },
    /// The route's concurrency cap sent the client to the waiting room (or 503).
    Queued,
    /// A client was banned.
    Banned {
        /// When the ban ends.
        until: Millis,
        /// The escalation level (1 for a first ban).
        level: u32,
        /// Why: `rate_limits`, `waf` or `manual`.
        reason: String,
    },
    /// A ban was lifted by an operator.
    Unbanned,
    /// A site entered or left under-attack mode.
    ModeChanged {
        /// The new mode.
        under_attack: bool,
        /// Why, in words (for example `surge: requests/s 950 > 400`).
        reason: String,
    },
    /// The leak guard found personal data in a response.
    Leak {
        /// What it did: `alert` (the data went out), `redact` or `block`.
        action: String,
        /// The request's reference id (shown on the error page and in the access log).
        reference: String,
        /// What was found, per kind; samples are masked.
        entities: Vec<EntityCount>,
    },
    /// A planted canary record was seen leaving (or about to leave).
    CanaryTrip {
        /// What the guard did: `alert`, `redact` or `block`.
        action: String,
        /// The request's reference id.
        reference: String,
        /// How many canary values were in the response.
        count: u32,
    },
    /// The upstream failed a request.
    UpstreamFailure {
        /// The status the client received (502, 503, 504).
        status: u16,
        /// Why, without internals (`connect refused`, `timeout`, `no healthy peer`).
        reason: String,
    },
    /// A login failed on a configured login route (reserved for the login guard).
    LoginFailure {
        /// A keyed hash of the account name, never the name itself.
        account: String,
    },
    /// An alert could not be delivered after its retries.
    AlertFailed {
        /// The webhook's name from the configuration (not its URL, which may hold a secret).
        target: String,
        /// Why.
        error: String,
    },
    /// An operator changed something from the console or the admin API
    /// (an exclusion added, for now): who, what and why, for the record.
    OperatorAction {
        /// What was done (`exclusion_added`).
        action: String,
        /// Who did it: `console` or `api`, or the name they gave.
        by: String,
        /// What exactly, in words.
        detail: String,
        /// Why, in their words.
        reason: String,
    },
    /// Events were dropped because the channel was full.
    EventsDropped {
        /// How many since the last such event.
        count: u64,
    },
}

impl EventKind {
    /// The short name stored in the `kind` column and shown in listings.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Traffic { .. } => "traffic",
            EventKind::WafBlock { .. } => "waf_block",
            EventKind::WafMatch { .. } => "waf_match",
            EventKind::Challenged => "challenged",
            EventKind::Cleared => "cleared",
            EventKind::RateLimited { .. } => "rate_limited",
            EventKind::Queued => "queued",
            EventKind::Banned { .. } => "banned",
            EventKind::Unbanned => "unbanned",
            EventKind::ModeChanged { .. } => "mode_changed",
            EventKind::Leak { .. } => "leak",
            EventKind::CanaryTrip { .. } => "canary_trip",
            EventKind::UpstreamFailure { .. } => "upstream_failure",
            EventKind::LoginFailure { .. } => "login_failure",
            EventKind::AlertFailed { .. } => "alert_failed",
            EventKind::OperatorAction { .. } => "operator_action",
            EventKind::EventsDropped { .. } => "events_dropped",
        }
    }
}

/// The request a WAF event is about and what in it matched: enough to
/// propose the narrowest exclusion that would have let it pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WafDetail {
    /// The request method.
    pub method: String,
    /// The normalised path (no query), the form exclusions match against.
    pub path: String,
    /// Each logged rule that matched, with the variable it matched in.
    pub matches: Vec<RuleMatch>,
}

/// One rule's match in a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatch {
    /// The rule id.
    pub rule: u32,
    /// What matched, as SecLang names it (`ARGS:q`, `REQUEST_HEADERS:User-Agent`).
    pub target: String,
    /// The rule's message.
    pub msg: String,
    /// The rule's log data, masked as the WAF's logs mask it.
    pub data: String,
    /// The rule's severity, 0 (emergency) to 7 (debug), when it has one:
    /// CRS adds 5, 4, 3 or 2 to the anomaly score for 2 (critical) to 5
    /// (notice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
}

/// How many values of one kind of personal data a response carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityCount {
    /// The leak guard's name for the kind (`donor_list`, `card`, `ni_number`,
    /// `email`, `record`, `canary`, ...).
    pub kind: String,
    /// Matches.
    pub count: u32,
    /// Distinct values among them (approximately: records).
    pub distinct: u32,
    /// A masked example (`j***@e***.org`), never the full value. Reports do
    /// not print even this; it is kept in the store for the operator.
    pub sample: String,
}

/// The kinds of incident the grouping engine recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// An HTTP flood: limits, challenges, under-attack mode.
    Flood,
    /// An injection campaign: repeated WAF blocks from related clients.
    Injection,
    /// A credential-stuffing run: many failed logins.
    CredentialStuffing,
    /// Personal data in responses.
    DataLeak,
    /// A planted canary record left (or nearly left).
    CanaryTrip,
    /// The upstream kept failing.
    Availability,
}

/// The short name used in listings and exports (`credential_stuffing`).
impl std::fmt::Display for IncidentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_serde_name(self, f)
    }
}

/// Whether an incident is still going on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Events are still arriving (or the quiet period has not passed).
    Open,
    /// Quiet for the configured period.
    Closed,
}

/// How bad an incident is; it only rises while the incident is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Attacks that were fully absorbed.
    Low,
    /// Sustained attacks, or personal data stopped at the gateway.
    Medium,
    /// The site degraded, or personal data left.
    High,
    /// A canary left, or special-category data left.
    Critical,
}

/// Writes a unit variant by its serde name (`open`, `high`, ...), so that
/// listings and report text use the names the JSON exports use.
fn write_serde_name<T: Serialize>(value: &T, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => f.write_str(&name),
        _ => Err(std::fmt::Error),
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_serde_name(self, f)
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_serde_name(self, f)
    }
}

impl std::fmt::Display for DataLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_serde_name(self, f)
    }
}

/// Whether personal data left the organisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataLeft {
    /// No personal data was involved.
    No,
    /// Personal data was in responses but the gateway blocked or redacted it.
    Prevented,
    /// Personal data went out (the route was in alert mode).
    Yes,
    /// Events were dropped, or the guard could not scan a response whole.
    Unknown,
}

/// A count of something keyed by a name (a rule id, a prefix, an attack type).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// What is counted.
    pub key: String,
    /// How many.
    pub count: u64,
}

/// Something the gateway or an operator did about the incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTaken {
    /// When.
    pub at: Millis,
    /// What, in a sentence (`site demo switched to under-attack mode: surge ...`,
    /// `client prefix 203.0.113.0/24 banned for 10 minutes (level 2)`).
    pub what: String,
}

/// An entry in the decision log: a human decision or notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// When.
    pub at: Millis,
    /// Who decided (an operator's name, or `rampart` for automatic entries).
    pub by: String,
    /// The decision and its reason.
    pub text: String,
    /// When set, a party that was told about the incident (`NCSC`, `ICO`,
    /// `police`, `hosting provider`); reports list these under "who else has
    /// been told".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub told: Option<String>,
}

/// Personal data involved in an incident: counts and categories, never values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataExposure {
    /// Whether it left.
    pub left: DataLeft,
    /// Matches per entity kind, summed over the incident.
    pub entities: Vec<Tally>,
    /// Approximate number of records (distinct values) involved.
    pub records: u64,
    /// Approximate number of people those records concern.
    pub people: u64,
    /// The UK GDPR categories the entity kinds map to (see [`ico_categories`]).
    pub categories: Vec<String>,
    /// Whether any is special-category data (Article 9: donor data reveals
    /// political opinions).
    pub special_category: bool,
}

/// One incident: a group of related events, with everything a report needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// Store id (shown as `INC-<id>`).
    pub id: i64,
    /// A one-line title (`HTTP flood against demo`).
    pub title: String,
    /// The site.
    pub site: String,
    /// The kinds of activity grouped here (the first is the one that opened it).
    pub kinds: Vec<IncidentKind>,
    /// Open or closed.
    pub status: IncidentStatus,
    /// How bad.
    pub severity: Severity,
    /// The first event's time.
    pub first_event: Millis,
    /// The last event's time.
    pub last_event: Millis,
    /// When the organisation became aware: the moment rampart opened the
    /// incident (an operator may set it earlier). The ICO's 72-hour clock
    /// starts here.
    pub aware_at: Millis,
    /// `aware_at` plus 72 hours.
    pub deadline: Millis,
    /// When it closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Millis>,
    /// The highest request rate seen in one traffic window, per second.
    pub peak_rps: f64,
    /// When that peak was.
    pub peak_at: Millis,
    /// Requests seen at the site while the incident was open.
    pub requests: u64,
    /// Requests denied.
    pub blocked: u64,
    /// Requests challenged.
    pub challenged: u64,
    /// Requests limited (429 or waiting room).
    pub limited: u64,
    /// Events grouped into the incident.
    pub events: u64,
    /// Distinct client addresses seen in its events.
    pub distinct_sources: u64,
    /// The busiest source prefixes (/24 for IPv4, /64 for IPv6), most first.
    pub top_prefixes: Vec<Tally>,
    /// WAF rules hit, most first.
    pub rules: Vec<Tally>,
    /// Attack types, most first.
    pub attacks: Vec<Tally>,
    /// What the gateway did, in time order.
    pub actions: Vec<ActionTaken>,
    /// Personal data involved, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataExposure>,
    /// The decision log, in time order.
    pub decisions: Vec<Decision>,
    /// Events of this incident's kinds that were dropped before the store saw
    /// them (so totals are lower bounds).
    pub dropped_events: u64,
}

impl Incident {
    /// The identifier shown to people: `INC-42`.
    pub fn reference(&self) -> String {
        format!("INC-{}", self.id)
    }
}

/// The UK GDPR categories a leak-guard entity kind maps to, and whether the
/// kind is special-category data. Kinds the table does not know map to
/// "personal data (unclassified)", so nothing is silently left out.
pub fn ico_categories(entity_kind: &str) -> (&'static [&'static str], bool) {
    match entity_kind {
        // A donor list pairs names with donations to a political party, which
        // reveals political opinions: Article 9 special-category data.
        "donor_list" => (
            &[
                "identity (names)",
                "financial (donation amounts)",
                "political opinions (special category)",
            ],
            true,
        ),
        "card" => (&["financial (payment card numbers)"], false),
        "iban" | "bank_account" => (&["financial (bank account details)"], false),
        "ni_number" => (
            &["official identifiers (National Insurance numbers)"],
            false,
        ),
        "nhs_number" => (
            &[
                "official identifiers (NHS numbers)",
                "health (special category)",
            ],
            true,
        ),
        "email" | "phone" | "postcode" => (&["contact details"], false),
        "date_of_birth" => (&["identity (dates of birth)"], false),
        "record" => (
            &["records from the organisation's own fingerprinted data"],
            false,
        ),
        "canary" => (&["planted canary records (no real person)"], false),
        _ => (&["personal data (unclassified)"], false),
    }
}

/// The prefix a client address is grouped by: /24 for IPv4, /64 for IPv6.
pub fn source_prefix(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// 72 hours in milliseconds: the UK GDPR Article 33(1) notification window.
pub const ICO_WINDOW_MS: Millis = 72 * 3600 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json() {
        let event = Event {
            at: 1_700_000_000_000,
            site: "demo".into(),
            client: Some("203.0.113.9".parse().unwrap()),
            route: "/search".into(),
            kind: EventKind::WafBlock {
                rules: vec![942100],
                score: 5,
                attacks: vec!["sqli".into()],
                status: 403,
                detail: Some(Box::new(WafDetail {
                    method: "GET".into(),
                    path: "/search".into(),
                    matches: vec![RuleMatch {
                        rule: 942100,
                        target: "ARGS:q".into(),
                        msg: "SQL Injection Attack Detected via libinjection".into(),
                        data: "s&sos".into(),
                        severity: Some(2),
                    }],
                })),
            },
        };
        let text = serde_json::to_string(&event).unwrap();
        assert!(text.contains("\"type\":\"waf_block\""), "{text}");
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn prefixes_hide_the_host_part() {
        assert_eq!(
            source_prefix("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            source_prefix("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn donor_lists_are_special_category() {
        let (categories, special) = ico_categories("donor_list");
        assert!(special);
        assert!(categories.iter().any(|c| c.contains("political")));
        assert!(!ico_categories("email").1);
        assert_eq!(
            ico_categories("something_new").0,
            &["personal data (unclassified)"]
        );
    }
}
