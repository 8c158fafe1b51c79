//! Unix milliseconds as calendar dates and times in UTC, for reports, exports
//! and alerts alike. The calendar itself is `jiff`'s.

use crate::model::Millis;
use jiff::civil::{Date, DateTime, Time};
use jiff::SignedDuration;

/// 1970-01-01 00:00 UTC, where Unix time counts from.
const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// Reads a UTC time written `2026-11-29T10:15Z`, `2026-11-29T10:15:30Z` or
/// `2026-11-29 10:15` into Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim().trim_end_matches('Z').trim_end_matches(" UTC");
    let (date, time) = text.split_once(['T', ' '])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next().unwrap_or(Some(0))?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Counted from the first of the month, so that a day past the month's
    // end rolls into the next month and a leap second into the next minute,
    // as this reader has always done.
    let first = Date::new(i16::try_from(year).ok()?, month as i8, 1).ok()?;
    let first = first.to_datetime(Time::midnight()).duration_since(EPOCH);
    let first = first.as_millis() as i64;
    Some(first + (((day - 1) * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since
/// 1970-01-01 (negative counts are days before 1970).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let date = civil(days.saturating_mul(86_400_000)).date();
    (
        i64::from(date.year()),
        date.month() as u32,
        date.day() as u32,
    )
}

/// The UTC date and time of a Unix millisecond count. Counts beyond the
/// years -9999 to 9999 that `jiff` covers are held at its ends: no clock or
/// store gives them.
pub(crate) fn civil(ms: Millis) -> DateTime {
    EPOCH
        .checked_add(SignedDuration::from_millis(ms))
        .unwrap_or(if ms < 0 { DateTime::MIN } else { DateTime::MAX })
}

/// RFC 3339 in UTC with milliseconds, as STIX wants: `2026-11-29T10:15:00.000Z`.
pub fn rfc3339(ms: Millis) -> String {
    civil(ms).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A time for people, to the second (a flood's timeline moves by the
/// second): `2026-11-29 10:15:07 UTC`.
pub fn human_time(ms: Millis) -> String {
    civil(ms).strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The calendar date alone: `2026-11-29`.
pub fn date(ms: Millis) -> String {
    civil(ms).date().to_string()
}

/// A duration in hours and minutes, rounded down: `61 h 20 min`.
pub(crate) fn hours_minutes(ms: Millis) -> String {
    let minutes = ms.max(0) / 60_000;
    format!("{} h {} min", minutes / 60, minutes % 60)
}

#[cfg(test)]
mod parse_time_tests {
    #[test]
    fn utc_times_parse() {
        assert_eq!(super::parse_time("1970-01-01T00:00Z"), Some(0));
        assert_eq!(
            super::parse_time("2026-11-29T10:15Z"),
            Some(1_795_947_300_000)
        );
        assert_eq!(
            super::parse_time("2024-02-29 12:00:30"),
            Some(1_709_208_030_000)
        );
        assert_eq!(super::parse_time("2026-13-01T00:00Z"), None);
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
