//! Unix milliseconds to calendar dates and RFC 3339 (the calendar is jiff's):
//! checked against dates Python's `datetime` gives, across leap years,
//! century years and times before 1970.

use rampart_incidents::report::{civil_from_days, date, human_time, rfc3339};

#[test]
fn day_counts_become_the_right_dates() {
    let known: [(i64, (i64, u32, u32)); 14] = [
        (0, (1970, 1, 1)),
        (-1, (1969, 12, 31)),
        (11_016, (2000, 2, 29)), // divisible by 400: a leap year
        (11_017, (2000, 3, 1)),
        (-25_509, (1900, 2, 28)), // divisible by 100 only: not a leap year
        (-25_508, (1900, 3, 1)),
        (19_782, (2024, 2, 29)),
        (47_540, (2100, 2, 28)),
        (47_541, (2100, 3, 1)),
        (-135_081, (1600, 2, 29)),
        (20_786, (2026, 11, 29)),
        (2_932_896, (9999, 12, 31)),
        (-719_162, (1, 1, 1)),
        (365, (1971, 1, 1)),
    ];
    for (days, expected) in known {
        assert_eq!(civil_from_days(days), expected, "day {days}");
    }
}

#[test]
fn consecutive_days_never_skip_or_repeat() {
    let days_in = |y: i64, m: u32| match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let mut previous = civil_from_days(-800_000);
    for day in -799_999..800_000 {
        let (y, m, d) = civil_from_days(day);
        let (py, pm, pd) = previous;
        let expected = if pd < days_in(py, pm) {
            (py, pm, pd + 1)
        } else if pm < 12 {
            (py, pm + 1, 1)
        } else {
            (py + 1, 1, 1)
        };
        assert_eq!((y, m, d), expected, "day {day}");
        previous = (y, m, d);
    }
}

#[test]
fn times_format_for_stix_and_for_people() {
    let aware = 1_795_947_300_000; // 2026-11-29 10:15 UTC
    assert_eq!(rfc3339(aware), "2026-11-29T10:15:00.000Z");
    assert_eq!(human_time(aware), "2026-11-29 10:15:00 UTC");
    assert_eq!(date(aware), "2026-11-29");
    assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(
        human_time(aware + 72 * 3_600_000),
        "2026-12-02 10:15:00 UTC"
    );
    // Milliseconds are dropped for people, not rounded.
    assert_eq!(human_time(aware + 59_999), "2026-11-29 10:15:59 UTC");
}
