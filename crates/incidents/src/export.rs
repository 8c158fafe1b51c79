//! Machine exports of one incident, for sharing with the NCSC, a sector's
//! information-sharing group or a threat-intelligence platform: a STIX 2.1
//! bundle and a MISP event, both marked TLP:AMBER.
//!
//! Exports carry what the reports carry and no more: address prefixes, counts,
//! attack types, rule ids and the scrubbed free text. Their ids are derived
//! from the organisation's name, the incident id and each object's role, so
//! exporting the same incident twice gives the same ids (a receiver sees a
//! new version of the same objects, not new objects), and two organisations'
//! `INC-1` never collide.
//!
//! [`render`] prints any [`Format`], human or machine.

pub use crate::attacks::{attack_pattern, AttackPatternInfo};
use crate::model::{DataLeft, Incident, IncidentKind, IncidentStatus, Millis, Severity};
use crate::report::{self, ReportInput};
use crate::time::{date, rfc3339};
use crate::words::{self, rate};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use uuid::{Builder, Uuid};

// ---------------------------------------------------------------------------
// Formats

/// A report or export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// The human report as Markdown.
    Markdown,
    /// The human report as a standalone HTML page.
    Html,
    /// The report's sections as JSON.
    Json,
    /// A STIX 2.1 bundle.
    Stix,
    /// A MISP event.
    Misp,
}

impl Format {
    /// The names [`Format::from_str`] accepts, for help texts.
    pub const NAMES: &'static str = "md (or markdown), html, json, stix, misp";

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Json => "json",
            Format::Stix => "stix.json",
            Format::Misp => "misp.json",
        }
    }
}

/// A format name [`Format::from_str`] does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat {
    /// What was given.
    pub given: String,
}

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown report format `{}`: use one of {}",
            self.given,
            Format::NAMES
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Ok(Format::Markdown),
            "html" => Ok(Format::Html),
            "json" => Ok(Format::Json),
            "stix" => Ok(Format::Stix),
            "misp" => Ok(Format::Misp),
            _ => Err(UnknownFormat {
                given: s.to_string(),
            }),
        }
    }
}

/// The incident in the given format, ready to write to a file.
pub fn render(input: &ReportInput, format: Format) -> String {
    match format {
        Format::Markdown => report::markdown(input),
        Format::Html => report::html(input),
        Format::Json => report::json(input),
        Format::Stix => pretty(&stix_bundle(input)),
        Format::Misp => pretty(&misp_event(input)),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value serialises");
    text.push('\n');
    text
}

// ---------------------------------------------------------------------------
// Deterministic ids

/// A UUIDv4-shaped id from SHA-256 of its parts: reproducible, and spread
/// like a random one. The parts are length-prefixed so that `["x1", ""]`
/// and `["x", "1"]` differ; `uuid` sets the version and variant bits.
fn uuid4_from(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// The namespace STIX 2.1 gives for cyber-observable ids (section 2.9).
const STIX_SCO_NAMESPACE: [u8; 16] = [
    0x00, 0xab, 0xed, 0xb4, 0xaa, 0x42, 0x46, 0x6c, 0x9c, 0x01, 0xfe, 0xd2, 0x33, 0x15, 0xa9, 0xb7,
];

/// A UUIDv5 (RFC 4122: SHA-1 of namespace and name). STIX wants these for
/// cyber observables, named by the canonical JSON of their id-contributing
/// properties, so that everyone's `ipv4-addr` for a value has the same id.
pub fn uuid5(namespace: &[u8; 16], name: &str) -> String {
    Uuid::new_v5(&Uuid::from_bytes(*namespace), name.as_bytes()).to_string()
}

// ---------------------------------------------------------------------------
// STIX 2.1

/// The TLP:AMBER marking definition's fixed id (STIX 2.1, section 7.2.1.4).
pub const TLP_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";

/// The Incident Core extension's id (OASIS cti-stix-common-objects).
pub const INCIDENT_CORE_EXTENSION: &str =
    "extension-definition--ef765651-680c-498d-9894-99799f2fa126";

/// The official TLP:AMBER object, exactly as the specification gives it.
fn tlp_amber() -> Value {
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP_AMBER,
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": "TLP:AMBER",
        "definition": { "tlp": "amber" }
    })
}

