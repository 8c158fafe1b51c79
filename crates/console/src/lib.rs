//! The console: what the admin listener needs beyond routing and I/O.
//!
//! - [`assets`]: the dashboard's files, embedded at build time, and the
//!   OpenAPI document of the admin API;
//! - [`session`]: sign-in sessions with their CSRF tokens, and the throttle
//!   on failed sign-ins;
//! - [`live`]: the last hour of traffic, one point per second, for the
//!   chart and the live stream;
//! - [`triage`]: the narrowest WAF exclusion that would have let an event
//!   pass, and how many recorded events it would have let pass.
//!
//! Nothing here reads a clock, a file or a socket: the gateway passes the
//! time and the random bytes in, which keeps every rule testable.

pub mod assets;
pub mod live;
pub mod session;
pub mod triage;
