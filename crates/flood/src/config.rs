//! Configuration: plain data, deserialisable with serde (the gateway reads it
//! from its TOML file), with defaults chosen for a campaign or newsroom site
//! on a single modest server.

use std::time::Duration;

use serde::Deserialize;

use crate::gcra::Limit;

/// The whole flood layer.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FloodConfig {
    /// Addresses and ranges (CIDR) that bypass every ban, limit, challenge
    /// and queue on every site: the office, uptime monitors, and the
    /// published ranges of verified crawlers.
    pub allow: Vec<String>,
    /// Ranges (CIDR) answered as banned on every site for as long as they
    /// are listed: a hosting provider's range a flood comes from, say.
    /// The allowlist still wins.
    pub deny: Vec<String>,
    /// IPv4 prefix length for prefix limits and cookie binding.
    pub prefix_v4: u8,
    /// IPv6 prefix length for prefix limits and cookie binding.
    pub prefix_v6: u8,
    /// Limiter keys the in-memory table tracks (client, prefix, route, strike
    /// keys together), allocated at start. The default holds one million
    /// clients with their prefixes at a third of capacity, in 110 MB.
    pub max_tracked_keys: usize,
    /// Ban records kept, active or remembered for escalation.
    pub max_bans: usize,
    /// Events buffered between two drains by the gateway; beyond this they are
    /// counted and dropped, never blocking a request.
    pub max_events: usize,
    /// Bans and strikes.
    pub bans: BanConfig,
    /// The proof-of-work challenge and clearance cookies.
    pub challenge: ChallengeConfig,
    /// The sites, each with its routes.
    pub sites: Vec<SiteConfig>,
}

impl Default for FloodConfig {
    fn default() -> FloodConfig {
        FloodConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            prefix_v4: 24,
            prefix_v6: 64,
            max_tracked_keys: 6_000_000,
            max_bans: 100_000,
            // Ten seconds of a busy incident's events at several hundred per
            // second; the gateway drains far more often than that.
            max_events: 4096,
            bans: BanConfig::default(),
            challenge: ChallengeConfig::default(),
            sites: Vec::new(),
        }
    }
}

/// When a client is banned and for how long.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BanConfig {
    /// Refused (rate-limited) requests a client may accumulate before a ban,
    /// as a limit: the default allows a browser that briefly overshoots (a
    /// reload storm) but bans a script hammering at 2 requests per second
    /// above its limit for a minute.
    pub limit_strikes: Limit,
    /// WAF blocks a client may accumulate before a ban. Scanners trip dozens
    /// of rules in seconds; a real visitor trips one by accident at most.
    pub waf_strikes: Limit,
    /// How long the first, second, third… ban lasts; the last repeats. Ten
    /// minutes lets a misconfigured office proxy recover quickly; a day
    /// stops a persistent attacker costing anything.
    pub ladder: Vec<humantime_serde::Serde<Duration>>,
    /// How long an expired ban is remembered so the next one escalates.
    #[serde(with = "humantime_serde")]
    pub remember: Duration,
}

impl Default for BanConfig {
    fn default() -> BanConfig {
        BanConfig {
            limit_strikes: Limit {
                requests: 120,
                per: Duration::from_secs(60),
                burst: 120,
            },
            waf_strikes: Limit {
                requests: 10,
                per: Duration::from_secs(600),
                burst: 10,
            },
            ladder: [600, 3600, 86_400]
                .map(|secs| Duration::from_secs(secs).into())
                .to_vec(),
            remember: Duration::from_secs(7 * 86_400),
        }
    }
}

