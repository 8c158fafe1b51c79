//! Incidents from events: the grouping engine.
//!
//! A [`Grouper`] reads events in time order and keeps at most one open
//! incident per site and [`IncidentKind`]. Before an incident opens, the
//! events that may open it wait in bounded per-site windows (at most the
//! threshold's count of trigger events, plus at most [`PENDING_CAP`] related
//! events such as bans and rate-limit answers, none older than the window);
//! when a threshold is crossed they all count into the new incident, whose
//! `first_event` is the earliest of them. While an incident is open, its
//! events count into it directly. An incident closes after
//! [`Thresholds::quiet_ms`] without events of its own.
//!
//! What opens what:
//!
//! | incident | opens when |
//! |---|---|
//! | flood | limited + challenged + non-WAF blocked requests stay at or over [`Thresholds::flood_rps`] per second in consecutive `Traffic` windows for [`Thresholds::flood_sustain_ms`], or the site switches to under-attack mode |
//! | injection | [`Thresholds::injection_blocks`] WAF blocks at one site (from any clients) within [`Thresholds::injection_window_ms`] |
//! | credential stuffing | [`Thresholds::login_failures`] failed logins within [`Thresholds::login_window_ms`] |
//! | data leak | any leak event, at once |
//! | canary trip | any canary trip, at once (always critical: someone reached the planted record) |
//! | availability | [`Thresholds::upstream_failures`] upstream failures (events, or `upstream_errors` in `Traffic`, whichever is more) within [`Thresholds::upstream_window_ms`] |
//!
//! `Traffic` samples of a site add to the totals and the peak of every open
//! incident of that site, but keep an incident alive only when they are part
//! of it (flood pressure for a flood, upstream errors for availability), so
//! ordinary traffic never holds an incident open.
//!
//! Privacy: nothing this module writes into an [`Incident`] holds a whole
//! client address or a leak sample. Clients become /24 or /64 prefixes
//! ([`source_prefix`]) and distinct-address counts; leaks become counts per
//! entity kind.

use crate::model::{
    ico_categories, source_prefix, ActionTaken, DataExposure, DataLeft, Decision, EntityCount,
    Event, EventKind, Incident, IncidentKind, IncidentStatus, Millis, Severity, Tally,
    ICO_WINDOW_MS,
};
use serde::Deserialize;
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Related events (bans, rate-limit answers, ...) kept per site and kind
/// before an incident opens, and the largest count threshold accepted. A
/// flood sends thousands of such events a second; the newest few thousand
/// are plenty to name the sources of its first seconds.
pub const PENDING_CAP: usize = 4096;

/// How far back related events are kept before a flood opens: they show how
/// it started (the first bans often come before the flood threshold is met).
const FLOOD_LOOKBACK_MS: Millis = 60_000;

/// An attack incident lasting this long is at least medium severity.
const SUSTAINED_MS: Millis = 10 * 60 * 1000;

/// A `Traffic` window whose upstream errors reach this many and at least one
/// in [`DEGRADED_SHARE`] requests shows the site degraded (high severity).
const DEGRADED_MIN_ERRORS: u32 = 10;
const DEGRADED_SHARE: u32 = 20;

/// Distinct client addresses counted exactly per incident; past this, an
/// estimate (see [`Sources`]). 100,000 addresses cost a few megabytes.
const SOURCES_CAP: usize = 100_000;

/// Prefix counters kept per incident (see [`TopCounter`]).
const PREFIX_CAP: usize = 10_000;
/// Rule and attack-type counters kept per incident.
const TALLY_CAP: usize = 10_000;
/// Prefixes listed in an incident.
const TOP_PREFIXES: usize = 10;
/// Rules and attack types listed in an incident.
const TOP_TALLIES: usize = 20;
/// Actions listed in an incident; the last entry then becomes a summary.
const ACTIONS_CAP: usize = 200;
/// Banned prefixes remembered per incident, to attach unbans to it.
const BANNED_CAP: usize = 10_000;

/// The thresholds that open and close incidents.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// An open incident closes after this long without events of its own.
    /// Five minutes: attackers pausing between waves (bots that were
    /// challenged often back off a minute or two) stay in one incident, and
    /// the all-clear still goes out while the team is watching.
    pub quiet_ms: u64,
    /// Requests per second answered with a limit, a challenge or a non-WAF
    /// block that make a flood. A small organisation's site serves a few
    /// requests a second; 50 refused a second is far beyond any crawler or
    /// busy page, and far below what the gateway absorbs.
    pub flood_rps: u32,
    /// How long that rate must last. One burst (a page with many assets
    /// behind a shared proxy) is over within a second; three seconds of it is
    /// a flood, and the team hears within seconds.
    pub flood_sustain_ms: u64,
    /// WAF blocks at one site that make an injection campaign. A real user
    /// trips a false positive once or twice; five in a minute is probing.
    pub injection_blocks: u32,
    /// The window for `injection_blocks` (one minute).
    pub injection_window_ms: u64,
    /// Failed logins at one site that make credential stuffing. People
    /// mistype a few times; twenty a minute is a list being tried.
    pub login_failures: u32,
    /// The window for `login_failures` (one minute).
    pub login_window_ms: u64,
    /// Upstream failures that make an availability incident. A deploy or a
    /// restart costs a handful of 502s; twenty in a minute is an outage
    /// people notice.
    pub upstream_failures: u32,
    /// The window for `upstream_failures` (one minute).
    pub upstream_window_ms: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            quiet_ms: 5 * 60 * 1000,
            flood_rps: 50,
            flood_sustain_ms: 3000,
            injection_blocks: 5,
            injection_window_ms: 60_000,
            login_failures: 20,
            login_window_ms: 60_000,
            upstream_failures: 20,
            upstream_window_ms: 60_000,
        }
    }
}

