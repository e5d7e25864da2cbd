//! `moat history search --since WHEN`: a date, a date and time, or a time ago, as the local time
//! stamp the session database compares with. Apart from the command so that the argument
//! definitions (`args.rs`) can name the parser without importing the command built on them.

use jiff::{Span, Zoned};

/// [`parse_since`] against the clock: `--since`'s value parser.
pub fn parse_since_now(s: &str) -> Result<String, String> {
    parse_since(s, &Zoned::now())
}

/// `--since WHEN` as the `YYYY-MM-DD HH:MM:SS` local time the database's `created` stamps are
/// compared with: `YYYY-MM-DD` (midnight), `YYYY-MM-DD HH:MM[:SS]` (a `T` may stand for the
/// space), or a time before `now`: a whole number and one of `m` (minutes), `h` (hours), `d`
/// (calendar days), `w` (weeks). Errors: one line saying what is accepted.
pub fn parse_since(s: &str, now: &Zoned) -> Result<String, String> {
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
    let s = s.trim();
    let expected = || {
        format!("{s:?} is not a time: use YYYY-MM-DD, YYYY-MM-DD HH:MM[:SS], or a time ago such as 30m, 12h, 7d, 2w")
    };
    if let Some(unit) = s.chars().last().filter(|c| matches!(c, 'm' | 'h' | 'd' | 'w')) {
        let digits = &s[..s.len() - 1];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let too_far = || format!("{s:?} is further back than a date can be");
            let n: i64 = digits.parse().map_err(|_| too_far())?;
            let span = match unit {
                'm' => Span::new().try_minutes(n),
                'h' => Span::new().try_hours(n),
                'd' => Span::new().try_days(n),
                _ => Span::new().try_weeks(n),
            }
            .map_err(|_| too_far())?;
            let then = now.checked_sub(span).map_err(|_| too_far())?;
            return Ok(then.strftime(FORMAT).to_string());
        }
        return Err(expected());
    }
    if let Ok(date) = jiff::civil::Date::strptime("%Y-%m-%d", s) {
        return Ok(date.to_datetime(jiff::civil::Time::midnight()).strftime(FORMAT).to_string());
    }
    let spaced = s.replacen('T', " ", 1);
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(at) = jiff::civil::DateTime::strptime(f, &spaced) {
            return Ok(at.strftime(FORMAT).to_string());
        }
    }
    Err(expected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noon() -> Zoned {
        "2026-03-10T12:00:00[UTC]".parse().unwrap()
    }

    #[test]
    fn since_takes_dates_date_times_and_times_ago() {
        let now = noon();
        assert_eq!(parse_since("2026-01-05", &now).unwrap(), "2026-01-05 00:00:00");
        assert_eq!(parse_since("2026-01-05 07:08", &now).unwrap(), "2026-01-05 07:08:00");
        assert_eq!(parse_since("2026-01-05 07:08:09", &now).unwrap(), "2026-01-05 07:08:09");
        assert_eq!(parse_since("2026-01-05T07:08:09", &now).unwrap(), "2026-01-05 07:08:09");
        assert_eq!(parse_since(" 30m ", &now).unwrap(), "2026-03-10 11:30:00");
        assert_eq!(parse_since("12h", &now).unwrap(), "2026-03-10 00:00:00");
        assert_eq!(parse_since("7d", &now).unwrap(), "2026-03-03 12:00:00");
        assert_eq!(parse_since("2w", &now).unwrap(), "2026-02-24 12:00:00");
        assert_eq!(parse_since("0d", &now).unwrap(), "2026-03-10 12:00:00");
    }

    #[test]
    fn since_days_are_calendar_days_across_a_clock_change() {
        // Europe/Berlin moved to summer time at 02:00 on 2026-03-29: a day before noon that day
        // is noon, 24 hours before it 11:00.
        // A POSIX rule rather than a zone name: no tz database needed on the test machine.
        let berlin = jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let now = jiff::civil::datetime(2026, 3, 29, 12, 0, 0, 0).to_zoned(berlin).unwrap();
        assert_eq!(parse_since("1d", &now).unwrap(), "2026-03-28 12:00:00");
        assert_eq!(parse_since("24h", &now).unwrap(), "2026-03-28 11:00:00");
    }

    #[test]
    fn since_refuses_anything_else_in_one_line() {
        let now = noon();
        for bad in [
            "",
            "yesterday",
            "7",
            "d",
            "-7d",
            "7 d",
            "7days",
            "1.5h",
            "2026-02-30",
            "2026-13-01",
            "2026/01/05",
            "2026-01-05 25:00",
            "2026-01-05 10",
            "30s",
            "7d ago",
            "１d",
        ] {
            let err = parse_since(bad, &now).unwrap_err();
            assert!(err.contains("YYYY-MM-DD") && !err.contains('\n'), "{bad:?}: {err}");
        }
        for far in ["99999999999999999999d", "9999999w", "999999999999h"] {
            let err = parse_since(far, &now).unwrap_err();
            assert!(err.contains("further back") && !err.contains('\n'), "{far:?}: {err}");
        }
    }
}
