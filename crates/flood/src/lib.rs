//! The flood layer of rampart: what keeps a site up for real visitors while
//! an HTTP flood goes on.
//!
//! - **Rate limits** (GCRA) per client address, per address prefix (/24,
//!   /64) and per route, with bursts, in a client table of fixed memory that
//!   evicts the least valuable entries under a spoofed-address flood.
//! - **Concurrency caps** per route with a first-come-first-served
//!   **waiting room** for browsers and 503 for API clients.
//! - An **attack detector** per site that switches under-attack mode from
//!   request rate, distinct clients, upstream latency and errors, with
//!   hysteresis; also by hand and by schedule.
//! - A **proof-of-work challenge** with signed, prefix-bound clearance
//!   cookies, key rotation, single-use nonces and a no-script fallback.
//! - **Bans** that escalate for clients that keep exceeding limits or keep
//!   tripping the WAF; allowlists win over all of it.
//!
//! The crate does no I/O and reads no clock: every call takes `now`. State
//! that a cluster must share sits behind the small [`State`] trait, whose
//! default backend is [`MemoryState`].
//!
//! # Wiring it into the gateway
//!
//! | when | call |
//! |---|---|
//! | config load | [`Shield::in_memory`] (or [`Shield::new`] with a shared `Arc<MemoryState>` so reloads keep state); resolve names once with [`Shield::site_id`] / [`Shield::route_id`] |
//! | `request_filter`, after identity and before the WAF | [`Shield::admit`]; keep the [`Permit`] of `FloodVerdict::Continue` in the request context until `logging` |
//! | `request_filter`, for `POST` [`pages::VERIFY_PATH`] | [`Shield::verify_solution`] → 204 + [`Clearance::set_cookie`], else 403 |
//! | `request_filter`, for `GET` [`pages::WAIT_PATH`] | [`Shield::redeem_wait`] → 303 to [`pages::safe_return_path`] + cookie; `TooEarly` → [`pages::wait_page`] |
//! | `logging`, for requests that reached the upstream | [`Shield::observe_response`] |
//! | `logging`, when the WAF blocked | [`Shield::report_strike`] |
//! | a background task, about once a second | [`Shield::tick`], then [`Shield::drain_events`] into the event channel |
//! | admin API | [`Shield::set_mode`], [`Shield::ban`], [`Shield::unban`], [`Shield::bans`], [`Shield::counters`], [`Shield::rotate_keys`] |

pub mod addr;
pub mod config;
pub mod detector;
pub mod error;
pub mod gcra;
pub mod keys;
pub mod pages;
pub mod shield;
pub mod state;
mod stripe;
pub mod table;
pub mod time;
pub mod token;
pub mod waiting;

pub use addr::{AllowList, Cidr, PrefixLens};
pub use config::{
    BanConfig, ChallengeConfig, DetectorConfig, FloodConfig, RouteConfig, ScheduleWindow,
    SiteConfig,
};
pub use detector::{Learned, Metric, ModeReason, UpstreamOutcome};
pub use error::{Error, ErrorKind};
pub use gcra::{Limit, Rate, Take};
pub use keys::Keyring;
pub use shield::{
    nojs_wait_for_load, Challenge, Clearance, Counters, Event, FloodVerdict, LimitScope,
    RequestFacts, RouteId, Shield, SiteId, Strike,
};
pub use state::{BanReason, BanRecord, MemoryLimits, MemoryState, State};
pub use table::{ClientTable, KeyKind, LimitKey};
pub use time::{retry_after_secs, Time};
pub use token::Reject;
pub use waiting::{Admission, Gate, Permit};
