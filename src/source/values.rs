//! Single values any file may hold: addresses, time zones, tables, cron,
//! durations, times of day, counts and names. Each parser returns the reason a
//! value is refused, worded for the user; the caller adds the key and the
//! position.

use std::time::Duration;

use chrono::NaiveTime;
use chrono_tz::Tz;

use super::did_you_mean;
use crate::domain::TableRef;

/// `host:port`, with a numeric port.
pub fn parse_listen(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(s.to_owned())
        }
        _ => Err(format!("`{s}` is not an address like 127.0.0.1:9464")),
    }
}

pub fn parse_timezone(s: &str) -> Result<Tz, String> {
    s.trim().parse::<Tz>().map_err(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        match did_you_mean(s, names) {
            hint if hint.is_empty() => {
                format!("unknown time zone `{s}` (expected an IANA name like Europe/Paris)")
            }
            hint => format!("unknown time zone `{s}`{hint}"),
        }
    })
}

pub fn parse_table(s: &str) -> Result<TableRef, String> {
    let s = s.trim();
    TableRef::parse(s)
        .map_err(|e| format!("`{s}` is not a table like `orders` or `analytics.orders`: {e}"))
}

/// A cron expression: 5 fields or a nickname; seconds are not accepted.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    const NICKNAMES: [&str; 6] = [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
    ];
    let expr = s.trim();
    if expr.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(expr)) {
            return Err(format!(
                "unknown schedule `{expr}` (expected one of {}){}",
                NICKNAMES.join(", "),
                did_you_mean(expr, NICKNAMES)
            ));
        }
    } else {
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "`{expr}` has {fields} fields; a cron expression has 5 (minute hour day-of-month month day-of-week), or use @hourly, @daily…"
            ));
        }
    }
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .build();
    parser
        .parse(expr)
        .map_err(|e| format!("invalid cron expression `{expr}`: {}", cron_error(&e)))
}

fn cron_error(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError;
    match e {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.trim_end_matches('.').to_lowercase(),
        other => other.to_string(),
    }
}

/// The longest duration any file or request may give: 100 years (of 365.25
/// days, as `y` counts). A longer one means nothing to a schedule, a silence
/// or a lag, and could not be added to a timestamp (chrono stops at year
/// 262143): bounded here, every `now + duration` the agent computes from a
/// user-given duration stays within range.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// A duration like `60s`, `6h`, `7d` or `1h 30m`, of at most
/// [`MAX_DURATION`]; zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let too_long = || format!("`{s}` is too long; a duration is at most 100y");
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err(format!("`{s}` must be longer than zero")),
        Ok(d) if d > MAX_DURATION => Err(too_long()),
        Ok(d) => Ok(d),
        Err(humantime::DurationError::NumberOverflow) => Err(too_long()),
        Err(_) => Err(format!("`{s}` is not a duration like 60s, 6h or 7d")),
    }
}

/// `HH:MM`, 24-hour clock.
pub fn parse_time_of_day(s: &str) -> Result<NaiveTime, String> {
    let s = s.trim();
    // chrono skips spaces before a number (`08: 5` would read as 08:05):
    // only the exact `HH:MM` spelling is a time of day.
    let well_formed = matches!(
        s.as_bytes(),
        [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
    );
    match NaiveTime::parse_from_str(s, "%H:%M") {
        Ok(t) if well_formed => Ok(t),
        _ => Err(format!("`{s}` is not a time of day like \"08:00\"")),
    }
}

pub fn positive(n: i64) -> Result<u64, String> {
    u64::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("must be at least 1 (got {n})"))
}

pub fn non_negative(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("cannot be negative (got {n})"))
}

/// Warehouse names appear in metrics labels and messages: keep them plain.
pub fn check_plain_name(s: &str, what: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name `{s}` may only hold letters, digits, `_` and `-`, starting with a letter or `_`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("6").is_err());
        assert_eq!(parse_duration("100y").unwrap(), MAX_DURATION);
        assert_eq!(
            parse_time_of_day("08:00").unwrap(),
            NaiveTime::from_hms_opt(8, 0, 0).unwrap()
        );
        assert!(parse_time_of_day("8:00").is_err());
        assert!(parse_time_of_day("25:00").is_err());
    }

    /// Found by fuzzing: chrono skips spaces before a number, so `08: 5`
    /// and `08:+5`-like spellings read as 08:05.
    #[test]
    fn a_time_of_day_is_exactly_hh_mm() {
        for text in ["08: 5", "0 :05", " 8:05x", "08:+5", "+8:05", "08:5 "] {
            assert!(
                parse_time_of_day(text).is_err(),
                "`{text}` read as a time of day"
            );
        }
        assert_eq!(
            parse_time_of_day(" 08:05 ").unwrap(),
            NaiveTime::from_hms_opt(8, 5, 0).unwrap()
        );
    }

    #[test]
    fn durations_too_long_for_a_timestamp_are_refused() {
        for huge in [
            "300000y",
            "101y",
            "99999999999999999999s",
            "18446744073709551615s 1s",
        ] {
            assert_eq!(
                parse_duration(huge).unwrap_err(),
                format!("`{huge}` is too long; a duration is at most 100y"),
            );
        }
        // The longest accepted one still adds to any time a request can name
        // (RFC 3339 stops at year 9999).
        let longest = chrono::Duration::from_std(parse_duration("100y").unwrap()).unwrap();
        let latest: chrono::DateTime<chrono::Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
        assert!(latest.checked_add_signed(longest).is_some());
    }

    #[test]
    fn listen_addresses() {
        assert!(parse_listen("127.0.0.1:9464").is_ok());
        assert!(parse_listen("[::1]:9464").is_ok());
        assert!(parse_listen("localhost:80").is_ok());
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen(":::80").is_err());
    }

    #[test]
    fn time_zones_suggest_a_spelling() {
        assert_eq!(
            parse_timezone("Europe/Paris").unwrap(),
            chrono_tz::Europe::Paris
        );
        assert!(
            parse_timezone("Europe/Pari")
                .unwrap_err()
                .ends_with("did you mean `Europe/Paris`?")
        );
    }
}