impl Thresholds {
    /// Every value out of range, in words (empty when all are fine). The
    /// [`Grouper`] clamps such values rather than failing.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let max = PENDING_CAP as u32;
        for (name, value) in [
            ("injection_blocks", self.injection_blocks),
            ("login_failures", self.login_failures),
            ("upstream_failures", self.upstream_failures),
        ] {
            if value == 0 || value > max {
                problems.push(format!("{name} is {value}; it must be between 1 and {max}"));
            }
        }
        if self.flood_rps == 0 {
            problems.push("flood_rps is 0; it must be at least 1".into());
        }
        for (name, value) in [
            ("quiet_ms", self.quiet_ms),
            ("injection_window_ms", self.injection_window_ms),
            ("login_window_ms", self.login_window_ms),
            ("upstream_window_ms", self.upstream_window_ms),
        ] {
            if value == 0 || value > i64::MAX as u64 / 4 {
                problems.push(format!(
                    "{name} is {value}; it must be a positive number of milliseconds"
                ));
            }
        }
        problems
    }

    fn clamped(mut self) -> Thresholds {
        let max = PENDING_CAP as u32;
        for value in [
            &mut self.injection_blocks,
            &mut self.login_failures,
            &mut self.upstream_failures,
        ] {
            *value = (*value).clamp(1, max);
        }
        self.flood_rps = self.flood_rps.max(1);
        let limit = i64::MAX as u64 / 4;
        for value in [
            &mut self.quiet_ms,
            &mut self.flood_sustain_ms,
            &mut self.injection_window_ms,
            &mut self.login_window_ms,
            &mut self.upstream_window_ms,
        ] {
            *value = (*value).clamp(1, limit);
        }
        self
    }
}

/// What happened to an incident. Alerts go out on `Opened`, `Escalated` and
/// `Closed`; `Updated` only needs storing.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new incident (its id is 0 until the store assigns one).
    Opened(Incident),
    /// Severity rose, personal data was found to have left, or the peak rate
    /// doubled.
    Escalated {
        /// The incident as it now is.
        incident: Incident,
        /// Why, in words.
        why: String,
    },
    /// The incident grew (more events, new totals).
    Updated(Incident),
    /// The incident closed after the quiet period.
    Closed(Incident),
}

impl Change {
    /// The incident the change is about.
    pub fn incident(&self) -> &Incident {
        match self {
            Change::Opened(i) | Change::Updated(i) | Change::Closed(i) => i,
            Change::Escalated { incident, .. } => incident,
        }
    }

    /// The incident, mutably (the writer sets the id the store assigned).
    pub fn incident_mut(&mut self) -> &mut Incident {
        match self {
            Change::Opened(i) | Change::Updated(i) | Change::Closed(i) => i,
            Change::Escalated { incident, .. } => incident,
        }
    }
}

const KINDS: [IncidentKind; 6] = [
    IncidentKind::Flood,
    IncidentKind::Injection,
    IncidentKind::CredentialStuffing,
    IncidentKind::DataLeak,
    IncidentKind::CanaryTrip,
    IncidentKind::Availability,
];

fn slot(kind: IncidentKind) -> usize {
    match kind {
        IncidentKind::Flood => 0,
        IncidentKind::Injection => 1,
        IncidentKind::CredentialStuffing => 2,
        IncidentKind::DataLeak => 3,
        IncidentKind::CanaryTrip => 4,
        IncidentKind::Availability => 5,
    }
}

const FLOOD: usize = 0;
const INJECTION: usize = 1;
const CREDENTIALS: usize = 2;
const LEAK: usize = 3;
const CANARY: usize = 4;
const AVAILABILITY: usize = 5;

/// A client's /24 or /64, compact (no allocation per event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PrefixKey {
    V4([u8; 3]),
    V6([u16; 4]),
}

impl PrefixKey {
    fn of(client: IpAddr) -> PrefixKey {
        match client {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                PrefixKey::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                PrefixKey::V6([s[0], s[1], s[2], s[3]])
            }
        }
    }

    fn label(&self) -> String {
        let address = match *self {
            PrefixKey::V4([a, b, c]) => IpAddr::V4(Ipv4Addr::new(a, b, c, 0)),
            PrefixKey::V6([a, b, c, d]) => IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)),
        };
        source_prefix(address)
    }

    /// Reads a label back (for incidents restored from the store).
    fn parse(label: &str) -> Option<PrefixKey> {
        let (address, _) = label.split_once('/')?;
        address.parse::<IpAddr>().ok().map(PrefixKey::of)
    }
}

/// Counts by key, keeping at most `cap` keys. When a new key would pass the
/// cap, the less-counted half is forgotten: the busiest keys (the ones
/// reported) keep exact counts, and a key forgotten and seen again restarts
/// from zero, which only matters for keys near the bottom of the list.
#[derive(Clone, Debug)]
struct TopCounter<K> {
    counts: HashMap<K, u64>,
    cap: usize,
}

impl<K: Hash + Eq + Clone + Ord> TopCounter<K> {
    fn new(cap: usize) -> TopCounter<K> {
        TopCounter {
            counts: HashMap::new(),
            cap,
        }
    }

    fn add<Q>(&mut self, key: &Q, n: u64)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(count) = self.counts.get_mut(key) {
            *count += n;
            return;
        }
        if self.counts.len() >= self.cap {
            let mut all: Vec<(u64, K)> = self.counts.drain().map(|(k, c)| (c, k)).collect();
            let keep = self.cap / 2;
            all.select_nth_unstable_by(keep, |a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            all.truncate(keep);
            self.counts.extend(all.into_iter().map(|(c, k)| (k, c)));
        }
        self.counts.insert(key.to_owned(), n);
    }

    fn top(&self, n: usize, label: impl Fn(&K) -> String) -> Vec<Tally> {
        let mut all: Vec<(&K, u64)> = self.counts.iter().map(|(k, c)| (k, *c)).collect();
        let order = |a: &(&K, u64), b: &(&K, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0));
        if all.len() > n {
            all.select_nth_unstable_by(n, order);
            all.truncate(n);
        }
        all.sort_unstable_by(order);
        all.into_iter()
            .map(|(k, c)| Tally {
                key: label(k),
                count: c,
            })
            .collect()
    }
}

/// Distinct client addresses: exact up to [`SOURCES_CAP`], then estimated by
/// linear counting over a 2^20-bit map (128 KiB; within a few percent up to
/// millions of addresses). After a restart the count continues from the
/// stored number, so an address seen both before and after counts twice.
#[derive(Debug)]
struct Sources {
    base: u64,
    exact: HashSet<IpAddr>,
    bits: Option<Vec<u64>>,
    hasher: RandomState,
}

const SOURCE_BITS: usize = 1 << 20;

impl Sources {
    fn new(base: u64) -> Sources {
        Sources {
            base,
            exact: HashSet::new(),
            bits: None,
            hasher: RandomState::new(),
        }
    }

