//! The generic cell rate algorithm (GCRA).
//!
//! GCRA keeps one number per key, the theoretical arrival time (TAT): the
//! moment at which the key's bucket would be completely refilled. That makes
//! an entry eight bytes, lets any backend (a hash map here, a Redis script in
//! a cluster) update it atomically, and gives an exact retry-after for free.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, ErrorKind};
use crate::time::Time;

/// A rate limit as written in configuration: `requests` per `per` (a
/// duration, one second by default), with up to `burst` requests allowed
/// back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Requests allowed per period, sustained.
    pub requests: u32,
    /// The period.
    #[serde(default = "default_period", with = "humantime_serde")]
    pub per: Duration,
    /// How many requests may arrive at once; a browser loading a page fetches
    /// a dozen assets together, so bursts must be allowed above the rate.
    pub burst: u32,
}

fn default_period() -> Duration {
    Duration::from_secs(1)
}

impl Limit {
    /// Converts to the form the algorithm uses, rejecting zero values.
    pub fn rate(&self) -> Result<Rate, Error> {
        if self.requests == 0 || self.per.is_zero() || self.burst == 0 {
            return Err(Error::new(
                ErrorKind::BadConfig,
                format!(
                    "limit {self:?}: requests and burst must be at least 1, and per more than zero"
                ),
            ));
        }
        let nanos = u64::try_from(self.per.as_nanos()).unwrap_or(u64::MAX);
        let interval = nanos / u64::from(self.requests);
        Ok(Rate {
            interval: interval.max(1),
            tolerance: interval.max(1).saturating_mul(u64::from(self.burst)),
        })
    }
}

/// A limit in algorithm form: the emission interval between requests and the
/// tolerance (how far ahead of now the TAT may run), both in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Nanoseconds of "cost" one request adds.
    pub interval: u64,
    /// Nanoseconds of cost a key may carry; `interval * burst`.
    pub tolerance: u64,
}

/// The outcome of taking one token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// The request fits within the limit.
    Allowed,
    /// The request is over the limit; a retry after this long would fit.
    Denied {
        /// How long until one request would be allowed again.
        retry_after: Duration,
    },
}

/// One GCRA step. `tat` is the stored arrival time (0 for a new key).
/// Returns the new TAT when allowed, so the caller stores it; a denied request
/// leaves the stored TAT unchanged, so refused requests cost the client
/// nothing more (the ban logic punishes persistence instead).
#[inline]
pub fn step(tat: u64, rate: Rate, now: Time) -> Result<u64, Duration> {
    let now = now.as_nanos();
    let new_tat = tat.max(now).saturating_add(rate.interval);
    let ahead = new_tat - now;
    if ahead > rate.tolerance {
        Err(Duration::from_nanos(ahead - rate.tolerance))
    } else {
        Ok(new_tat)
    }
}
