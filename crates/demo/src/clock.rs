//! Date formatting for RSS (hyper writes the `Date` header). The calendar
//! (weekdays, month names) is `jiff`'s.

use jiff::civil::Date;
use jiff::ToSpan;

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
