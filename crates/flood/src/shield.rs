//! The flood layer's entry point: one `Shield` per gateway.
//!
//! This file is longer than the project's usual thousand lines on purpose.
//! `Shield` is one type whose methods (admission, bans, challenges, events,
//! mode) share private helpers, counter indices and the site and route
//! tables. A trial split into `shield/{build,bans,challenge,events,mode}.rs`
//! widened five helpers to `pub(super)` and added 96 lines of imports and
//! `impl` wrappers, while the request's path already reads top to bottom in
//! `decide`; it was not taken.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::addr::{canonical, AllowList, PrefixLens};
use crate::config::FloodConfig;
use crate::detector::{Detector, Learned, ModeChange, ModeReason, UpstreamOutcome};
use crate::error::{Error, ErrorKind};
use crate::gcra::{Rate, Take};
use crate::keys::Keyring;
use crate::pages::{self, ChallengePage};
use crate::state::{BanReason, BanRecord, MemoryLimits, MemoryState, State};
use crate::stripe::Striped;
use crate::table::{lock, KeyKind, LimitKey};
use crate::time::{retry_after_secs, Time};
use crate::token::{self, Reject};
use crate::waiting::{Admission, Gate, Permit};

/// A site, by index into the configuration; resolve names once with
/// `Shield::site_id` when the gateway loads its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SiteId(pub u32);

/// A route of a site, by index; `RouteId::NONE` for requests on routes the
/// flood configuration does not list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RouteId(pub u32);

impl RouteId {
    /// No configured route: only the site's limits apply.
    pub const NONE: RouteId = RouteId(u32::MAX);
}

/// No-script clearances one address prefix may redeem: five in a burst,
/// then one every twelve seconds. A household or office behind one prefix
/// gets through; a flood tool that waits out tokens in bulk does not.
const NOJS_CLEARANCES_PER_PREFIX: Rate = Rate {
    interval: 12_000_000_000,
    tolerance: 60_000_000_000,
};

/// Addresses of one prefix banned for rate limits that ban the whole
/// prefix: eight within ten minutes. A household or office behind one /24
/// (or /64) never has eight machines each hammering past its own limit; a
/// botnet's share of a hosting range does.
const FLOOD_BANS_PER_PREFIX: Rate = Rate {
    interval: 75_000_000_000,
    tolerance: 525_000_000_000,
};

/// Where a prefix's ban is kept in the ban table, which is keyed by address:
/// in `100::/64`, the discard-only prefix (RFC 6666) that is never a
/// client's source. An IPv6 prefix's upper 64 bits become the lower 64; an
/// IPv4 prefix sits under `ffff` in the top bits there, a multicast pattern
/// no /64 of a client has.
fn prefix_ban_key(prefix: IpAddr) -> IpAddr {
    let low: u64 = match prefix {
        IpAddr::V4(a) => 0xffff_0000_0000_0000 | u64::from(u32::from(a)),
        IpAddr::V6(a) => (u128::from(a) >> 64) as u64,
    };
    IpAddr::V6(std::net::Ipv6Addr::from(
        (0x0100u128 << 112) | u128::from(low),
    ))
}

/// The prefix a ban key of [`prefix_ban_key`] stands for, if it is one.
fn prefix_of_ban_key(key: IpAddr) -> Option<IpAddr> {
    let IpAddr::V6(a) = key else {
        return None;
    };
    let bits = u128::from(a);
    if bits >> 64 != 0x0100u128 << 48 {
        return None;
    }
    let low = bits as u64;
    Some(if low >> 48 == 0xffff {
        IpAddr::V4(std::net::Ipv4Addr::from(low as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(u128::from(low) << 64))
    })
}

/// The longest a no-script visitor is asked to wait.
const MAX_NOJS_WAIT: Duration = Duration::from_secs(60);

/// The no-script wait at a given load (arrivals over the detector's
/// normal): the configured wait at normal load, growing with the load up to
/// [`MAX_NOJS_WAIT`], so a flood that waits pays in time as one that solves
/// pays in work.
pub fn nojs_wait_for_load(base: Duration, load: f64) -> Duration {
    let factor = if load.is_finite() {
        load.clamp(1.0, 1000.0)
    } else {
        1.0
    };
    base.mul_f64(factor).min(MAX_NOJS_WAIT.max(base))
}

/// What the gateway knows about a request when it asks for admission.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The client's address as identity resolved it (socket address, or the
    /// forwarded address when the peer is a trusted proxy).
    pub client: IpAddr,
    /// The site.
    pub site: SiteId,
    /// The route, or `RouteId::NONE`.
    pub route: RouteId,
    /// The request is on an API route (by route config only: a header is the
    /// client's to choose). Challenged like any other under attack (the
    /// caller answers in a form an API client can act on), never queued.
    pub is_api: bool,
    /// The client looks like a browser (`Accept: text/html`, a navigation):
    /// it can wait in the waiting room.
    pub is_browser: bool,
    /// The value of the `rampart_clearance` cookie, if sent.
    pub clearance_cookie: Option<&'a str>,
    /// The value of the `rampart_ticket` cookie, if sent.
    pub ticket_cookie: Option<&'a str>,
    /// The time the request arrived.
    pub now: Time,
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// The site's per-client limit.
    Client,
    /// The site's per-prefix limit.
    Prefix,
    /// The route's per-client limit.
    RouteClient,
    /// The route's per-prefix limit.
    RoutePrefix,
    /// The route's limit for all clients together.
    RouteTotal,
}

