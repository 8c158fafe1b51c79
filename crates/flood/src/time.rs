//! Time as a plain value.
//!
//! The flood layer never reads a clock: every entry point takes `now` from the
//! caller, so tests are deterministic and a replayed trace gives the same
//! verdicts. Time is wall-clock nanoseconds since the Unix epoch because
//! clearance cookies and bans must stay meaningful across restarts and across
//! the nodes of a cluster, which a monotonic `Instant` cannot be.

use std::time::Duration;

/// A point in time: nanoseconds since the Unix epoch (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

/// Events name times in whole Unix seconds, which is what a log reader or
/// a SIEM expects; nothing reads them back into a `Time`.
impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.as_secs())
    }
}

impl Time {
    /// The Unix epoch itself; useful as "never" for expiry fields.
    pub const EPOCH: Time = Time(0);

    /// Builds a time from nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// Builds a time from milliseconds since the epoch, saturating far in the future.
    pub const fn from_millis(millis: u64) -> Time {
        Time(millis.saturating_mul(1_000_000))
    }

    /// Builds a time from whole seconds since the epoch, saturating far in the future.
    pub const fn from_secs(secs: u64) -> Time {
        Time(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whole seconds since the epoch, rounded down.
    pub const fn as_secs(self) -> u64 {
        self.0 / 1_000_000_000
    }

    /// This time plus a duration, saturating rather than wrapping so that a
    /// hostile or absurd configuration value can never make an expiry lie in
    /// the past.
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(duration_nanos(d)))
    }

    /// The duration from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Whole seconds for a `Retry-After` header: rounded up, and at least one,
/// because `Retry-After: 0` invites an immediate retry that would be refused
/// again.
pub fn retry_after_secs(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}
