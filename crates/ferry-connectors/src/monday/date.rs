//! Dates for monday.com's date columns, which take `{"date": "YYYY-MM-DD"}`.
//!
//! | input | read as |
//! |---|---|
//! | `2024-03-05`, `2024/03/05`, `2024.03.05`, `20240305` | year, month, day |
//! | `2024-03-05T10:00:00Z`, `2024-03-05 10:00:00`, `2024-03-05T23:30:00-05:00` | the date as written, before the time (no time-zone conversion) |
//! | `05.03.2024` | day, month, year (the European dotted form) |
//! | `5 March 2024`, `5 Mar 2024`, `March 5, 2024`, `Tue, 5 Mar 2024`, `5th March 2024`, `05-Mar-2024` | English month names or their first three letters, any case |
//! | a JSON number | an eight-digit integer that is a real date (`20240305`) is that date; any other number a Unix timestamp in seconds (milliseconds when its magnitude is 10^11 or more, i.e. past the year 5138 in seconds), as a UTC date |
//!
//! `05/03/2024` is refused: it is the 5th of March in Europe and the 3rd of May in the
//! United States, and guessing would set wrong dates silently (select `YYYY-MM-DD`).
//! Every date is checked against the calendar (`2025-02-29` is refused).

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// `YYYY-MM-DD` from one of the strings in the module's table.
pub(crate) fn parse(text: &str) -> Result<String, String> {
    let s = text.trim();
    let digits = |r: std::ops::Range<usize>| {
        s.get(r)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u32>().ok())
    };
    let b = s.as_bytes();
    // Year first: 2024-03-05, 2024/03/05, 2024.03.05, optionally followed by a time.
    if b.len() >= 10 && matches!(b[4], b'-' | b'/' | b'.') && b[7] == b[4] {
        let rest = &s[10..];
        if rest.is_empty() || rest.starts_with(['T', 't', ' ']) {
            if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) {
                return ymd(y as i64, m, d);
            }
        }
    }
    if b.len() == 8 && b.iter().all(u8::is_ascii_digit) {
        if let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(4..6), digits(6..8)) {
            return ymd(y as i64, m, d);
        }
    }
    let numeric: Vec<&str> = s.split(['.', '/', '-']).collect();
    if numeric.len() == 3
        && numeric
            .iter()
            .all(|p| p.bytes().all(|c| c.is_ascii_digit()))
    {
        let n: Vec<u32> = numeric.iter().filter_map(|p| p.parse().ok()).collect();
        if n.len() == 3 && numeric[0].len() == 4 {
            return ymd(i64::from(n[0]), n[1], n[2]);
        }
        if n.len() == 3 && numeric[2].len() == 4 {
            if s.contains('.') {
                return ymd(n[2] as i64, n[1], n[0]);
            }
            return Err(format!(
                "`{s}` is ambiguous (day/month or month/day?): write it as YYYY-MM-DD"
            ));
        }
    }
    with_month_name(s).ok_or_else(|| {
        format!(
            "`{s}` is not a date (expected YYYY-MM-DD, an ISO 8601 timestamp, DD.MM.YYYY, \"5 March 2024\" or a Unix timestamp)"
        )
    })?
}

/// `5 March 2024`, `March 5, 2024`, `Tue, 05-Mar-2024`: one month name, one year of four
/// digits, one day (an ordinal suffix allowed), and optionally a weekday.
fn with_month_name(s: &str) -> Option<Result<String, String>> {
    let (mut year, mut month, mut day) = (None, None, None);
    for token in s.split([' ', ',', '-', '/', '.']).filter(|t| !t.is_empty()) {
        let lower = token.to_ascii_lowercase();
        let named = |names: &[&str]| {
            names
                .iter()
                .position(|n| lower.len() >= 3 && n.starts_with(lower.as_str()))
        };
        if let Some(m) = named(&MONTHS) {
            if month.is_some() {
                return None;
            }
            month = Some(m as u32 + 1);
        } else if named(&WEEKDAYS).is_some() {
            continue;
        } else if token.len() == 4 && token.bytes().all(|b| b.is_ascii_digit()) {
            if year.is_some() {
                return None;
            }
            year = token.parse::<i64>().ok();
        } else {
            let number = ["st", "nd", "rd", "th"]
                .iter()
                .find_map(|suffix| lower.strip_suffix(suffix))
                .unwrap_or(&lower);
            if day.is_some() || number.is_empty() || number.len() > 2 {
                return None;
            }
            day = number.parse::<u32>().ok();
            day?;
        }
    }
    match (year, month, day) {
        (Some(y), Some(m), Some(d)) => Some(ymd(y, m, d)),
        _ => None,
    }
}