/// A challenge to send to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The proof-of-work token.
    pub token: String,
    /// Leading zero bits required.
    pub difficulty: u8,
    /// The no-script fallback token.
    pub wait_token: String,
    /// Seconds before the fallback token becomes valid.
    pub wait_secs: u32,
}

impl Challenge {
    /// The challenge page for this challenge; `return_to` is the request's
    /// path and query, which the page reloads once cleared.
    pub fn page(&self, return_to: &str) -> String {
        pages::challenge_page(&ChallengePage {
            token: &self.token,
            difficulty: self.difficulty,
            wait_token: &self.wait_token,
            wait_secs: self.wait_secs,
            return_to,
        })
    }
}

/// The flood layer's verdict on one request.
#[derive(Debug)]
pub enum FloodVerdict {
    /// Go on to the next layer. Keep the permit, if any, until the upstream
    /// response is finished: dropping it frees the route's slot.
    Continue {
        /// The route's concurrency slot, for capped routes.
        permit: Option<Permit>,
    },
    /// Over a rate limit: answer 429 with `Retry-After`.
    Limited {
        /// Seconds until a request would be allowed.
        retry_after_secs: u32,
        /// Which limit.
        scope: LimitScope,
    },
    /// No valid clearance while one is required: answer with
    /// `Challenge::page` (or a bare 403 for non-browsers).
    Challenge(Challenge),
    /// The route is at capacity: answer 503 with `pages::waiting_room_page`,
    /// `Retry-After: refresh_secs`, and set the ticket cookie.
    WaitingRoom {
        /// Place in the queue, 1 being next.
        position: u32,
        /// Seconds between refreshes.
        refresh_secs: u32,
        /// The value for the `rampart_ticket` cookie.
        ticket_cookie: String,
    },
    /// At capacity and no queueing possible (API client, or queue full):
    /// answer 503 with `Retry-After` (and `pages::busy_page` for browsers).
    Unavailable {
        /// Seconds to wait.
        retry_after_secs: u32,
    },
    /// The client is banned: answer 403 (or drop the connection).
    Banned {
        /// When the ban ends.
        until: Time,
    },
}

/// Something worth logging; drain with `Shield::drain_events`. As JSON it
/// is one object whose `event` names it: `mode`, `ban` or `unban`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event")]
#[non_exhaustive]
pub enum Event {
    /// A site entered or left under-attack mode.
    #[serde(rename = "mode")]
    ModeChanged {
        /// The site's name.
        site: Arc<str>,
        /// The new mode.
        under_attack: bool,
        /// Why it changed.
        reason: ModeReason,
        /// When.
        at: Time,
    },
    /// A client was banned.
    #[serde(rename = "ban")]
    Banned {
        /// The client.
        client: IpAddr,
        /// The ban.
        #[serde(flatten)]
        record: BanRecord,
        /// When.
        at: Time,
    },
    /// An operator lifted a ban.
    #[serde(rename = "unban")]
    Unbanned {
        /// The client.
        client: IpAddr,
        /// When.
        at: Time,
    },
}

/// What the gateway reports against a client towards a ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strike {
    /// The WAF blocked one of its requests.
    Waf,
}

/// A freshly issued clearance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clearance {
    /// The `rampart_clearance` cookie's value.
    pub cookie_value: String,
    /// Its lifetime in seconds.
    pub max_age_secs: u64,
}

impl Clearance {
    /// A complete `Set-Cookie` header value. `HttpOnly` because no script of
    /// ours reads it; `SameSite=Lax` so a visitor following a link from a
    /// newsletter arrives cleared.
    pub fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
            pages::CLEARANCE_COOKIE,
            self.cookie_value,
            self.max_age_secs
        )
    }
}

/// Counters for the metrics endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests let through.
    pub continued: u64,
    /// Requests refused by a rate limit.
    pub limited: u64,
    /// Challenges issued.
    pub challenged: u64,
    /// Requests sent to the waiting room.
    pub queued: u64,
    /// Requests refused for capacity.
    pub unavailable: u64,
    /// Requests from banned clients.
    pub banned: u64,
    /// Events dropped because the buffer was full.
    pub events_dropped: u64,
    /// Clearances issued (proofs of work accepted and wait tokens redeemed).
    pub cleared: u64,
    /// Solutions and wait tokens refused (wrong, tampered, expired, replayed,
    /// too early). A high count next to few clearances means bots are trying.
    pub rejected: u64,
}

struct Route {
    name: String,
    api: bool,
    always_challenge: bool,
    /// Index unique across all sites, the scope of route keys.
    global: u32,
    client: Option<Rate>,
    prefix: Option<Rate>,
    total: Option<Rate>,
    gate: Option<Arc<Gate>>,
}

