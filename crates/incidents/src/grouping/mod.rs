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
//! [`Thresholds::quiet`] without events of its own.
//!
//! What opens what:
//!
//! | incident | opens when |
//! |---|---|
//! | flood | limited + challenged + non-WAF blocked requests stay at or over [`Thresholds::flood_rps`] per second in consecutive `Traffic` windows for [`Thresholds::flood_sustain`], or the site switches to under-attack mode |
//! | injection | [`Thresholds::injection_blocks`] WAF blocks at one site (from any clients) within [`Thresholds::injection_window`] |
//! | credential stuffing | [`Thresholds::login_failures`] failed logins within [`Thresholds::login_window`] |
//! | data leak | any leak event, at once |
//! | canary trip | any canary trip, at once (always critical: someone reached the planted record) |
//! | availability | [`Thresholds::upstream_failures`] upstream failures (events, or `upstream_errors` in `Traffic`, whichever is more) within [`Thresholds::upstream_window`] |
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
use std::time::Duration;

mod open;
mod tally;

use open::*;
use tally::*;

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

/// The longest window a threshold may name: a century, far beyond any
/// incident, and small enough that times plus windows never overflow.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration in the store's milliseconds.
fn millis(d: Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

/// The thresholds that open and close incidents.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// An open incident closes after this long without events of its own.
    /// Five minutes: attackers pausing between waves (bots that were
    /// challenged often back off a minute or two) stay in one incident, and
    /// the all-clear still goes out while the team is watching.
    #[serde(with = "humantime_serde")]
    pub quiet: Duration,
    /// Requests per second answered with a limit, a challenge or a non-WAF
    /// block that make a flood. A small organisation's site serves a few
    /// requests a second; 50 refused a second is far beyond any crawler or
    /// busy page, and far below what the gateway absorbs.
    pub flood_rps: u32,
    /// How long that rate must last. One burst (a page with many assets
    /// behind a shared proxy) is over within a second; three seconds of it is
    /// a flood, and the team hears within seconds.
    #[serde(with = "humantime_serde")]
    pub flood_sustain: Duration,
    /// WAF blocks at one site that make an injection campaign. A real user
    /// trips a false positive once or twice; five in a minute is probing.
    pub injection_blocks: u32,
    /// The window for `injection_blocks` (one minute).
    #[serde(with = "humantime_serde")]
    pub injection_window: Duration,
    /// Failed logins at one site that make credential stuffing. People
    /// mistype a few times; twenty a minute is a list being tried.
    pub login_failures: u32,
    /// The window for `login_failures` (one minute).
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Upstream failures that make an availability incident. A deploy or a
    /// restart costs a handful of 502s; twenty in a minute is an outage
    /// people notice.
    pub upstream_failures: u32,
    /// The window for `upstream_failures` (one minute).
    #[serde(with = "humantime_serde")]
    pub upstream_window: Duration,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            quiet: Duration::from_secs(5 * 60),
            flood_rps: 50,
            flood_sustain: Duration::from_secs(3),
            injection_blocks: 5,
            injection_window: Duration::from_secs(60),
            login_failures: 20,
            login_window: Duration::from_secs(60),
            upstream_failures: 20,
            upstream_window: Duration::from_secs(60),
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
            ("quiet", self.quiet),
            ("injection_window", self.injection_window),
            ("login_window", self.login_window),
            ("upstream_window", self.upstream_window),
        ] {
            if value.as_millis() == 0 || value > LONGEST {
                problems.push(format!(
                    "{name} is {}; it must be at least \"1ms\" and at most \"{}\"",
                    humantime::format_duration(value),
                    humantime::format_duration(LONGEST)
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
        for value in [
            &mut self.quiet,
            &mut self.flood_sustain,
            &mut self.injection_window,
            &mut self.login_window,
            &mut self.upstream_window,
        ] {
            *value = (*value).clamp(Duration::from_millis(1), LONGEST);
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

    /// Closes the incidents quiet for [`Thresholds::quiet`] at `now`.
    pub fn tick(&mut self, now: Millis) -> Vec<Change> {
        let mut changes = Vec::new();
        let quiet = millis(self.thresholds.quiet);
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
        close_quiet(site, event.at, millis(t.quiet), &mut changes);
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
                    let window = millis(t.upstream_window);
                    Pending::push(&mut site.pending[AVAILABILITY].triggers, event, window);
                    availability(site, name, event, t, Start::Waiting, &mut changes);
                }
            }
            EventKind::Challenged | EventKind::RateLimited { .. } | EventKind::Queued => {
                related(site, FLOOD, event, FLOOD_LOOKBACK_MS);
            }
            EventKind::Banned { reason, .. } => match reason.as_str() {
                "waf" => related(site, INJECTION, event, millis(t.injection_window)),
                "rate_limits" if site.open[FLOOD].is_none() && site.open[CREDENTIALS].is_some() => {
                    related(site, CREDENTIALS, event, millis(t.login_window))
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
            | EventKind::OperatorAction { .. }
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
            if lasted >= millis(t.flood_sustain) {
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
    let window = millis(t.upstream_window);
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
        INJECTION => (t.injection_window, t.injection_blocks, "WAF blocks"),
        _ => (t.login_window, t.login_failures, "failed logins"),
    };
    let window = millis(window);
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
mod tests;