/// `YYYY-MM-DD` from a number: an integer of eight digits that is a real `YYYYMMDD` date
/// (as some databases store dates) is that date; otherwise a Unix timestamp in seconds, or
/// milliseconds when its magnitude is 10^11 or more, as a UTC date.
pub(crate) fn from_number(t: f64) -> Result<String, String> {
    if t.fract() == 0.0 && (10_000_101.0..=99_991_231.0).contains(&t) {
        if let Ok(day) = parse(&format!("{t:.0}")) {
            return Ok(day);
        }
    }
    from_timestamp(t)
}

/// `YYYY-MM-DD` (UTC) from a Unix timestamp in seconds, or milliseconds when its magnitude
/// is 10^11 or more.
fn from_timestamp(t: f64) -> Result<String, String> {
    if !t.is_finite() {
        return Err(format!("{t} is not a timestamp"));
    }
    let secs = if t.abs() >= 1e11 { t / 1000.0 } else { t };
    let days = (secs / 86_400.0).floor();
    if days.abs() > 3_000_000.0 {
        return Err(format!("{t} is not a timestamp of a year 0-9999"));
    }
    let (y, m, d) = civil_from_days(days as i64);
    ymd(y, m, d)
}

/// Year, month, day of the day `z` days after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, exact for every proleptic Gregorian date).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `YYYY-MM-DD` if it is a real calendar date of the years 1-9999.
fn ymd(y: i64, m: u32, d: u32) -> Result<String, String> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("month {m} does not exist")),
    };
    if !(1..=9999).contains(&y) {
        return Err(format!("year {y} is out of range"));
    }
    if !(1..=days).contains(&d) {
        return Err(format!("{y:04}-{m:02} has no day {d}"));
    }
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_strings() {
        let table = [
            ("2024-03-05", Ok("2024-03-05")),
            (" 2024-03-05 ", Ok("2024-03-05")),
            ("2024/03/05", Ok("2024-03-05")),
            ("2024.03.05", Ok("2024-03-05")),
            ("20240305", Ok("2024-03-05")),
            ("2024-3-5", Ok("2024-03-05")),
            ("2024-03-05T10:00:00Z", Ok("2024-03-05")),
            ("2024-03-05T23:30:00-05:00", Ok("2024-03-05")),
            ("2024-03-05 10:00:00", Ok("2024-03-05")),
            ("05.03.2024", Ok("2024-03-05")),
            ("5.3.2024", Ok("2024-03-05")),
            ("5 March 2024", Ok("2024-03-05")),
            ("5 mar 2024", Ok("2024-03-05")),
            ("March 5, 2024", Ok("2024-03-05")),
            ("Tue, 5 Mar 2024", Ok("2024-03-05")),
            ("Tuesday, March 5th, 2024", Ok("2024-03-05")),
            ("05-Mar-2024", Ok("2024-03-05")),
            ("1st Sept 2024", Ok("2024-09-01")),
            ("2024-02-29", Ok("2024-02-29")),
            ("2025-02-29", Err("has no day 29")),
            ("2024-13-01", Err("month 13")),
            ("05/03/2024", Err("ambiguous")),
            ("3/5/2024", Err("ambiguous")),
            ("2024-03-05x", Err("not a date")),
            ("March 2024", Err("not a date")),
            ("5 March", Err("not a date")),
            ("5 March 2024 2025", Err("not a date")),
            ("March May 5 2024", Err("not a date")),
            ("soon", Err("not a date")),
            ("", Err("not a date")),
        ];
        for (input, want) in table {
            match (parse(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{input:?}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{input:?}: {e}"),
                (got, w) => panic!("{input:?}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn timestamps() {
        let table = [
            (0.0, Ok("1970-01-01")),
            (1_709_632_800.0, Ok("2024-03-05")),
            (1_709_632_800_000.0, Ok("2024-03-05")),
            (1_709_683_199.9, Ok("2024-03-05")),
            (951_782_400.0, Ok("2000-02-29")),
            (-86_400.0, Ok("1969-12-31")),
            (20_240_305.0, Ok("2024-03-05")),
            (20_241_305.0, Ok("1970-08-23")),
            (f64::NAN, Err("not a timestamp")),
            (1e300, Err("year")),
        ];
        for (input, want) in table {
            match (from_number(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{input}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{input}: {e}"),
                (got, w) => panic!("{input}: got {got:?}, want {w:?}"),
            }
        }
    }

    proptest::proptest! {
        /// Every day of years 1-9999 round-trips through its timestamp.
        #[test]
        fn every_day_round_trips(days in -719_162i64..2_932_896) {
            let date = from_timestamp(days as f64 * 86_400.0).unwrap();
            proptest::prop_assert_eq!(parse(&date).unwrap(), date);
        }
    }
}