struct Site {
    name: Arc<str>,
    allow: AllowList,
    client: Option<Rate>,
    prefix: Option<Rate>,
    detector: Detector,
    /// The site's own gate: its learned capacity (moved by the detector) or
    /// its configured `max_in_flight`. Routes with a gate of their own use
    /// theirs instead.
    capacity: Option<Arc<Gate>>,
    /// The ticket scope of the site's gate, apart from every route's.
    capacity_scope: u32,
    routes: Vec<Route>,
}

const CONTINUED: usize = 0;
const LIMITED: usize = 1;
const CHALLENGED: usize = 2;
const QUEUED: usize = 3;
const UNAVAILABLE: usize = 4;
const BANNED: usize = 5;
const EVENTS_DROPPED: usize = 6;
const CLEARED: usize = 7;
const REJECTED: usize = 8;

/// The flood layer: rate limits, bans, challenge, concurrency caps and the
/// attack detector for every site of one gateway.
pub struct Shield<S: State = MemoryState> {
    state: S,
    keys: RwLock<Keyring>,
    allow: AllowList,
    deny: AllowList,
    lens: PrefixLens,
    sites: Vec<Site>,
    site_names: HashMap<String, SiteId>,
    limit_strikes: Option<Rate>,
    waf_strikes: Option<Rate>,
    ladder: Vec<Duration>,
    remember: Duration,
    clearance_life: Duration,
    token_life: Duration,
    min_difficulty: u8,
    max_difficulty: u8,
    nojs_wait: Duration,
    events: Mutex<VecDeque<Event>>,
    max_events: usize,
    nonce_counter: AtomicU64,
    counters: Striped<9>,
}

fn rate_of(l: &crate::gcra::Limit, what: &str, errors: &mut Vec<Error>) -> Option<Rate> {
    if l.requests == 0 {
        return None;
    }
    match l.rate() {
        Ok(r) => Some(r),
        Err(e) => {
            errors.push(Error::new(
                ErrorKind::BadConfig,
                format!("{what}: {}", e.detail()),
            ));
            None
        }
    }
}

impl Shield<MemoryState> {
    /// A shield with the in-memory state sized from the configuration.
    pub fn in_memory(
        config: &FloodConfig,
        keys: Keyring,
        now: Time,
    ) -> Result<Shield<MemoryState>, Vec<Error>> {
        let state = MemoryState::new(MemoryLimits {
            max_keys: config.max_tracked_keys,
            max_bans: config.max_bans,
            ..MemoryLimits::default()
        });
        Shield::new(config, state, keys, now)
    }
}