/// The proof-of-work challenge and clearance cookies.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChallengeConfig {
    /// How long a clearance cookie lasts. An hour covers a reading or
    /// donating session without making a solved cookie worth much to a bot.
    #[serde(with = "humantime_serde")]
    pub clearance: Duration,
    /// How long a challenge may take to solve and submit.
    #[serde(with = "humantime_serde")]
    pub token: Duration,
    /// Leading zero bits at normal load: about 16 thousand hashes, well under
    /// a second in a phone's browser.
    pub min_difficulty: u8,
    /// Leading zero bits at the heaviest load: about a million hashes,
    /// seconds on a phone, which makes a bot farm pay for every clearance.
    pub max_difficulty: u8,
    /// How long a client without JavaScript waits before its token is
    /// valid. Short enough not to lose a reader, long enough that a flood
    /// tool must hold state per request.
    #[serde(with = "humantime_serde")]
    pub nojs_wait: Duration,
}

impl Default for ChallengeConfig {
    fn default() -> ChallengeConfig {
        ChallengeConfig {
            clearance: Duration::from_secs(3600),
            token: Duration::from_secs(300),
            min_difficulty: 14,
            max_difficulty: 20,
            nojs_wait: Duration::from_secs(5),
        }
    }
}

/// One site (one host name or group of names the gateway maps to it).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// The site's name as the gateway knows it; bound into cookies.
    pub name: String,
    /// Extra allowlisted ranges for this site only.
    pub allow: Vec<String>,
    /// Per client address. Twenty a second with a burst of a hundred lets a
    /// browser fetch a heavy page and its assets at once. `requests = 0`
    /// turns the limit off.
    pub client: Limit,
    /// Per address prefix: ten clients' worth, since offices, universities
    /// and mobile carriers put many people behind one /24.
    pub prefix: Limit,
    /// The attack detector.
    pub detector: DetectorConfig,
    /// Windows during which the site is in under-attack mode regardless of
    /// traffic (the night of a debate, results night).
    pub schedule: Vec<ScheduleWindow>,
    /// Requests in flight to the upstream at once for the whole site. Unset,
    /// the limit is learned from the upstream's latency and overload
    /// answers (see `learn_capacity`); set, it is fixed at this number.
    /// Above the limit, visitors without clearance get the challenge and
    /// cleared browsers wait in the waiting room.
    pub max_in_flight: Option<u32>,
    /// Learn the upstream's capacity when `max_in_flight` is unset. Off, the
    /// site has no limit of its own (routes may still have theirs).
    pub learn_capacity: bool,
    /// Routes with their own limits, caps and challenge policy. Requests on
    /// routes not listed follow the site's limits alone.
    pub routes: Vec<RouteConfig>,
}

impl Default for SiteConfig {
    fn default() -> SiteConfig {
        SiteConfig {
            name: String::new(),
            allow: Vec::new(),
            client: Limit {
                requests: 20,
                per: Duration::from_secs(1),
                burst: 100,
            },
            prefix: Limit {
                requests: 200,
                per: Duration::from_secs(1),
                burst: 1000,
            },
            detector: DetectorConfig::default(),
            schedule: Vec::new(),
            max_in_flight: None,
            learn_capacity: true,
            routes: Vec::new(),
        }
    }
}

/// One route of a site.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name as the gateway knows it.
    pub name: String,
    /// An API route: answered 503 instead of queued when the route is at
    /// capacity, since a script cannot wait in a page. It is still
    /// challenged when the site must clear clients (a route that skipped the
    /// challenge would be a free pass for any flood aimed at it); the
    /// gateway answers the challenge in a form a script can act on.
    pub api: bool,
    /// Challenge every client without clearance, even outside under-attack
    /// mode (a login or donation form that bots target).
    pub always_challenge: bool,
    /// An extra per-client limit on this route, on top of the site's.
    pub client: Option<Limit>,
    /// An extra per-prefix limit on this route, on top of the site's.
    pub prefix: Option<Limit>,
    /// A limit on all clients together on this route: what the upstream
    /// behind it can take.
    pub total: Option<Limit>,
    /// Requests in flight to the upstream at once on this route; beyond it
    /// browsers queue in the waiting room.
    pub max_in_flight: Option<u32>,
    /// Browsers that may wait in the queue; beyond it they get 503.
    pub queue: Option<u32>,
    /// How often the waiting-room page refreshes (whole seconds, as the
    /// page's refresh and `Retry-After` carry them).
    #[serde(with = "humantime_serde")]
    pub refresh: Option<Duration>,
}

