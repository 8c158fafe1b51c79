//! Date formatting for HTTP headers and RSS. The calendar (weekdays, month
//! names) is `jiff`'s.

use jiff::civil::Date;
use jiff::fmt::rfc2822::DateTimePrinter;
use jiff::{Timestamp, ToSpan};
use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `time` as an IMF-fixdate for the `Date` header (RFC 9110 §5.6.7), for example
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(time: SystemTime) -> String {
    // A clock set before 1970 is a broken clock; the epoch is as good an answer as any.
    let time = Timestamp::try_from(time.max(UNIX_EPOCH)).unwrap_or(Timestamp::UNIX_EPOCH);
    DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&time)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 GMT".to_string())
}

/// Converts SQLite's `YYYY-MM-DD HH:MM:SS` (UTC) into the RFC 822 date RSS 2.0 asks for in
/// `pubDate`, for example `Tue, 12 Nov 2019 14:03:00 +0000`. Returns `None` for anything else.
pub(crate) fn rss_date(sqlite: &str) -> Option<String> {
    let bytes = sqlite.as_bytes();
    let well_formed = bytes.len() == 19
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ' || b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        });
    if !well_formed {
        return None;
    }
    let number = |range: std::ops::Range<usize>| sqlite[range].parse::<i16>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // The weekday counts on from the first of the month, so a day past the
    // month's end keeps the weekday it has always had here.
    let first = Date::new(year, month as i8, 1).ok()?;
    let weekday = first.checked_add((day - 1).days()).ok()?.strftime("%a");
    let month = first.strftime("%b");
    Some(format!(
        "{weekday}, {day:02} {month} {year} {} +0000",
        &sqlite[11..19]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_date_matches_rfc_example() {
        let time = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(time), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn rss_date_knows_the_weekday() {
        assert_eq!(
            rss_date("2019-11-12 14:03:00").as_deref(),
            Some("Tue, 12 Nov 2019 14:03:00 +0000")
        );
        assert_eq!(
            rss_date("2024-02-29 00:00:00").as_deref(),
            Some("Thu, 29 Feb 2024 00:00:00 +0000")
        );
        assert_eq!(rss_date("2019-13-12 14:03:00"), None);
        assert_eq!(rss_date("yesterday"), None);
    }
}