/// The `created` of the organisation's identity: fixed, because the identity
/// keeps its id from one incident's export to the next (and an export made
/// before this date would still have `modified` at or after it: rampart did
/// not exist earlier).
const IDENTITY_CREATED: Millis = 1_735_689_600_000; // 2025-01-01T00:00:00.000Z

/// STIX's upper bound for `number_observed` and `count`.
const STIX_MAX_COUNT: u64 = 999_999_999;

/// How many source prefixes get observed-data, indicators and sightings: the
/// incident keeps its busiest ones, most first; beyond ten they are noise to
/// a receiver.
const STIX_MAX_PREFIXES: usize = 10;

/// A source prefix that parses as `address/length`, and whether it is IPv6.
fn parse_prefix(prefix: &str) -> Option<bool> {
    let (addr, len) = prefix.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    (len <= max).then_some(addr.is_ipv6())
}

struct Stix<'a> {
    organisation: &'a str,
    incident_id: String,
    identity: String,
    created: String,
    modified: String,
}

impl Stix<'_> {
    fn id(&self, kind: &str, role: &str) -> String {
        format!(
            "{kind}--{}",
            uuid4_from(&[
                "rampart stix",
                self.organisation,
                &self.incident_id,
                kind,
                role
            ])
        )
    }

    /// The common properties of an SDO or SRO this export creates.
    fn object(&self, kind: &str, id: &str) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("type".into(), json!(kind));
        object.insert("spec_version".into(), json!("2.1"));
        object.insert("id".into(), json!(id));
        object.insert("created".into(), json!(self.created));
        object.insert("modified".into(), json!(self.modified));
        object.insert("created_by_ref".into(), json!(self.identity));
        object.insert("object_marking_refs".into(), json!([TLP_AMBER]));
        object
    }

    fn relationship(
        &self,
        kind: &str,
        source: &str,
        target: &str,
        description: Option<String>,
    ) -> Value {
        let id = self.id("relationship", &format!("{source} {kind} {target}"));
        let mut object = self.object("relationship", &id);
        object.insert("relationship_type".into(), json!(kind));
        object.insert("source_ref".into(), json!(source));
        object.insert("target_ref".into(), json!(target));
        if let Some(description) = description {
            object.insert("description".into(), json!(description));
        }
        Value::Object(object)
    }
}

/// The STIX industry-sector-ov values, for the organisation's sector when it
/// names one of them.
const INDUSTRY_SECTORS: &[&str] = &[
    "agriculture",
    "aerospace",
    "automotive",
    "chemical",
    "commercial",
    "communications",
    "construction",
    "defense",
    "education",
    "energy",
    "entertainment",
    "financial-services",
    "government",
    "emergency-services",
    "government-local",
    "government-national",
    "government-public-services",
    "government-regional",
    "healthcare",
    "hospitality-leisure",
    "infrastructure",
    "dams",
    "nuclear",
    "water",
    "insurance",
    "manufacturing",
    "mining",
    "non-profit",
    "pharmaceuticals",
    "retail",
    "technology",
    "telecommunications",
    "transportation",
    "utilities",
];

fn severity_criticality(severity: Severity) -> u32 {
    // Incident Core's Appendix B, "5 qualitative" scale.
    match severity {
        Severity::Low => 15,
        Severity::Medium => 40,
        Severity::High => 70,
        Severity::Critical => 95,
    }
}

fn is_attack(kind: IncidentKind) -> bool {
    matches!(
        kind,
        IncidentKind::Flood | IncidentKind::Injection | IncidentKind::CredentialStuffing
    )
}

/// Incident Core's event-type-ov values for the incident.
fn incident_types(incident: &Incident, degraded: bool) -> Vec<&'static str> {
    let left = incident.data.as_ref().map(|d| d.left);
    let mut types = Vec::new();
    for &kind in &incident.kinds {
        match kind {
            IncidentKind::Flood | IncidentKind::Availability => types.push(if degraded {
                "denial-of-service"
            } else {
                "blocked"
            }),
            IncidentKind::Injection => {
                for attack in &incident.attacks {
                    types.push(match attack_pattern(&attack.key).capec.map(|c| c.0) {
                        Some("CAPEC-66") => "sql-injection-attempt",
                        Some("CAPEC-63") => "xss-attempt",
                        Some("CAPEC-126" | "CAPEC-193") => "file-inclusion-attempt",
                        _ => "exploit-attempt",
                    });
                }
                if incident.attacks.is_empty() {
                    types.push("exploit-attempt");
                }
            }
            IncidentKind::CredentialStuffing => types.push("brute-force-attempt"),
            IncidentKind::DataLeak | IncidentKind::CanaryTrip => types.push(match left {
                Some(DataLeft::Yes) => "unauthorized-release",
                Some(DataLeft::Unknown) => "undetermined",
                _ => "blocked",
            }),
        }
    }
    let mut seen = Vec::new();
    types.retain(|t| {
        let fresh = !seen.contains(t);
        seen.push(t);
        fresh
    });
    types
}