/// A time window in under-attack mode.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleWindow {
    /// Start, seconds since the Unix epoch (UTC), for a one-off window.
    pub from_unix: Option<u64>,
    /// End, seconds since the Unix epoch (UTC), for a one-off window.
    pub until_unix: Option<u64>,
    /// A window repeated every day, `"HH:MM-HH:MM"` in UTC; it may cross
    /// midnight (`"22:00-02:00"`).
    pub daily_utc: Option<String>,
}

/// The attack detector of one site. Metrics are taken over buckets of
/// `bucket`; a baseline is an exponentially weighted mean of buckets
/// seen in normal mode, so an attack never becomes the new normal.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// Switch modes automatically.
    pub enabled: bool,
    /// Length of one bucket. Ten seconds smooths a page-load burst but reacts
    /// within half a minute.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
    /// Buckets used to learn the first baseline before switching is allowed.
    pub warmup_buckets: u32,
    /// Weight of each new bucket in the baseline; 0.02 gives a memory of
    /// about eight minutes at ten-second buckets.
    pub baseline_weight: f64,
    /// Request rate above this multiple of baseline is a surge.
    pub rate_factor: f64,
    /// Never a surge below this many requests per second, so a quiet site's
    /// tiny baseline does not make every newsletter click an attack.
    pub min_rate: f64,
    /// Distinct clients per bucket above this multiple of baseline is a surge.
    pub clients_factor: f64,
    /// Never a surge below this many distinct clients per bucket.
    pub min_clients: f64,
    /// Mean upstream latency above this multiple of baseline is a surge…
    pub latency_factor: f64,
    /// …and above this.
    #[serde(with = "humantime_serde")]
    pub min_latency: Duration,
    /// Upstream error ratio (5xx and failures) above this is a surge.
    pub error_ratio: f64,
    /// Latency and error surges count only when at least this many responses
    /// were seen in the bucket; a broken backend on an idle site is not an
    /// attack.
    pub min_responses: u64,
    /// Consecutive surge buckets needed to switch into under-attack mode.
    pub enter_buckets: u32,
    /// How long upstream distress (errors, latency far above the last few
    /// seconds, arrivals turned away for capacity beyond what the upstream
    /// serves) must last, in whole seconds in a row, to switch into
    /// under-attack mode with no baseline at all. Two seconds ride out a
    /// single bad second and still switch within three seconds of a
    /// flood's start; "0s" turns the fast signals off.
    #[serde(with = "humantime_serde")]
    pub fast_enter: Duration,
    /// A second's responses (or requests turned away) below this say
    /// nothing: a handful of slow answers on a quiet site is not distress.
    pub fast_min_responses: u64,
    /// A second's mean latency counts as distress only above this, however
    /// fast the upstream was a few seconds before.
    #[serde(with = "humantime_serde")]
    pub fast_latency_floor: Duration,
    /// Consecutive calm buckets needed to switch back.
    pub leave_buckets: u32,
    /// Calm means every metric below this multiple of baseline (lower than
    /// the surge factors: that gap is the hysteresis).
    pub leave_factor: f64,
}

impl Default for DetectorConfig {
    fn default() -> DetectorConfig {
        DetectorConfig {
            enabled: true,
            bucket: Duration::from_secs(10),
            warmup_buckets: 6,
            baseline_weight: 0.02,
            rate_factor: 4.0,
            min_rate: 50.0,
            clients_factor: 4.0,
            min_clients: 300.0,
            latency_factor: 4.0,
            min_latency: Duration::from_secs(1),
            error_ratio: 0.25,
            min_responses: 50,
            enter_buckets: 2,
            fast_enter: Duration::from_secs(2),
            fast_min_responses: 20,
            fast_latency_floor: Duration::from_millis(250),
            // A minute of calm at ten-second buckets: floods often pause and
            // resume, and flapping would hand visitors challenge after
            // challenge.
            leave_buckets: 6,
            leave_factor: 1.5,
        }
    }
}