    fn insert(&mut self, client: IpAddr) {
        if let Some(bits) = &mut self.bits {
            let bit = (self.hasher.hash_one(client) as usize) & (SOURCE_BITS - 1);
            bits[bit / 64] |= 1 << (bit % 64);
            return;
        }
        if self.exact.insert(client) && self.exact.len() > SOURCES_CAP {
            let mut bits = vec![0u64; SOURCE_BITS / 64];
            for client in self.exact.drain() {
                let bit = (self.hasher.hash_one(client) as usize) & (SOURCE_BITS - 1);
                bits[bit / 64] |= 1 << (bit % 64);
            }
            self.exact = HashSet::new();
            self.bits = Some(bits);
        }
    }

    fn count(&self) -> u64 {
        let seen = match &self.bits {
            None => self.exact.len() as u64,
            Some(bits) => {
                let m = SOURCE_BITS as f64;
                let zeros = bits
                    .iter()
                    .map(|w| w.count_zeros() as u64)
                    .sum::<u64>()
                    .max(1) as f64;
                (m * (m / zeros).ln()).round() as u64
            }
        };
        self.base + seen
    }
}

/// An open incident and what it takes to keep its lists exact.
#[derive(Debug)]
struct Open {
    incident: Incident,
    sources: Sources,
    prefixes: TopCounter<PrefixKey>,
    rules: TopCounter<u32>,
    attacks: TopCounter<String>,
    banned: HashSet<PrefixKey>,
    /// Actions past the cap, by kind (`bans`, `responses blocked`, ...).
    overflow: BTreeMap<&'static str, u64>,
    /// The peak rate when the incident opened or last escalated for it.
    peak_reported: f64,
    degraded: bool,
    left_yes: bool,
    dropped_while_open: bool,
    dirty: bool,
}

impl Open {
    fn new(site: &str, kind: IncidentKind, at: Millis) -> Open {
        let data = matches!(kind, IncidentKind::DataLeak | IncidentKind::CanaryTrip).then(|| {
            DataExposure {
                left: DataLeft::No,
                entities: Vec::new(),
                records: 0,
                people: 0,
                categories: Vec::new(),
                special_category: false,
            }
        });
        let incident = Incident {
            id: 0,
            title: String::new(),
            site: site.to_string(),
            kinds: vec![kind],
            status: IncidentStatus::Open,
            severity: Severity::Low,
            first_event: at,
            last_event: at,
            aware_at: at,
            deadline: at.saturating_add(ICO_WINDOW_MS),
            closed_at: None,
            peak_rps: 0.0,
            peak_at: 0,
            requests: 0,
            blocked: 0,
            challenged: 0,
            limited: 0,
            events: 0,
            distinct_sources: 0,
            top_prefixes: Vec::new(),
            rules: Vec::new(),
            attacks: Vec::new(),
            actions: Vec::new(),
            data,
            decisions: Vec::new(),
            dropped_events: 0,
        };
        Open {
            incident,
            sources: Sources::new(0),
            prefixes: TopCounter::new(PREFIX_CAP),
            rules: TopCounter::new(TALLY_CAP),
            attacks: TopCounter::new(TALLY_CAP),
            banned: HashSet::new(),
            overflow: BTreeMap::new(),
            peak_reported: 0.0,
            degraded: false,
            left_yes: false,
            dropped_while_open: false,
            dirty: true,
        }
    }

    /// Rebuilds the working state of an incident read back from the store.
    fn restored(incident: Incident) -> Open {
        let mut prefixes = TopCounter::new(PREFIX_CAP);
        for tally in &incident.top_prefixes {
            if let Some(key) = PrefixKey::parse(&tally.key) {
                prefixes.add(&key, tally.count);
            }
        }
        let mut rules = TopCounter::new(TALLY_CAP);
        for tally in &incident.rules {
            if let Ok(rule) = tally.key.parse::<u32>() {
                rules.add(&rule, tally.count);
            }
        }
        let mut attacks = TopCounter::new(TALLY_CAP);
        for tally in &incident.attacks {
            attacks.add(tally.key.as_str(), tally.count);
        }
        let left = incident.data.as_ref().map(|d| d.left);
        Open {
            sources: Sources::new(incident.distinct_sources),
            prefixes,
            rules,
            attacks,
            banned: HashSet::new(),
            overflow: BTreeMap::new(),
            peak_reported: incident.peak_rps,
            degraded: false,
            left_yes: left == Some(DataLeft::Yes),
            dropped_while_open: incident.dropped_events > 0,
            dirty: false,
            incident,
        }
    }

    fn kind(&self) -> IncidentKind {
        self.incident.kinds[0]
    }

    /// Counts an event into the incident: times, sources, prefixes.
    fn member(&mut self, at: Millis, client: Option<IpAddr>) {
        let incident = &mut self.incident;
        incident.events += 1;
        incident.first_event = incident.first_event.min(at);
        incident.last_event = incident.last_event.max(at);
        if let Some(client) = client {
            self.sources.insert(client);
            self.prefixes.add(&PrefixKey::of(client), 1);
        }
        self.dirty = true;
    }

    fn action(&mut self, at: Millis, category: &'static str, what: String) {
        let actions = &mut self.incident.actions;
        if actions.len() < ACTIONS_CAP - 1 && self.overflow.is_empty() {
            actions.push(ActionTaken { at, what });
            return;
        }
        *self.overflow.entry(category).or_insert(0) += 1;
        let total: u64 = self.overflow.values().sum();
        let breakdown: Vec<String> = self
            .overflow
            .iter()
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        let summary = ActionTaken {
            at,
            what: format!(
                "and {total} more actions not listed one by one ({})",
                breakdown.join(", ")
            ),
        };
        if actions.len() >= ACTIONS_CAP {
            actions.truncate(ACTIONS_CAP - 1);
        }
        actions.push(summary);
    }

    fn decide(&mut self, at: Millis, text: String) {
        self.incident.decisions.push(Decision {
            at,
            by: "rampart".into(),
            text,
            told: None,
        });
        self.dirty = true;
    }

    fn add_traffic(
        &mut self,
        at: Millis,
        rps: f64,
        requests: u32,
        blocked: u32,
        challenged: u32,
        limited: u32,
    ) {
        let incident = &mut self.incident;
        incident.requests += u64::from(requests);
        incident.blocked += u64::from(blocked);
        incident.challenged += u64::from(challenged);
        incident.limited += u64::from(limited);
        if rps > incident.peak_rps {
            incident.peak_rps = rps;
            incident.peak_at = at;
        }
        self.dirty = true;
    }

    fn left(&self) -> DataLeft {
        if self.left_yes {
            DataLeft::Yes
        } else if self.dropped_while_open {
            DataLeft::Unknown
        } else {
            DataLeft::Prevented
        }
    }

