//! Unix milliseconds as calendar dates and times in UTC, for reports, exports
//! and alerts alike.

use crate::model::Millis;

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
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000)
}

/// The proleptic Gregorian date `(year, month, day)` of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`; negative counts are days
/// before 1970).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
    pub(crate) milli: u32,
}

pub(crate) fn civil(ms: Millis) -> Civil {
    let (year, month, day) = civil_from_days(ms.div_euclid(86_400_000));
    let in_day = ms.rem_euclid(86_400_000);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1000 % 60) as u32,
        milli: (in_day % 1000) as u32,
    }
}

/// RFC 3339 in UTC with milliseconds, as STIX wants: `2026-11-29T10:15:00.000Z`.
pub fn rfc3339(ms: Millis) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

/// A time for people, to the second (a flood's timeline moves by the
/// second): `2026-11-29 10:15:07 UTC`.
pub fn human_time(ms: Millis) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The calendar date alone: `2026-11-29`.
pub fn date(ms: Millis) -> String {
    let c = civil(ms);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
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