/// The attack types to describe, with how much of each and in what unit:
/// the WAF's (matched requests), then the kinds that are attacks in
/// themselves (a flood's requests, a credential-stuffing run's events).
fn attack_keys(incident: &Incident) -> Vec<(String, u64, &'static str)> {
    let mut keys: Vec<(String, u64, &'static str)> = incident
        .attacks
        .iter()
        .map(|t| (t.key.clone(), t.count, "matched requests"))
        .collect();
    for &kind in &incident.kinds {
        if matches!(kind, IncidentKind::Flood | IncidentKind::CredentialStuffing)
            && !keys.iter().any(|(k, ..)| *k == kind.to_string())
        {
            keys.push(match kind {
                IncidentKind::Flood => (
                    kind.to_string(),
                    incident.requests,
                    "requests during the incident",
                ),
                _ => (kind.to_string(), incident.events, "events"),
            });
        }
    }
    keys
}

/// A STIX 2.1 bundle for the incident: the organisation's identity, the
/// TLP:AMBER marking, the incident (with the Incident Core extension),
/// observed-data, indicators and sightings for the top source prefixes,
/// attack patterns for the attack types, the relationships between them and
/// a report that references everything.
///
/// Every object the export creates carries `created_by_ref` (the identity)
/// and `object_marking_refs` (TLP:AMBER), except the two the specification
/// fixes: the marking definition itself, and cyber observables, which have
/// no `created_by_ref`.
pub fn stix_bundle(input: &ReportInput) -> Value {
    let incident = &report::scrubbed(input.incident);
    let sections = report::sections_of(incident, input);
    let organisation = input.organisation;
    let identity = format!(
        "identity--{}",
        uuid4_from(&["rampart stix identity", &organisation.name])
    );
    let modified_ms = input.generated_at.max(incident.aware_at);
    let stix = Stix {
        organisation: &organisation.name,
        incident_id: incident.id.to_string(),
        identity: identity.clone(),
        created: rfc3339(incident.aware_at.min(modified_ms)),
        modified: rfc3339(modified_ms),
    };
    let first = incident.first_event;
    let last = incident.last_event.max(first);
    let degraded = sections.technical.upstream_errors > 0
        || incident.kinds.contains(&IncidentKind::Availability);
    let mut objects: Vec<Value> = Vec::new();

    // The organisation: one id across all its exports, so one `created`
    // too; each export is a newer version of it.
    let mut org = stix.object("identity", &identity);
    org.insert("created".into(), json!(rfc3339(IDENTITY_CREATED)));
    org.insert(
        "modified".into(),
        json!(rfc3339(modified_ms.max(IDENTITY_CREATED))),
    );
    org.insert("name".into(), json!(organisation.name));
    org.insert("identity_class".into(), json!("organization"));
    org.insert(
        "description".into(),
        json!(format!("Sector: {}.", organisation.sector)),
    );
    let sector = organisation
        .sector
        .trim()
        .to_ascii_lowercase()
        .replace(' ', "-");
    if INDUSTRY_SECTORS.contains(&sector.as_str()) {
        org.insert("sectors".into(), json!([sector]));
    }
    org.insert("contact_information".into(), json!(organisation.contact));
    objects.push(Value::Object(org));
    objects.push(tlp_amber());

    // The incident.
    let incident_ref = stix.id("incident", "incident");
    let mut extension = Map::new();
    extension.insert("extension_type".into(), json!("property-extension"));
    let determination = match incident.data.as_ref().map(|d| d.left) {
        Some(DataLeft::Yes) => "confirmed",
        Some(DataLeft::Unknown) => "suspected",
        _ if degraded => "confirmed",
        _ => "blocked",
    };
    extension.insert("determination".into(), json!(determination));
    extension.insert("investigation_status".into(), json!(incident.status));
    extension.insert(
        "criticality".into(),
        json!(severity_criticality(incident.severity)),
    );
    extension.insert("detection_methods".into(), json!(["automated-tool"]));
    let types = incident_types(incident, degraded);
    if !types.is_empty() {
        extension.insert("incident_types".into(), json!(types));
    }
    extension.insert(
        "recoverability".into(),
        json!(if determination == "blocked" {
            "not-applicable"
        } else {
            "regular"
        }),
    );
    if let Some(data) = incident.data.as_ref().filter(|d| d.left != DataLeft::No) {
        extension.insert(
            "impacted_entity_counts".into(),
            json!({ "individual": data.people }),
        );
    }
    extension.insert(
        "scores".into(),
        json!([{
            "name": "rampart severity",
            "value": severity_criticality(incident.severity),
            "description": format!("rampart rated the incident {} (low 15, medium 40, high 70, critical 95).", incident.severity),
        }]),
    );
    let mut description = sections.summary.clone();
    for line in &sections.impact {
        description.push(' ');
        description.push_str(line);
    }
    let mut sdo = stix.object("incident", &incident_ref);
    sdo.insert(
        "name".into(),
        json!(format!("{}: {}", incident.reference(), incident.title)),
    );
    sdo.insert("description".into(), json!(description));
    sdo.insert(
        "external_references".into(),
        json!([{ "source_name": "rampart", "external_id": incident.reference(), "description": format!("{}'s incident reference", organisation.name) }]),
    );
    sdo.insert(
        "extensions".into(),
        json!({ INCIDENT_CORE_EXTENSION: Value::Object(extension) }),
    );
    objects.push(Value::Object(sdo));

    // Attack patterns.
    let mut patterns = Vec::new();
    for (key, count, unit) in attack_keys(incident) {
        let info = attack_pattern(&key);
        let id = stix.id("attack-pattern", &format!("attack {key}"));
        let mut ap = stix.object("attack-pattern", &id);
        let name = if info.capec.is_some() {
            info.name.to_string()
        } else {
            key.clone()
        };
        ap.insert("name".into(), json!(name));
        ap.insert(
            "description".into(),
            json!(format!(
                "{} In {}: {} {unit}.",
                info.description,
                incident.reference(),
                words::count(count)
            )),
        );
        if let Some((capec, title)) = info.capec {
            // No URL: STIX wants a hash beside any URL, and the id is the
            // reference that tools resolve.
            ap.insert(
                "external_references".into(),
                json!([{ "source_name": "capec", "external_id": capec, "description": title }]),
            );
        }
        objects.push(Value::Object(ap));
        objects.push(stix.relationship(
            "related-to",
            &incident_ref,
            &id,
            Some(format!("{} used {name}.", incident.reference())),
        ));
        objects.push(stix.relationship(
            "targets",
            &id,
            &identity,
            Some(format!("{name} against site {}.", incident.site)),
        ));
        patterns.push(id);
    }

    // Source prefixes: observed-data with their address objects, indicators
    // based on them, and sightings of the indicators.
    let attacking = incident.kinds.iter().any(|&k| is_attack(k));
    for tally in incident.top_prefixes.iter().take(STIX_MAX_PREFIXES) {
        let Some(v6) = parse_prefix(&tally.key) else {
            continue;
        };
        let prefix = &tally.key;
        let sco_type = if v6 { "ipv6-addr" } else { "ipv4-addr" };
        let sco_id = format!(
            "{sco_type}--{}",
            uuid5(
                &STIX_SCO_NAMESPACE,
                &serde_json::to_string(&json!({ "value": prefix })).expect("a string serialises")
            )
        );
        objects.push(json!({
            "type": sco_type,
            "spec_version": "2.1",
            "id": sco_id,
            "value": prefix,
            "object_marking_refs": [TLP_AMBER],
        }));
        let observed = stix.id("observed-data", &format!("prefix {prefix}"));
        let mut od = stix.object("observed-data", &observed);
        od.insert("first_observed".into(), json!(rfc3339(first)));
        od.insert("last_observed".into(), json!(rfc3339(last)));
        od.insert(
            "number_observed".into(),
            json!(tally.count.clamp(1, STIX_MAX_COUNT)),
        );
        od.insert("object_refs".into(), json!([sco_id]));
        objects.push(Value::Object(od));

        let indicator = stix.id("indicator", &format!("prefix {prefix}"));
        let mut ind = stix.object("indicator", &indicator);
        ind.insert(
            "name".into(),
            json!(format!(
                "Source prefix {prefix} in {}",
                incident.reference()
            )),
        );
        ind.insert(
            "description".into(),
            json!(format!(
                "Clients in {prefix} took part in {} against {} ({} events); addresses are shared as prefixes only.",
                incident.reference(),
                organisation.name,
                words::count(tally.count)
            )),
        );
        ind.insert(
            "indicator_types".into(),
            json!([if attacking {
                "malicious-activity"
            } else {
                "anomalous-activity"
            }]),
        );
        ind.insert(
            "pattern".into(),
            json!(format!("[{sco_type}:value = '{prefix}']")),
        );
        ind.insert("pattern_type".into(), json!("stix"));
        ind.insert("pattern_version".into(), json!("2.1"));
        ind.insert("valid_from".into(), json!(rfc3339(first)));
        objects.push(Value::Object(ind));
        objects.push(stix.relationship("based-on", &indicator, &observed, None));
        for pattern in &patterns {
            objects.push(stix.relationship("indicates", &indicator, pattern, None));
        }
        objects.push(stix.relationship("related-to", &incident_ref, &indicator, None));

        let sighting = stix.id("sighting", &format!("prefix {prefix}"));
        let mut si = stix.object("sighting", &sighting);
        si.insert("first_seen".into(), json!(rfc3339(first)));
        si.insert("last_seen".into(), json!(rfc3339(last)));
        si.insert("count".into(), json!(tally.count.min(STIX_MAX_COUNT)));
        si.insert("sighting_of_ref".into(), json!(indicator));
        si.insert("observed_data_refs".into(), json!([observed]));
        si.insert("where_sighted_refs".into(), json!([identity]));
        objects.push(Value::Object(si));
    }

    // The report that ties it together.
    let object_refs: Vec<Value> = objects.iter().map(|o| o["id"].clone()).collect();
    let report_id = stix.id("report", "report");
    let mut rep = stix.object("report", &report_id);
    rep.insert(
        "name".into(),
        json!(format!(
            "{} incident report {}: {}",
            organisation.name,
            incident.reference(),
            incident.title
        )),
    );
    rep.insert("description".into(), json!(sections.summary));
    rep.insert("report_types".into(), json!(["threat-report"]));
    rep.insert("published".into(), json!(rfc3339(modified_ms)));
    rep.insert("object_refs".into(), Value::Array(object_refs));
    objects.push(Value::Object(rep));

    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid4_from(&["rampart stix bundle", &organisation.name, &incident.id.to_string()])),
        "objects": objects,
    })
}