    /// Adds personal data found in a response.
    fn expose(&mut self, action: &str, entities: &[EntityCount]) {
        // Only a block or a redaction kept the data in; any other action
        // (alert, or one this build does not know) counts as data that left.
        if !matches!(action, "block" | "redact") {
            self.left_yes = true;
        }
        let left = self.left();
        let data = self.incident.data.get_or_insert_with(|| DataExposure {
            left,
            entities: Vec::new(),
            records: 0,
            people: 0,
            categories: Vec::new(),
            special_category: false,
        });
        for entity in entities {
            match data.entities.iter_mut().find(|t| t.key == entity.kind) {
                Some(tally) => tally.count += u64::from(entity.count),
                None => data.entities.push(Tally {
                    key: entity.kind.clone(),
                    count: u64::from(entity.count),
                }),
            }
            data.records += u64::from(entity.distinct);
            let (categories, special) = ico_categories(&entity.kind);
            for category in categories {
                if !data.categories.iter().any(|c| c == category) {
                    data.categories.push((*category).to_string());
                }
            }
            data.special_category |= special;
        }
        data.people = data.records;
        data.left = left;
        self.dirty = true;
    }

    /// The severity the incident's facts call for, and why.
    fn assess(&self) -> (Severity, &'static str) {
        let incident = &self.incident;
        match self.kind() {
            IncidentKind::Flood | IncidentKind::Injection | IncidentKind::CredentialStuffing => {
                if self.degraded {
                    (Severity::High, "the site degraded (upstream errors)")
                } else if incident.last_event - incident.first_event >= SUSTAINED_MS {
                    (Severity::Medium, "sustained for over 10 minutes")
                } else {
                    (Severity::Low, "absorbed by the gateway")
                }
            }
            IncidentKind::Availability => (Severity::High, "the site degraded"),
            IncidentKind::CanaryTrip => (
                Severity::Critical,
                "someone reached a planted canary record",
            ),
            IncidentKind::DataLeak => match &incident.data {
                Some(data) if data.left == DataLeft::Yes && data.special_category => {
                    (Severity::Critical, "special-category data left")
                }
                Some(data) if data.left == DataLeft::Yes => (Severity::High, "personal data left"),
                _ => (Severity::Medium, "personal data stopped at the gateway"),
            },
        }
    }

    /// The incident as it stands, with its lists brought up to date.
    fn snapshot(&mut self) -> Incident {
        self.incident.distinct_sources = self.sources.count();
        self.incident.top_prefixes = self.prefixes.top(TOP_PREFIXES, PrefixKey::label);
        self.incident.rules = self.rules.top(TOP_TALLIES, u32::to_string);
        self.incident.attacks = self.attacks.top(TOP_TALLIES, String::clone);
        if let Some(data) = &mut self.incident.data {
            data.entities
                .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        }
        self.incident.title = title(&self.incident);
        self.dirty = false;
        self.incident.clone()
    }