impl<S: State> Shield<S> {
    /// Builds the shield, checking the whole configuration and reporting every
    /// problem at once. `now` seeds the waiting-room queues' epochs.
    pub fn new(
        config: &FloodConfig,
        state: S,
        keys: Keyring,
        now: Time,
    ) -> Result<Shield<S>, Vec<Error>> {
        let mut errors = Vec::new();
        let bad = |s: String| Error::new(ErrorKind::BadConfig, s);
        let allow = AllowList::parse(&config.allow).unwrap_or_else(|e| {
            errors.extend(e);
            AllowList::default()
        });
        let deny = AllowList::parse(&config.deny).unwrap_or_else(|e| {
            errors.extend(e);
            AllowList::default()
        });
        if config.prefix_v4 > 32 || config.prefix_v6 > 128 {
            errors.push(bad(
                "prefix_v4 must be at most 32 and prefix_v6 at most 128".into(),
            ));
        }
        let c = &config.challenge;
        if c.min_difficulty > c.max_difficulty || c.max_difficulty > 32 {
            errors.push(bad("challenge: min_difficulty must not exceed max_difficulty, which must be at most 32".into()));
        }
        if config.bans.ladder.is_empty() {
            errors.push(bad("bans.ladder must list at least one duration".into()));
        }
        let limit_strikes = rate_of(
            &config.bans.limit_strikes,
            "bans.limit_strikes",
            &mut errors,
        );
        let waf_strikes = rate_of(&config.bans.waf_strikes, "bans.waf_strikes", &mut errors);

        let mut sites = Vec::with_capacity(config.sites.len());
        let mut site_names = HashMap::new();
        let mut global_route = 0u32;
        for (i, sc) in config.sites.iter().enumerate() {
            if sc.name.is_empty() {
                errors.push(bad(format!("site #{}: name is empty", i + 1)));
            }
            if site_names
                .insert(sc.name.clone(), SiteId(i as u32))
                .is_some()
            {
                errors.push(bad(format!("site {:?} is listed twice", sc.name)));
            }
            let site_allow = AllowList::parse(&sc.allow).unwrap_or_else(|e| {
                errors.extend(e);
                AllowList::default()
            });
            // The site's gate: fixed when configured, else learned (the
            // detector moves it every second), else none.
            let capacity_scope = u32::MAX - i as u32;
            let site_gate = |cap: u32| {
                Gate::new(
                    cap,
                    10_000,
                    Duration::from_secs(5),
                    now.as_nanos() ^ u64::from(capacity_scope),
                )
            };
            let (capacity, learned_gate) = match sc.max_in_flight {
                Some(0) => {
                    errors.push(bad(format!(
                        "site {:?}: max_in_flight must be at least 1",
                        sc.name
                    )));
                    (None, None)
                }
                Some(cap) => (Some(site_gate(cap)), None),
                None if sc.learn_capacity => {
                    let g = site_gate(crate::detector::INITIAL_IN_FLIGHT as u32);
                    (Some(Arc::clone(&g)), Some(g))
                }
                None => (None, None),
            };
            let detector = match Detector::new(&sc.detector, &sc.schedule, &sc.name, learned_gate) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            };
            let mut routes = Vec::with_capacity(sc.routes.len());
            let mut route_names = std::collections::HashSet::new();
            for rc in &sc.routes {
                let what = format!("site {:?} route {:?}", sc.name, rc.name);
                if !route_names.insert(rc.name.clone()) {
                    errors.push(bad(format!("{what} is listed twice")));
                }
                let gate = match rc.max_in_flight {
                    Some(0) => {
                        errors.push(bad(format!("{what}: max_in_flight must be at least 1")));
                        None
                    }
                    Some(cap) => {
                        // Refreshing every five seconds keeps an idle slot
                        // short without turning the queue into a flood.
                        let refresh = rc
                            .refresh
                            .unwrap_or(Duration::from_secs(5))
                            .max(Duration::from_secs(1));
                        // Ten thousand places: a big rally's worth of
                        // donors, at 24 bytes each.
                        let queue = rc.queue.unwrap_or(10_000);
                        Some(Gate::new(
                            cap,
                            queue,
                            refresh,
                            now.as_nanos() ^ u64::from(global_route),
                        ))
                    }
                    None => None,
                };
                routes.push(Route {
                    name: rc.name.clone(),
                    api: rc.api,
                    always_challenge: rc.always_challenge,
                    global: global_route,
                    client: rc
                        .client
                        .as_ref()
                        .and_then(|l| rate_of(l, &format!("{what}: client"), &mut errors)),
                    prefix: rc
                        .prefix
                        .as_ref()
                        .and_then(|l| rate_of(l, &format!("{what}: prefix"), &mut errors)),
                    total: rc
                        .total
                        .as_ref()
                        .and_then(|l| rate_of(l, &format!("{what}: total"), &mut errors)),
                    gate,
                });
                global_route += 1;
            }
            let client = rate_of(
                &sc.client,
                &format!("site {:?}: client", sc.name),
                &mut errors,
            );
            let prefix = rate_of(
                &sc.prefix,
                &format!("site {:?}: prefix", sc.name),
                &mut errors,
            );
            if let Some(detector) = detector {
                sites.push(Site {
                    name: Arc::from(sc.name.as_str()),
                    allow: site_allow,
                    client,
                    prefix,
                    detector,
                    capacity,
                    capacity_scope,
                    routes,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Shield {
            state,
            keys: RwLock::new(keys),
            allow,
            deny,
            lens: PrefixLens {
                v4: config.prefix_v4,
                v6: config.prefix_v6,
            },
            sites,
            site_names,
            limit_strikes,
            waf_strikes,
            ladder: config.bans.ladder.iter().map(|d| **d).collect(),
            remember: config.bans.remember,
            clearance_life: c.clearance.max(Duration::from_secs(1)),
            token_life: c.token.max(Duration::from_secs(1)),
            min_difficulty: c.min_difficulty,
            max_difficulty: c.max_difficulty,
            nojs_wait: c.nojs_wait,
            events: Mutex::new(VecDeque::with_capacity(config.max_events.min(4096))),
            max_events: config.max_events.max(1),
            nonce_counter: AtomicU64::new(0),
            counters: Striped::default(),
        })
    }

    /// The site with this name.
    pub fn site_id(&self, name: &str) -> Option<SiteId> {
        self.site_names.get(name).copied()
    }

    /// The route with this name on a site.
    pub fn route_id(&self, site: SiteId, name: &str) -> Option<RouteId> {
        let site = self.sites.get(site.0 as usize)?;
        site.routes
            .iter()
            .position(|r| r.name == name)
            .map(|i| RouteId(i as u32))
    }

    /// The shared state backend.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Decides whether a request may proceed. Call it once per request in
    /// the `request_filter` phase, after identity has resolved the client
    /// address and before the WAF, so a flood is refused before any costly
    /// inspection. Order: allowlist (always wins), denylist and bans, rate limits,
    /// challenge, concurrency cap. Unknown sites are let through: the flood
    /// layer only limits what it was configured for.
    pub fn admit(&self, f: &RequestFacts<'_>) -> FloodVerdict {
        let v = self.decide(f);
        let which = match &v {
            FloodVerdict::Continue { .. } => CONTINUED,
            FloodVerdict::Limited { .. } => LIMITED,
            FloodVerdict::Challenge(_) => CHALLENGED,
            FloodVerdict::WaitingRoom { .. } => QUEUED,
            FloodVerdict::Unavailable { .. } => UNAVAILABLE,
            FloodVerdict::Banned { .. } => BANNED,
        };
        self.counters.add(which, 1);
        v
    }

    fn decide(&self, f: &RequestFacts<'_>) -> FloodVerdict {
        let Some(site) = self.sites.get(f.site.0 as usize) else {
            return FloodVerdict::Continue { permit: None };
        };
        let now = f.now;
        let client = canonical(f.client);
        let route = site.routes.get(f.route.0 as usize);
        site.detector
            .record_request(client, now, &mut |c| self.mode_event(site, c, now));

        // The gate this request's upstream capacity is counted in: its
        // route's, else the site's.
        let gate = route
            .and_then(|r| r.gate.as_ref().map(|g| (r.global, g)))
            .or_else(|| site.capacity.as_ref().map(|g| (site.capacity_scope, g)));
        if self.allow.contains(client) || site.allow.contains(client) {
            let permit = gate.map(|(_, g)| g.force());
            return FloodVerdict::Continue { permit };
        }
        if self.deny.contains(client) {
            // A configured range is banned for as long as it is configured.
            return FloodVerdict::Banned {
                until: Time::from_nanos(u64::MAX),
            };
        }
        let prefix = self.lens.prefix_of(client);
        for key in [client, prefix_ban_key(prefix)] {
            if let Some(ban) = self.state.ban_get(key, now) {
                if ban.active(now) {
                    return FloodVerdict::Banned { until: ban.until };
                }
            }
        }

        let site_scope = f.site.0;
        let route_scope = route.map_or(0, |r| r.global);
        let candidates = [
            (
                site.client,
                KeyKind::Client,
                site_scope,
                Some(client),
                LimitScope::Client,
            ),
            (
                site.prefix,
                KeyKind::Prefix,
                site_scope,
                Some(prefix),
                LimitScope::Prefix,
            ),
            (
                route.and_then(|r| r.client),
                KeyKind::RouteClient,
                route_scope,
                Some(client),
                LimitScope::RouteClient,
            ),
            (
                route.and_then(|r| r.prefix),
                KeyKind::RoutePrefix,
                route_scope,
                Some(prefix),
                LimitScope::RoutePrefix,
            ),
        ];
        // Gather the limits that apply into a fixed array (no allocation) and
        // take them in one call, so the backend can overlap or batch them.
        let placeholder = (
            LimitKey::new(KeyKind::Client, 0, None),
            Rate {
                interval: 1,
                tolerance: 1,
            },
        );
        let mut keys = [placeholder; 4];
        let mut scopes = [LimitScope::Client; 4];
        let mut n = 0;
        for (rate, kind, scope, addr, which) in candidates {
            if let Some(rate) = rate {
                keys[n] = (LimitKey::new(kind, scope, addr), rate);
                scopes[n] = which;
                n += 1;
            }
        }
        if let Err((i, retry_after)) = self.state.take_tokens(&keys[..n], now) {
            // Only the client's own limits count towards its ban: a prefix
            // or route-total refusal may be its neighbours' doing (a
            // university behind one /24), and banning each of them for it
            // would turn a limit into an outage for a whole campus.
            if matches!(scopes[i], LimitScope::Client | LimitScope::RouteClient) {
                self.strike_limits(client, now);
            }
            return FloodVerdict::Limited {
                retry_after_secs: retry_after_secs(retry_after),
                scope: scopes[i],
            };
        }

        let is_api = f.is_api || route.is_some_and(|r| r.api);
        let under_attack = site.detector.under_attack();
        // Above the upstream's capacity a visitor without clearance gets the
        // challenge, not a place in the queue: the places go to clients who
        // already hold clearance, and a flood of new addresses spends
        // nothing of the upstream, even in the seconds before the detector
        // switches the site.
        let over_capacity = !under_attack && gate.is_some_and(|(_, g)| g.busy(now));
        let must_clear = under_attack || over_capacity || route.is_some_and(|r| r.always_challenge);
        // API clients are challenged too: a request the challenge skipped
        // for its route or its headers would be a free pass for any flood
        // that sets them. The caller answers an API client in a form it can
        // act on (a status, `Retry-After` and the challenge in JSON).
        if must_clear {
            let cleared = f.clearance_cookie.is_some_and(|c| {
                let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
                token::verify_clearance(&keys, &site.name, prefix, c, now).is_ok()
            });
            if !cleared {
                if over_capacity {
                    site.detector.record_turned_away();
                }
                return FloodVerdict::Challenge(self.new_challenge(site, prefix, now));
            }
        }

        // The route's total is what the origin can take, so only requests
        // that would reach it spend it: taken after the challenge, a flood
        // that is being challenged cannot use it up and lock out the
        // visitors who cleared.
        if let Some(total) = route.and_then(|r| r.total) {
            let key = [(LimitKey::new(KeyKind::Route, route_scope, None), total)];
            if let Err((_, retry_after)) = self.state.take_tokens(&key, now) {
                return FloodVerdict::Limited {
                    retry_after_secs: retry_after_secs(retry_after),
                    scope: LimitScope::RouteTotal,
                };
            }
        }

        let Some((route_idx, gate)) = gate else {
            return FloodVerdict::Continue { permit: None };
        };
        let browser = f.is_browser && !is_api;
        let ticket = if browser {
            f.ticket_cookie.and_then(|c| {
                let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
                token::check_ticket(&keys, &site.name, route_idx, gate.epoch, prefix, c)
            })
        } else {
            None
        };
        match gate.try_enter(ticket, browser, now) {
            Admission::Enter(permit) => FloodVerdict::Continue {
                permit: Some(permit),
            },
            Admission::Wait {
                ticket,
                position,
                refresh,
            } => {
                site.detector.record_turned_away();
                let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
                let ticket_cookie =
                    token::issue_ticket(&keys, &site.name, route_idx, gate.epoch, prefix, ticket);
                FloodVerdict::WaitingRoom {
                    position,
                    refresh_secs: retry_after_secs(refresh),
                    ticket_cookie,
                }
            }
            Admission::Full => {
                site.detector.record_turned_away();
                FloodVerdict::Unavailable {
                    retry_after_secs: retry_after_secs(gate.refresh()),
                }
            }
        }
    }

    fn new_challenge(&self, site: &Site, prefix: IpAddr, now: Time) -> Challenge {
        // (The no-script wait grows with the load, as the work does.)
        let load = site.detector.load();
        // One more bit of work for every doubling of load above normal.
        let extra = if load > 1.0 {
            load.log2().floor().clamp(0.0, 32.0) as u8
        } else {
            0
        };
        let difficulty = self
            .min_difficulty
            .saturating_add(extra)
            .min(self.max_difficulty);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let nonce = self.nonce(&keys, prefix, now, 0);
        let wait_nonce = self.nonce(&keys, prefix, now, 1);
        let c = token::issue_challenge(&keys, &site.name, prefix, nonce, difficulty, now);
        let wait = nojs_wait_for_load(self.nojs_wait, f64::from(load));
        let wait_token = token::issue_wait(&keys, &site.name, prefix, wait_nonce, now.plus(wait));
        Challenge {
            token: c.token,
            difficulty,
            wait_token,
            wait_secs: u32::try_from(wait.as_secs()).unwrap_or(u32::MAX),
        }
    }

    /// A nonce nobody can predict (a MAC under the secret key) and that never
    /// repeats within a process (a counter inside the MAC input).
    fn nonce(&self, keys: &Keyring, prefix: IpAddr, now: Time, purpose: u8) -> [u8; 16] {
        let n = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let (_, tag) = keys.sign(
            b"nonce",
            &[
                &n.to_be_bytes(),
                &now.as_nanos().to_be_bytes(),
                &crate::addr::addr_bytes(prefix),
                &[purpose],
            ],
        );
        tag
    }

    /// Checks a posted proof-of-work solution (the `token` and `solution`
    /// fields posted to `pages::VERIFY_PATH`) and issues a clearance. The
    /// challenge's nonce is claimed, so the same solution works only once.
    /// Answer success with 204 and `Clearance::set_cookie`, failure with 403.
    pub fn verify_solution(
        &self,
        site: SiteId,
        client: IpAddr,
        token: &str,
        solution: &str,
        now: Time,
    ) -> Result<Clearance, Reject> {
        let r = self.check_solution(site, client, token, solution, now);
        self.counters
            .add(if r.is_ok() { CLEARED } else { REJECTED }, 1);
        r
    }

    fn check_solution(
        &self,
        site: SiteId,
        client: IpAddr,
        token: &str,
        solution: &str,
        now: Time,
    ) -> Result<Clearance, Reject> {
        let site = self.sites.get(site.0 as usize).ok_or(Reject::Invalid)?;
        let prefix = self.lens.prefix_of(client);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let solved = token::check_solution(
            &keys,
            &site.name,
            prefix,
            token,
            solution,
            self.token_life,
            now,
        )?;
        if !self.state.claim_nonce(solved.nonce, solved.expires, now) {
            return Err(Reject::Replayed);
        }
        Ok(self.clearance(&keys, site, prefix, now))
    }

    /// Redeems a no-script wait token (the `t` parameter at
    /// `pages::WAIT_PATH`). On success redirect (303) to
    /// `pages::safe_return_path(r)` with `Clearance::set_cookie`; on
    /// `Reject::TooEarly` answer `pages::wait_page`; otherwise 403.
    pub fn redeem_wait(
        &self,
        site: SiteId,
        client: IpAddr,
        token: &str,
        now: Time,
    ) -> Result<Clearance, Reject> {
        let r = self.check_wait(site, client, token, now);
        self.counters
            .add(if r.is_ok() { CLEARED } else { REJECTED }, 1);
        r
    }

    fn check_wait(
        &self,
        site: SiteId,
        client: IpAddr,
        token: &str,
        now: Time,
    ) -> Result<Clearance, Reject> {
        let site_index = site.0;
        let site = self.sites.get(site.0 as usize).ok_or(Reject::Invalid)?;
        let prefix = self.lens.prefix_of(client);
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let solved = token::check_wait(&keys, &site.name, prefix, token, self.token_life, now)?;
        let cap = [(
            LimitKey::new(KeyKind::WaitPrefix, site_index, Some(prefix)),
            NOJS_CLEARANCES_PER_PREFIX,
        )];
        if self.state.take_tokens(&cap, now).is_err() {
            return Err(Reject::PrefixCapped);
        }
        if !self.state.claim_nonce(solved.nonce, solved.expires, now) {
            return Err(Reject::Replayed);
        }
        Ok(self.clearance(&keys, site, prefix, now))
    }

    fn clearance(&self, keys: &Keyring, site: &Site, prefix: IpAddr, now: Time) -> Clearance {
        let expires = now.plus(self.clearance_life);
        Clearance {
            cookie_value: token::issue_clearance(keys, &site.name, prefix, expires),
            max_age_secs: self.clearance_life.as_secs(),
        }
    }

    /// Feeds the detector and the learned capacity one upstream response.
    /// Call it in the `logging` phase for requests that reached the
    /// upstream; [`UpstreamOutcome::of_status`] classifies the status.
    pub fn observe_response(
        &self,
        site: SiteId,
        latency: Duration,
        outcome: UpstreamOutcome,
        now: Time,
    ) {
        if let Some(s) = self.sites.get(site.0 as usize) {
            s.detector
                .record_response(latency, outcome, now, &mut |c| self.mode_event(s, c, now));
        }
    }

    /// What every site's detector has learned (baseline, recent latency,
    /// capacity, mode), by site name, for the gateway to save in its state
    /// directory.
    pub fn learned(&self, now: Time) -> BTreeMap<String, Learned> {
        self.sites
            .iter()
            .map(|s| (s.name.to_string(), s.detector.learned(now)))
            .collect()
    }

    /// Takes up what an earlier run learned, for the sites that are still
    /// configured. A site saved under attack moments ago starts under attack
    /// (reported as `ModeReason::Restored`).
    pub fn restore(&self, saved: &BTreeMap<String, Learned>, now: Time) {
        for s in &self.sites {
            if let Some(l) = saved.get(&*s.name) {
                s.detector
                    .restore(l, now, &mut |c| self.mode_event(s, c, now));
            }
        }
    }

    /// A site's capacity gate now: the limit on requests in flight, the
    /// ceiling on requests a second (once learned), and requests in flight.
    pub fn capacity(&self, site: SiteId) -> Option<(u32, Option<f64>, u32)> {
        let g = self.sites.get(site.0 as usize)?.capacity.as_ref()?;
        let (cap, rate) = g.limits();
        Some((cap, rate, g.in_flight()))
    }

    /// Closes detector buckets and applies schedules for every site. Call it
    /// about once a second from a background task, so modes change even when
    /// traffic stops.
    pub fn tick(&self, now: Time) {
        for s in &self.sites {
            s.detector.roll(now, &mut |c| self.mode_event(s, c, now));
        }
    }

    /// Whether a site is in under-attack mode.
    pub fn under_attack(&self, site: SiteId) -> bool {
        self.sites
            .get(site.0 as usize)
            .is_some_and(|s| s.detector.under_attack())
    }

    /// A site's manual override, as [`set_mode`](Self::set_mode) set it.
    pub fn manual_mode(&self, site: SiteId) -> Option<bool> {
        self.sites
            .get(site.0 as usize)
            .and_then(|s| s.detector.manual())
    }

    /// Switches a site into (`Some(true)`) or out of (`Some(false)`)
    /// under-attack mode by hand, overriding detector and schedule, or hands
    /// control back to them (`None`).
    pub fn set_mode(&self, site: SiteId, manual: Option<bool>, now: Time) {
        if let Some(s) = self.sites.get(site.0 as usize) {
            s.detector
                .set_manual(manual, now, &mut |c| self.mode_event(s, c, now));
        }
    }

    /// Reports a strike against a client (a WAF block). Enough strikes within
    /// the configured window ban it. Allowlisted clients are never banned.
    pub fn report_strike(&self, client: IpAddr, strike: Strike, now: Time) {
        let client = canonical(client);
        let Strike::Waf = strike;
        if let Some(rate) = self.waf_strikes {
            self.strike(client, rate, 1, BanReason::Waf, now);
        }
    }

    fn strike_limits(&self, client: IpAddr, now: Time) {
        if let Some(rate) = self.limit_strikes {
            self.strike(client, rate, 0, BanReason::RateLimits, now);
        }
    }

    /// Counts a strike against one address and bans that address when its
    /// strikes run over. Only a ban for rate limits (flooding) also counts
    /// towards its prefix: enough of a prefix's addresses banned for it
    /// ban the prefix. A WAF ban never reaches beyond the one address,
    /// since many visitors share a prefix (mobile carriers, offices) and one
    /// of them probing the site says nothing of the others.
    fn strike(&self, client: IpAddr, rate: Rate, kind: u32, reason: BanReason, now: Time) {
        if self.allow.contains(client) {
            return;
        }
        if let Take::Denied { .. } = self.state.take_token(
            &LimitKey::new(KeyKind::Strike, kind, Some(client)),
            rate,
            now,
        ) {
            if self
                .state
                .ban_get(client, now)
                .is_some_and(|b| b.active(now))
            {
                return;
            }
            self.ban_with(client, None, reason, now);
            if reason == BanReason::RateLimits {
                let prefix = self.lens.prefix_of(client);
                let key = prefix_ban_key(prefix);
                let counted = self.state.take_token(
                    &LimitKey::new(KeyKind::Strike, 2, Some(prefix)),
                    FLOOD_BANS_PER_PREFIX,
                    now,
                );
                let banned = self.state.ban_get(key, now).is_some_and(|b| b.active(now));
                if matches!(counted, Take::Denied { .. }) && !banned {
                    self.ban_with(key, None, BanReason::Flood, now);
                }
            }
        }
    }

    /// Bans a client by hand, for `duration` or, if `None`, for the next step
    /// of the escalation ladder.
    pub fn ban(&self, client: IpAddr, duration: Option<Duration>, now: Time) -> BanRecord {
        self.ban_with(canonical(client), duration, BanReason::Manual, now)
    }

    fn ban_with(
        &self,
        client: IpAddr,
        duration: Option<Duration>,
        reason: BanReason,
        now: Time,
    ) -> BanRecord {
        let level = match self.state.ban_get(client, now) {
            Some(prev) if prev.remember_until > now => prev.level.saturating_add(1),
            _ => 1,
        };
        let step = usize::from(level - 1).min(self.ladder.len().saturating_sub(1));
        let duration = duration.unwrap_or_else(|| {
            self.ladder
                .get(step)
                .copied()
                .unwrap_or(Duration::from_secs(600))
        });
        let until = now.plus(duration);
        let record = BanRecord {
            until,
            level,
            reason,
            remember_until: until.plus(self.remember),
        };
        self.state.ban_set(client, record, now);
        self.push_event(Event::Banned {
            client: prefix_of_ban_key(client).unwrap_or(client),
            record,
            at: now,
        });
        record
    }

    /// Lifts a client's ban and forgets its history; given the network
    /// address of a prefix banned for a flood, lifts the prefix's ban too.
    /// Returns whether there was a ban in force.
    pub fn unban(&self, client: IpAddr, now: Time) -> bool {
        let client = canonical(client);
        let mut was = self.state.ban_remove(client).is_some_and(|b| b.active(now));
        if self.lens.prefix_of(client) == client {
            was |= self
                .state
                .ban_remove(prefix_ban_key(client))
                .is_some_and(|b| b.active(now));
        }
        if was {
            self.push_event(Event::Unbanned { client, at: now });
        }
        was
    }

    /// Up to `max` bans in force. A prefix's ban (reason
    /// [`BanReason::Flood`]) is listed under the prefix's network address.
    pub fn bans(&self, now: Time, max: usize) -> Vec<(IpAddr, BanRecord)> {
        let mut out = Vec::new();
        self.state.ban_list(now, max, &mut out);
        for (addr, _) in &mut out {
            if let Some(prefix) = prefix_of_ban_key(*addr) {
                *addr = prefix;
            }
        }
        out
    }

    /// Takes over a ban another gateway of the same cluster made, as it
    /// listed it (`shown`: the address, or a prefix's network address for a
    /// `Flood` ban). No event is raised: the gateway that made it raised
    /// one. A local ban that lasts longer is kept.
    pub fn adopt_ban(&self, shown: IpAddr, until: Time, level: u8, reason: BanReason, now: Time) {
        if until <= now {
            return;
        }
        // Whoever can write to the shared store can ban; not for ever.
        let until = until.min(now.plus(Duration::from_secs(365 * 24 * 3600)));
        let key = match reason {
            BanReason::Flood => prefix_ban_key(shown),
            _ => canonical(shown),
        };
        if self
            .state
            .ban_get(key, now)
            .is_some_and(|b| b.active(now) && b.until >= until)
        {
            return;
        }
        let record = BanRecord {
            until,
            level,
            reason,
            remember_until: until.plus(self.remember),
        };
        self.state.ban_set(key, record, now);
    }

    /// Lifts a ban another gateway of the same cluster lifted; no event.
    pub fn adopt_unban(&self, shown: IpAddr) {
        self.state.ban_remove(canonical(shown));
        self.state.ban_remove(prefix_ban_key(shown));
    }

    /// How many bans are in force, counting at most to `max`, without
    /// copying any.
    pub fn ban_count(&self, now: Time, max: usize) -> usize {
        self.state.ban_count(now, max)
    }

    /// A copy of the keyring, to persist or rotate.
    pub fn keyring(&self) -> Keyring {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Rotates the keys with 32 fresh random bytes, stores the result in the
    /// shared state, and returns the bytes for the gateway to persist.
    pub fn rotate_keys(&self, rand_bytes: [u8; 32]) -> Vec<u8> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.rotate(rand_bytes);
        let bytes = keys.to_bytes();
        self.state.put_key_material(&bytes);
        bytes
    }

    /// Moves every buffered event into `out`.
    pub fn drain_events(&self, out: &mut Vec<Event>) {
        out.extend(lock(&self.events).drain(..));
    }

    /// Verdict counters since start.
    pub fn counters(&self) -> Counters {
        let c = &self.counters;
        Counters {
            continued: c.sum(CONTINUED),
            limited: c.sum(LIMITED),
            challenged: c.sum(CHALLENGED),
            queued: c.sum(QUEUED),
            unavailable: c.sum(UNAVAILABLE),
            banned: c.sum(BANNED),
            events_dropped: c.sum(EVENTS_DROPPED),
            cleared: c.sum(CLEARED),
            rejected: c.sum(REJECTED),
        }
    }

    fn mode_event(&self, site: &Site, change: ModeChange, now: Time) {
        self.push_event(Event::ModeChanged {
            site: Arc::clone(&site.name),
            under_attack: change.under_attack,
            reason: change.reason,
            at: now,
        });
    }

    fn push_event(&self, e: Event) {
        let mut q = lock(&self.events);
        if q.len() >= self.max_events {
            self.counters.add(EVENTS_DROPPED, 1);
        } else {
            q.push_back(e);
        }
    }
}