// ---------------------------------------------------------------------------
// MISP

/// A MISP event (MISP core format) for the incident, tagged `tlp:amber` and
/// shared with the organisation only (`distribution` 0) until someone
/// chooses otherwise in MISP. Attributes: the source prefixes (`ip-src`,
/// CIDR values), the attack types, the rules hit, the counts and, when
/// personal data was involved, whether it left and how much (counts only).
pub fn misp_event(input: &ReportInput) -> Value {
    let incident = &report::scrubbed(input.incident);
    let organisation = input.organisation;
    let reference = incident.reference();
    let id = incident.id.to_string();
    let uuid = |role: &str| uuid4_from(&["rampart misp", &organisation.name, &id, role]);
    let timestamp = (input.generated_at.max(0) / 1000).to_string();
    let attribute = |role: &str,
                     kind: &str,
                     category: &str,
                     value: String,
                     to_ids: bool,
                     comment: String|
     -> Value {
        json!({
            "uuid": uuid(role),
            "type": kind,
            "category": category,
            "value": value,
            "to_ids": to_ids,
            "comment": comment,
            "distribution": "5",
            "timestamp": timestamp,
        })
    };
    let attacking = incident.kinds.iter().any(|&k| is_attack(k));
    let mut attributes = Vec::new();
    for tally in &incident.top_prefixes {
        if parse_prefix(&tally.key).is_none() {
            continue;
        }
        attributes.push(attribute(
            &format!("prefix {}", tally.key),
            "ip-src",
            "Network activity",
            tally.key.clone(),
            attacking,
            format!(
                "Source prefix in {reference}: {} events",
                words::count(tally.count)
            ),
        ));
    }
    for (key, count, unit) in attack_keys(incident) {
        let info = attack_pattern(&key);
        let value = match info.capec {
            Some((capec, title)) => format!("{} ({key}; {capec} {title})", info.name),
            None => key.clone(),
        };
        attributes.push(attribute(
            &format!("attack {key}"),
            "text",
            "Other",
            value,
            false,
            format!("Attack type in {reference}: {} {unit}", words::count(count)),
        ));
    }
    for rule in &incident.rules {
        attributes.push(attribute(
            &format!("rule {}", rule.key),
            "text",
            "Other",
            format!("WAF rule {}", rule.key),
            false,
            format!("Hit {} times in {reference}", words::count(rule.count)),
        ));
    }
    let counts: [(&str, u64); 7] = [
        ("requests", incident.requests),
        ("blocked", incident.blocked),
        ("challenged", incident.challenged),
        ("limited", incident.limited),
        ("events", incident.events),
        ("distinct_sources", incident.distinct_sources),
        ("dropped_events", incident.dropped_events),
    ];
    for (name, value) in counts {
        attributes.push(attribute(
            &format!("count {name}"),
            "counter",
            "Other",
            value.to_string(),
            false,
            format!(
                "{name} in {reference}{}",
                if incident.dropped_events > 0 {
                    " (a lower bound: events were dropped)"
                } else {
                    ""
                }
            ),
        ));
    }
    if incident.peak_rps > 0.0 {
        attributes.push(attribute(
            "peak",
            "text",
            "Other",
            format!(
                "peak {} requests/s at {}",
                rate(incident.peak_rps),
                rfc3339(incident.peak_at)
            ),
            false,
            format!("Peak rate in {reference}"),
        ));
    }
    if let Some(data) = incident.data.as_ref().filter(|d| d.left != DataLeft::No) {
        let left = data.left.to_string();
        attributes.push(attribute(
            "personal data",
            "text",
            "Other",
            format!(
                "personal data left: {left}; about {} records concerning about {} people; categories: {}",
                words::count(data.records),
                words::count(data.people),
                data.categories.join("; ")
            ),
            false,
            "Counts and categories only; no personal data is exported".into(),
        ));
    }
    let threat_level = match incident.severity {
        Severity::Critical | Severity::High => "1",
        Severity::Medium => "2",
        Severity::Low => "3",
    };
    let kinds: Vec<String> = incident.kinds.iter().map(ToString::to_string).collect();
    json!({
        "Event": {
            "uuid": uuid("event"),
            "info": format!("{reference}: {} ({}; {})", incident.title, organisation.name, kinds.join(", ")),
            "date": date(incident.first_event),
            "timestamp": timestamp,
            "threat_level_id": threat_level,
            "analysis": match incident.status {
                IncidentStatus::Open => "1",
                IncidentStatus::Closed => "2",
            },
            "distribution": "0",
            "published": false,
            "Orgc": { "name": organisation.name, "uuid": uuid4_from(&["rampart misp org", &organisation.name]) },
            "Tag": [ { "name": "tlp:amber" } ],
            "Attribute": attributes,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observable_ids_are_the_uuid5_python_gives() {
        // uuid.uuid5(UUID('00abedb4-aa42-466c-9c01-fed23315a9b7'), '{"value":"203.0.113.0/24"}')
        assert_eq!(
            uuid5(&STIX_SCO_NAMESPACE, r#"{"value":"203.0.113.0/24"}"#),
            "a0895f10-d89d-56ad-a4a4-dc873ee08b8c"
        );
    }

    #[test]
    fn the_identity_epoch_is_2025() {
        assert_eq!(rfc3339(IDENTITY_CREATED), "2025-01-01T00:00:00.000Z");
    }

    #[test]
    fn ids_are_uuid4_shaped_and_reproducible() {
        let a = uuid4_from(&["x", "1"]);
        assert_eq!(a, uuid4_from(&["x", "1"]));
        assert_ne!(a, uuid4_from(&["x1", ""]), "parts are length-prefixed");
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn formats_parse_and_unknown_ones_list_the_valid_ones() {
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("Markdown".parse::<Format>(), Ok(Format::Markdown));
        assert_eq!("stix".parse::<Format>(), Ok(Format::Stix));
        let error = "pdf".parse::<Format>().unwrap_err().to_string();
        assert!(
            error.contains("pdf") && error.contains("html") && error.contains("misp"),
            "{error}"
        );
    }
}