    /// Re-assesses severity and emits `Escalated` when it rose or when
    /// `reasons` already holds a reason (data left, peak doubled).
    fn escalate(&mut self, at: Millis, mut reasons: Vec<String>, changes: &mut Vec<Change>) {
        let (severity, cause) = self.assess();
        if severity > self.incident.severity {
            self.incident.severity = severity;
            reasons.push(format!(
                "severity rose to {}: {cause}",
                severity_name(severity)
            ));
        }
        if reasons.is_empty() {
            return;
        }
        let why = reasons.join("; ");
        self.decide(at, format!("escalated: {why}"));
        changes.push(Change::Escalated {
            incident: self.snapshot(),
            why,
        });
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn title(incident: &Incident) -> String {
    let site = if incident.site.is_empty() {
        "unmatched hosts"
    } else {
        incident.site.as_str()
    };
    match incident.kinds[0] {
        IncidentKind::Flood => format!("HTTP flood against {site}"),
        IncidentKind::Injection => {
            let mut attacks: Vec<&str> = incident
                .attacks
                .iter()
                .take(4)
                .map(|t| t.key.as_str())
                .collect();
            attacks.sort_unstable();
            if attacks.is_empty() {
                format!("Injection campaign against {site}")
            } else {
                format!("Injection campaign against {site} ({})", attacks.join(", "))
            }
        }
        IncidentKind::CredentialStuffing => format!("Credential stuffing against {site}"),
        IncidentKind::DataLeak => {
            let kinds: Vec<&str> = incident
                .data
                .iter()
                .flat_map(|d| d.entities.iter().take(4))
                .map(|t| t.key.as_str())
                .collect();
            if kinds.is_empty() {
                format!("Personal data in responses from {site}")
            } else {
                format!(
                    "Personal data in responses from {site} ({})",
                    kinds.join(", ")
                )
            }
        }
        IncidentKind::CanaryTrip => match incident.data.as_ref().map(|d| d.left) {
            Some(DataLeft::Yes) => format!("Canary record left {site}"),
            Some(DataLeft::Unknown) => format!("Canary record may have left {site}"),
            _ => format!("Canary record stopped leaving {site}"),
        },
        IncidentKind::Availability => format!("Upstream failing for {site}"),
    }
}

/// A duration in words: `60 s`, `5 minutes`, `2 hours`.
fn duration(ms: Millis) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if ms >= 2 * 3_600_000 && ms % 3_600_000 == 0 {
        plural(ms / 3_600_000, "hour")
    } else if ms >= 120_000 {
        plural((ms + 30_000) / 60_000, "minute")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

/// Events waiting for a threshold: the ones that count towards it, and
/// related ones that join the incident when it opens.
#[derive(Debug, Default)]
struct Pending {
    triggers: VecDeque<Event>,
    related: VecDeque<Event>,
}

impl Pending {
    fn push(queue: &mut VecDeque<Event>, event: &Event, window: Millis) -> usize {
        queue.push_back(event.clone());
        let oldest = event.at.saturating_sub(window);
        while let Some(front) = queue.front() {
            if front.at < oldest || queue.len() > PENDING_CAP {
                queue.pop_front();
            } else {
                break;
            }
        }
        queue.len()
    }

    /// Everything waiting, in time order, leaving the queues empty.
    fn take(&mut self) -> Vec<Event> {
        let mut all: Vec<Event> = self
            .triggers
            .drain(..)
            .chain(self.related.drain(..))
            .collect();
        all.sort_by_key(|e| e.at);
        all
    }

    fn clear(&mut self) {
        self.triggers.clear();
        self.related.clear();
    }
}

/// Consecutive `Traffic` windows at flood pressure, before a flood opens.
#[derive(Clone, Debug)]
struct Streak {
    /// The first window's start.
    from: Millis,
    first_at: Millis,
    last_at: Millis,
    windows: u64,
    pressure: u64,
    requests: u32,
    blocked: u32,
    challenged: u32,
    limited: u32,
    peak_rps: f64,
    peak_at: Millis,
}

/// One site's state.
#[derive(Debug, Default)]
struct Site {
    open: [Option<Box<Open>>; 6],
    pending: [Pending; 6],
    streak: Option<Streak>,
    /// Upstream errors from `Traffic` windows, before availability opens.
    upstream_windows: VecDeque<(Millis, u32)>,
    /// WAF blocks per second over the last 8 seconds, so that flood pressure
    /// does not count the WAF's blocks (those are an injection's).
    waf_seconds: [(i64, u32); 8],
}

impl Site {
    fn count_waf_block(&mut self, at: Millis) {
        let second = at.div_euclid(1000);
        let slot = &mut self.waf_seconds[second.rem_euclid(8) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
    }

    fn waf_blocks_between(&self, from: Millis, to: Millis) -> u32 {
        let (first, last) = (from.div_euclid(1000), (to - 1).div_euclid(1000));
        self.waf_seconds
            .iter()
            .filter(|(s, _)| *s >= first && *s <= last && *s != 0)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The grouping engine. Feed it events in time order with [`Grouper::observe`]
/// and the clock with [`Grouper::tick`]; store what [`Grouper::updates`]
/// returns once per batch.
#[derive(Debug)]
pub struct Grouper {
    thresholds: Thresholds,
    sites: HashMap<String, Site>,
}

impl Grouper {
    /// A grouper with no open incidents. Out-of-range thresholds are clamped
    /// (see [`Thresholds::problems`]).
    pub fn new(thresholds: Thresholds) -> Grouper {
        Grouper {
            thresholds: thresholds.clamped(),
            sites: HashMap::new(),
        }
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Takes back open incidents read from the store after a restart, so they
    /// continue rather than a second incident opening. Incidents that are not
    /// open are ignored. When two are open for the same site and kind (which
    /// this engine never does), the one with the latest event continues and
    /// the other is closed: the returned changes say so.
    pub fn restore(&mut self, open: Vec<Incident>) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut open: Vec<Incident> = open
            .into_iter()
            .filter(|i| i.status == IncidentStatus::Open && !i.kinds.is_empty())
            .collect();
        open.sort_by_key(|i| (i.last_event, i.id));
        for incident in open {
            let index = slot(incident.kinds[0]);
            let site = self.sites.entry(incident.site.clone()).or_default();
            let restored = Box::new(Open::restored(incident));
            if let Some(mut older) = site.open[index].replace(restored) {
                let at = older.incident.last_event;
                older.incident.status = IncidentStatus::Closed;
                older.incident.closed_at = Some(at);
                older.decide(
                    at,
                    "closed: another open incident of the same kind continued after a restart"
                        .into(),
                );
                changes.push(Change::Closed(older.snapshot()));
            }
        }
        changes
    }

    /// Records the id the store gave a newly opened incident.
    pub fn assign_id(&mut self, site: &str, kind: IncidentKind, id: i64) {
        if let Some(open) = self
            .sites
            .get_mut(site)
            .and_then(|s| s.open[slot(kind)].as_mut())
        {
            open.incident.id = id;
        }
    }

    /// The open incidents as they stand.
    pub fn open_incidents(&mut self) -> Vec<Incident> {
        let mut out: Vec<Incident> = self
            .sites
            .values_mut()
            .flat_map(|s| s.open.iter_mut().flatten())
            .map(|o| o.snapshot())
            .collect();
        out.sort_by_key(|i| (i.first_event, i.id));
        out
    }

    /// One `Updated` per open incident that changed since the last call
    /// (without a change of its own already reported). Growth is not
    /// reported per event, which would copy an incident for each of thousands
    /// of events a second; the writer calls this once per batch.
    pub fn updates(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        for site in self.sites.values_mut() {
            for open in site.open.iter_mut().flatten() {
                if open.dirty {
                    changes.push(Change::Updated(open.snapshot()));
                }
            }
        }
        changes
    }

    /// Closes the incidents quiet for [`Thresholds::quiet_ms`] at `now`.
    pub fn tick(&mut self, now: Millis) -> Vec<Change> {
        let mut changes = Vec::new();
        let quiet = self.thresholds.quiet_ms as Millis;
        for site in self.sites.values_mut() {
            close_quiet(site, now, quiet, &mut changes);
        }
        changes
    }

    /// Groups one event. Returns the incidents opened, escalated or closed
    /// by it (an incident quiet for long enough by the event's time closes
    /// first); ordinary growth is reported by [`Grouper::updates`].
    pub fn observe(&mut self, event: &Event) -> Vec<Change> {
        let mut changes = Vec::new();
        let t = &self.thresholds;
        if let EventKind::EventsDropped { count } = event.kind {
            for site in self.sites.values_mut() {
                for open in site.open.iter_mut().flatten() {
                    open.incident.dropped_events += count;
                    open.dropped_while_open = true;
                    let left = open.left();
                    if let Some(data) = &mut open.incident.data {
                        data.left = left;
                    }
                    open.dirty = true;
                }
            }
            return changes;
        }
        // Bans are gateway-wide (a client is banned from every site), so a
        // ban without a site belongs to whichever sites' incidents it concerns.
        let gateway_wide = event.site.is_empty()
            && matches!(event.kind, EventKind::Banned { .. } | EventKind::Unbanned);
        let names: Vec<String> = if gateway_wide {
            self.sites
                .keys()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if !names.is_empty() {
            for name in names {
                let mut copy = event.clone();
                copy.site = name;
                changes.extend(self.observe(&copy));
            }
            return changes;
        }
        if !self.sites.contains_key(event.site.as_str()) {
            self.sites.insert(event.site.clone(), Site::default());
        }
        let site = self
            .sites
            .get_mut(event.site.as_str())
            .expect("inserted above");
        close_quiet(site, event.at, t.quiet_ms as Millis, &mut changes);
        let name = event.site.as_str();
        match &event.kind {
            EventKind::Traffic {
                window_ms,
                requests,
                blocked,
                challenged,
                limited,
                upstream_errors,
            } => {
                let sample = Sample {
                    window_ms: Millis::from((*window_ms).max(1)),
                    requests: *requests,
                    blocked: *blocked,
                    challenged: *challenged,
                    limited: *limited,
                    upstream_errors: *upstream_errors,
                };
                traffic(site, name, event, &sample, t, &mut changes);
            }
            EventKind::WafBlock { .. } => {
                site.count_waf_block(event.at);
                count_towards(site, name, INJECTION, event, t, &mut changes);
            }
            EventKind::WafMatch { .. } => {
                if let Some(open) = site.open[INJECTION].as_mut() {
                    absorb(open, event);
                }
            }
            EventKind::LoginFailure { .. } => {
                count_towards(site, name, CREDENTIALS, event, t, &mut changes);
            }
            EventKind::UpstreamFailure { .. } => {
                if let Some(open) = site.open[AVAILABILITY].as_mut() {
                    absorb(open, event);
                } else {
                    let window = t.upstream_window_ms as Millis;
                    Pending::push(&mut site.pending[AVAILABILITY].triggers, event, window);
                    availability(site, name, event, t, Start::Waiting, &mut changes);
                }
            }
            EventKind::Challenged | EventKind::RateLimited { .. } | EventKind::Queued => {
                related(site, FLOOD, event, FLOOD_LOOKBACK_MS);
            }
            EventKind::Banned { reason, .. } => match reason.as_str() {
                "waf" => related(site, INJECTION, event, t.injection_window_ms as Millis),
                "rate_limits" if site.open[FLOOD].is_none() && site.open[CREDENTIALS].is_some() => {
                    related(site, CREDENTIALS, event, t.login_window_ms as Millis)
                }
                "rate_limits" => related(site, FLOOD, event, FLOOD_LOOKBACK_MS),
                _ => {
                    for index in [FLOOD, INJECTION, CREDENTIALS] {
                        if let Some(open) = site.open[index].as_mut() {
                            absorb(open, event);
                        }
                    }
                }
            },
            EventKind::Unbanned => {
                if let Some(client) = event.client {
                    let key = PrefixKey::of(client);
                    for open in site.open.iter_mut().flatten() {
                        if open.banned.contains(&key) {
                            absorb(open, event);
                        }
                    }
                }
            }
            EventKind::ModeChanged {
                under_attack,
                reason,
            } => {
                if let Some(open) = site.open[FLOOD].as_mut() {
                    absorb(open, event);
                } else if *under_attack {
                    let what = format!(
                        "site {} switched to under-attack mode ({reason})",
                        display_site(name)
                    );
                    let streak = site.streak.take();
                    open_now(
                        site,
                        name,
                        FLOOD,
                        event,
                        what,
                        Start::Event(streak),
                        &mut changes,
                    );
                }
            }
            EventKind::Leak { .. } | EventKind::CanaryTrip { .. } => {
                let index = if matches!(event.kind, EventKind::Leak { .. }) {
                    LEAK
                } else {
                    CANARY
                };
                match site.open[index].as_mut() {
                    Some(open) => {
                        let was = open.left();
                        absorb(open, event);
                        let mut reasons = Vec::new();
                        if open.left() == DataLeft::Yes && was != DataLeft::Yes {
                            reasons.push(format!(
                                "personal data left: a response on {} went out with it",
                                display_route(&event.route)
                            ));
                        }
                        open.escalate(event.at, reasons, &mut changes);
                    }
                    None => {
                        let what = match &event.kind {
                            EventKind::CanaryTrip { action, .. } => {
                                format!(
                                    "a canary record in a response on {} ({action})",
                                    display_route(&event.route)
                                )
                            }
                            EventKind::Leak { action, .. } => {
                                format!(
                                    "personal data in a response on {} ({action})",
                                    display_route(&event.route)
                                )
                            }
                            _ => unreachable!("matched above"),
                        };
                        open_now(
                            site,
                            name,
                            index,
                            event,
                            what,
                            Start::Event(None),
                            &mut changes,
                        );
                    }
                }
            }
            EventKind::Cleared
            | EventKind::AlertFailed { .. }
            | EventKind::EventsDropped { .. } => {}
        }
        changes
    }
}

/// One `Traffic` window's numbers.
struct Sample {
    window_ms: Millis,
    requests: u32,
    blocked: u32,
    challenged: u32,
    limited: u32,
    upstream_errors: u32,
}

impl Sample {
    fn rps(&self) -> f64 {
        f64::from(self.requests) * 1000.0 / self.window_ms as f64
    }

    fn degraded(&self) -> bool {
        self.upstream_errors >= DEGRADED_MIN_ERRORS
            && u64::from(self.upstream_errors) * u64::from(DEGRADED_SHARE)
                >= u64::from(self.requests)
    }
}

fn traffic(
    site: &mut Site,
    name: &str,
    event: &Event,
    sample: &Sample,
    t: &Thresholds,
    changes: &mut Vec<Change>,
) {
    let at = event.at;
    let rps = sample.rps();
    let waf = site.waf_blocks_between(at - sample.window_ms, at);
    let pressure = sample.limited as u64
        + sample.challenged as u64
        + sample.blocked.saturating_sub(waf) as u64;
    let flooding = pressure as f64 * 1000.0 / sample.window_ms as f64 >= f64::from(t.flood_rps);
    for (index, slot) in site.open.iter_mut().enumerate() {
        let Some(open) = slot.as_mut() else { continue };
        open.add_traffic(
            at,
            rps,
            sample.requests,
            sample.blocked,
            sample.challenged,
            sample.limited,
        );
        let mut reasons = Vec::new();
        match index {
            FLOOD => {
                if flooding {
                    open.member(at, None);
                }
                let peak = open.incident.peak_rps;
                if open.peak_reported > 0.0 && peak >= 2.0 * open.peak_reported {
                    reasons.push(format!(
                        "peak rose to {peak:.0} requests/s, twice the {:.0} reported before",
                        open.peak_reported
                    ));
                    open.peak_reported = peak;
                } else if open.peak_reported == 0.0 {
                    open.peak_reported = peak;
                }
            }
            AVAILABILITY if sample.upstream_errors > 0 => open.member(at, None),
            _ => {}
        }
        if sample.degraded() && matches!(index, FLOOD | INJECTION | CREDENTIALS) {
            open.degraded = true;
        }
        open.escalate(at, reasons, changes);
    }
    if site.open[FLOOD].is_none() {
        if flooding {
            let from = at - sample.window_ms;
            let streak = match site.streak.take() {
                // One missing window is tolerated (a sample can be late).
                Some(s) if from <= s.last_at + sample.window_ms && at > s.last_at => s,
                _ => Streak {
                    from,
                    first_at: at,
                    last_at: at,
                    windows: 0,
                    pressure: 0,
                    requests: 0,
                    blocked: 0,
                    challenged: 0,
                    limited: 0,
                    peak_rps: 0.0,
                    peak_at: at,
                },
            };
            let mut streak = Streak {
                last_at: at,
                windows: streak.windows + 1,
                pressure: streak.pressure + pressure,
                requests: streak.requests.saturating_add(sample.requests),
                blocked: streak.blocked.saturating_add(sample.blocked),
                challenged: streak.challenged.saturating_add(sample.challenged),
                limited: streak.limited.saturating_add(sample.limited),
                ..streak
            };
            if rps > streak.peak_rps {
                streak.peak_rps = rps;
                streak.peak_at = at;
            }
            let lasted = at - streak.from;
            if lasted >= t.flood_sustain_ms as Millis {
                let average = streak.pressure as f64 * 1000.0 / lasted as f64;
                let what = format!(
                    "{average:.0} limited, challenged or blocked requests/s for {} crossed the threshold of {}/s",
                    duration(lasted),
                    t.flood_rps
                );
                open_now(
                    site,
                    name,
                    FLOOD,
                    event,
                    what,
                    Start::Streak(streak),
                    changes,
                );
            } else {
                site.streak = Some(streak);
            }
        } else {
            site.streak = None;
        }
    }
    if site.open[AVAILABILITY].is_none() && sample.upstream_errors > 0 {
        site.upstream_windows
            .push_back((at, sample.upstream_errors));
        availability(site, name, event, t, Start::Event(None), changes);
    }
}

/// Opens an availability incident when upstream failures within the window,
/// counted as events or from `Traffic` windows (whichever is more), reach the
/// threshold.
fn availability(
    site: &mut Site,
    name: &str,
    event: &Event,
    t: &Thresholds,
    start: Start,
    changes: &mut Vec<Change>,
) {
    let window = t.upstream_window_ms as Millis;
    let from_windows = upstream_in_window(site, event.at, window);
    let oldest = event.at.saturating_sub(window);
    let events = site.pending[AVAILABILITY]
        .triggers
        .iter()
        .filter(|e| e.at >= oldest)
        .count();
    let failures = from_windows.max(events);
    if failures >= t.upstream_failures as usize {
        let what = format!(
            "{failures} upstream failures within {} reached the threshold of {}",
            duration(window),
            t.upstream_failures
        );
        open_now(site, name, AVAILABILITY, event, what, start, changes);
    }
}

/// Upstream errors counted by `Traffic` windows within `window` before `at`.
fn upstream_in_window(site: &mut Site, at: Millis, window: Millis) -> usize {
    let oldest = at.saturating_sub(window);
    while site
        .upstream_windows
        .front()
        .is_some_and(|(t, _)| *t < oldest)
        || site.upstream_windows.len() > PENDING_CAP
    {
        site.upstream_windows.pop_front();
    }
    site.upstream_windows.iter().map(|(_, n)| *n as usize).sum()
}

/// An event that counts towards a threshold (injection or credential
/// stuffing): into the open incident, or into the window, opening the
/// incident when the count reaches the threshold.
fn count_towards(
    site: &mut Site,
    name: &str,
    index: usize,
    event: &Event,
    t: &Thresholds,
    changes: &mut Vec<Change>,
) {
    let (window, threshold, what) = match index {
        INJECTION => (t.injection_window_ms, t.injection_blocks, "WAF blocks"),
        _ => (t.login_window_ms, t.login_failures, "failed logins"),
    };
    let window = window as Millis;
    if let Some(open) = site.open[index].as_mut() {
        absorb(open, event);
        open.escalate(event.at, Vec::new(), changes);
        return;
    }
    let count = Pending::push(&mut site.pending[index].triggers, event, window);
    if count >= threshold as usize {
        let why = format!(
            "{count} {what} within {} reached the threshold of {threshold}",
            duration(window)
        );
        open_now(site, name, index, event, why, Start::Waiting, changes);
    }
}

/// An event that joins an open incident of kind `index`, or waits for one.
fn related(site: &mut Site, index: usize, event: &Event, window: Millis) {
    match site.open[index].as_mut() {
        Some(open) => absorb(open, event),
        None => {
            Pending::push(&mut site.pending[index].related, event, window);
        }
    }
}

/// What an opening incident starts with besides the events waiting for it.
enum Start {
    /// The event that crossed the threshold is already waiting.
    Waiting,
    /// The event itself (and a flood streak that was running).
    Event(Option<Streak>),
    /// A flood's streak of traffic windows, which includes the event.
    Streak(Streak),
}

/// Opens an incident of kind `index` at `event`'s time, with everything
/// waiting for it (and a flood's streak of traffic windows).
fn open_now(
    site: &mut Site,
    name: &str,
    index: usize,
    event: &Event,
    why: String,
    start: Start,
    changes: &mut Vec<Change>,
) {
    let kind = KINDS[index];
    let mut open = Box::new(Open::new(name, kind, event.at));
    for waiting in site.pending[index].take() {
        absorb(&mut open, &waiting);
    }
    let streak = match start {
        Start::Waiting => None,
        Start::Event(streak) => {
            absorb(&mut open, event);
            streak
        }
        Start::Streak(streak) => Some(streak),
    };
    if let Some(streak) = streak {
        let incident = &mut open.incident;
        incident.requests += u64::from(streak.requests);
        incident.blocked += u64::from(streak.blocked);
        incident.challenged += u64::from(streak.challenged);
        incident.limited += u64::from(streak.limited);
        incident.events += streak.windows;
        incident.first_event = incident.first_event.min(streak.first_at);
        incident.peak_rps = streak.peak_rps;
        incident.peak_at = streak.peak_at;
        open.peak_reported = streak.peak_rps;
    }
    if index == AVAILABILITY {
        site.upstream_windows.clear();
    }
    let (severity, _) = open.assess();
    open.incident.severity = severity;
    open.decide(event.at, format!("opened: {why}"));
    changes.push(Change::Opened(open.snapshot()));
    site.open[index] = Some(open);
}

/// Counts one event into an open incident: membership, and what the event
/// says about actions, rules, attacks and data.
fn absorb(open: &mut Open, event: &Event) {
    let at = event.at;
    open.member(at, event.client);
    let prefix = || {
        event
            .client
            .map(source_prefix)
            .unwrap_or_else(|| "an unknown client".into())
    };
    match &event.kind {
        EventKind::Traffic {
            window_ms,
            requests,
            blocked,
            challenged,
            limited,
            ..
        } => {
            let rps = f64::from(*requests) * 1000.0 / f64::from((*window_ms).max(1));
            open.add_traffic(at, rps, *requests, *blocked, *challenged, *limited);
        }
        EventKind::WafBlock { rules, attacks, .. } | EventKind::WafMatch { rules, attacks, .. } => {
            for rule in rules {
                open.rules.add(rule, 1);
            }
            for attack in attacks {
                open.attacks.add(attack.as_str(), 1);
            }
        }
        EventKind::Banned {
            until,
            level,
            reason,
        } => {
            if let Some(client) = event.client {
                if open.banned.len() < BANNED_CAP {
                    open.banned.insert(PrefixKey::of(client));
                }
            }
            let what = format!(
                "client prefix {} banned for {} (level {level}, {})",
                prefix(),
                duration(until.saturating_sub(at).max(0)),
                reason.replace('_', " ")
            );
            open.action(at, "bans", what);
        }
        EventKind::Unbanned => open.action(
            at,
            "unbans",
            format!("client prefix {} unbanned by an operator", prefix()),
        ),
        EventKind::ModeChanged {
            under_attack,
            reason,
        } => {
            let site = display_site(&open.incident.site);
            let what = if *under_attack {
                format!("site {site} switched to under-attack mode: {reason}")
            } else {
                format!("site {site} left under-attack mode: {reason}")
            };
            open.action(at, "mode changes", what);
        }
        EventKind::Leak {
            action, entities, ..
        } => {
            let found: Vec<String> = entities
                .iter()
                .map(|e| format!("{} x{}", e.kind, e.count))
                .collect();
            let (done, category) = leak_action(action);
            open.action(
                at,
                category,
                format!(
                    "{done} on {}: {}",
                    display_route(&event.route),
                    found.join(", ")
                ),
            );
            open.expose(action, entities);
        }
        EventKind::CanaryTrip { action, count, .. } => {
            let (done, category) = leak_action(action);
            let values = if *count == 1 {
                "1 canary value".to_string()
            } else {
                format!("{count} canary values")
            };
            open.action(
                at,
                category,
                format!("{done} on {}: {values}", display_route(&event.route)),
            );
            let entity = EntityCount {
                kind: "canary".into(),
                count: *count,
                distinct: *count,
                sample: String::new(),
            };
            open.expose(action, std::slice::from_ref(&entity));
        }
        _ => {}
    }
}

fn leak_action(action: &str) -> (&'static str, &'static str) {
    match action {
        "block" => ("response blocked", "responses blocked"),
        "redact" => ("response redacted", "responses redacted"),
        "alert" => ("response sent with it (alert mode)", "responses sent"),
        _ => ("response sent with it (unknown action)", "responses sent"),
    }
}

fn display_site(site: &str) -> &str {
    if site.is_empty() {
        "(none)"
    } else {
        site
    }
}

fn display_route(route: &str) -> &str {
    if route.is_empty() {
        "/"
    } else {
        route
    }
}

fn close_quiet(site: &mut Site, now: Millis, quiet: Millis, changes: &mut Vec<Change>) {
    for index in 0..KINDS.len() {
        let quiet_now = site.open[index]
            .as_ref()
            .is_some_and(|o| now.saturating_sub(o.incident.last_event) >= quiet);
        if !quiet_now {
            continue;
        }
        let Some(mut open) = site.open[index].take() else {
            continue;
        };
        open.incident.status = IncidentStatus::Closed;
        open.incident.closed_at = Some(now);
        open.decide(now, format!("closed after {} quiet", duration(quiet)));
        changes.push(Change::Closed(open.snapshot()));
        site.pending[index].clear();
        if index == FLOOD {
            site.streak = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(60_000), "60 s");
        assert_eq!(duration(300_000), "5 minutes");
        assert_eq!(duration(3000), "3 s");
        assert_eq!(duration(2 * 3_600_000), "2 hours");
        assert_eq!(duration(1500), "1.5 s");
    }

    #[test]
    fn prefix_keys_print_like_source_prefix() {
        for address in ["203.0.113.77", "2001:db8:1:2:3:4:5:6"] {
            let ip: IpAddr = address.parse().unwrap();
            let label = PrefixKey::of(ip).label();
            assert_eq!(label, source_prefix(ip));
            assert_eq!(PrefixKey::parse(&label), Some(PrefixKey::of(ip)));
        }
    }

    #[test]
    fn top_counter_keeps_the_busiest_past_its_cap() {
        let mut counter: TopCounter<u32> = TopCounter::new(100);
        for heavy in 0..5u32 {
            counter.add(&heavy, 1000 + u64::from(heavy));
        }
        for light in 100..10_000u32 {
            counter.add(&light, 1);
        }
        assert!(counter.counts.len() <= 100);
        let top = counter.top(5, u32::to_string);
        let keys: Vec<&str> = top.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["4", "3", "2", "1", "0"]);
        assert_eq!(top[0].count, 1004);
    }

    #[test]
    fn sources_estimate_past_the_cap() {
        let mut sources = Sources::new(0);
        let n = SOURCES_CAP as u32 + 50_000;
        for i in 0..n {
            sources.insert(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)));
            sources.insert(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i / 2)));
        }
        let count = sources.count() as f64;
        assert!(
            (count - f64::from(n)).abs() / f64::from(n) < 0.03,
            "estimate {count} for {n}"
        );
    }

    #[test]
    fn actions_past_the_cap_become_a_summary() {
        let mut open = Open::new("demo", IncidentKind::Flood, 0);
        for i in 0..(ACTIONS_CAP as i64 + 50) {
            open.action(i, "bans", format!("ban {i}"));
        }
        open.action(1000, "mode changes", "mode".into());
        assert_eq!(open.incident.actions.len(), ACTIONS_CAP);
        let last = &open.incident.actions[ACTIONS_CAP - 1].what;
        assert_eq!(
            last,
            "and 52 more actions not listed one by one (51 bans, 1 mode changes)"
        );
    }

    #[test]
    fn waf_blocks_are_not_flood_pressure() {
        let mut site = Site::default();
        for i in 0..40 {
            site.count_waf_block(10_000 + i * 10);
        }
        assert_eq!(site.waf_blocks_between(10_000, 11_000), 40);
        assert_eq!(site.waf_blocks_between(11_000, 12_000), 0);
    }
}
