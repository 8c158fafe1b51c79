//! Date formatting for HTTP headers and RSS, without a date crate.
//!
//! Both formats need the day of the week and English month names, which is all the calendar
//! arithmetic this site does.

use std::time::{SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `time` as an IMF-fixdate for the `Date` header (RFC 9110 §5.6.7), for example
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(time: SystemTime) -> String {
    // A clock set before 1970 is a broken clock; the epoch is as good an answer as any.
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        weekday(days),
        day,
        MONTHS[(month - 1) as usize],
        year,
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
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
    let number = |range: std::ops::Range<usize>| sqlite[range].parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(format!(
        "{}, {:02} {} {} {} +0000",
        weekday(days),
        day,
        MONTHS[(month - 1) as usize],
        year,
        &sqlite[11..19]
    ))
}

/// The day of the week of a day counted from 1970-01-01, which was a Thursday.
fn weekday(days: i64) -> &'static str {
    WEEKDAYS[days.rem_euclid(7) as usize]
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Howard Hinnant's `civil_from_days`, the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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

    #[test]
    fn civil_round_trips() {
        for days in [-1000, 0, 1, 18_000, 20_000, 60_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
