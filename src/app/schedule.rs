//! Schedule arithmetic: the ticks of a dataset's cron `schedule`, read in
//! `agent.timezone`, on whole seconds. The scheduler runs on them; the API
//! and the status page show the next one.
//!
//! Ticks are computed with croner, which handles DST (a time in a skipped
//! hour still runs; a repeated hour runs once).

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::check::Schedule;

/// The first tick of `schedule` strictly after `after`, on a whole second.
pub fn next_tick(schedule: &Schedule, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    // croner keeps the fraction of a second it starts from; ticks have none.
    let after = after.with_nanosecond(0)?;
    schedule
        .cron
        .find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .and_then(|t| t.with_timezone(&Utc).with_nanosecond(0))
}

/// The latest tick of `schedule` at or before `at`, on a whole second.
pub fn latest_tick(schedule: &Schedule, at: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let at = at.with_nanosecond(0)?;
    schedule
        .cron
        .find_previous_occurrence(&at.with_timezone(&tz), true)
        .ok()
        .and_then(|t| t.with_timezone(&Utc).with_nanosecond(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedule(expr: &str) -> Schedule {
        Schedule {
            expr: expr.to_owned(),
            cron: croner::parser::CronParser::builder()
                .build()
                .parse(expr)
                .expect("valid cron"),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ticks_follow_the_agent_zone() {
        let s = schedule("0 8 * * *");
        let tz: Tz = "Europe/Paris".parse().unwrap();
        assert_eq!(
            next_tick(&s, utc("2026-11-20T12:00:00Z"), tz),
            Some(utc("2026-11-21T07:00:00Z"))
        );
        assert_eq!(
            latest_tick(&s, utc("2026-11-20T12:00:00Z"), tz),
            Some(utc("2026-11-20T07:00:00Z"))
        );
    }

    #[test]
    fn a_tick_in_the_spring_gap_still_runs_and_the_autumn_hour_runs_once() {
        let tz: Tz = "Europe/Paris".parse().unwrap();
        // 2026-03-29 02:30 does not exist in Paris; it runs at 03:00 local (01:00Z).
        let s = schedule("30 2 * * *");
        let t = next_tick(&s, utc("2026-03-28T12:00:00Z"), tz).unwrap();
        assert_eq!(
            t.date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap()
        );
        assert!(t <= utc("2026-03-29T01:30:00Z"), "{t}");
        // 2026-10-25 02:30 happens twice in Paris; it runs once.
        let after = utc("2026-10-24T12:00:00Z");
        let first = next_tick(&s, after, tz).unwrap();
        let second = next_tick(&s, first, tz).unwrap();
        assert_eq!(
            first.date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 10, 25).unwrap()
        );
        assert_eq!(
            second.date_naive(),
            chrono::NaiveDate::from_ymd_opt(2026, 10, 26).unwrap()
        );
    }

    #[test]
    fn missed_ticks_collapse_into_the_latest() {
        let s = schedule("*/15 * * * *");
        let tz = chrono_tz::UTC;
        // Asleep from 10:00 to 11:07: one run, for 11:00.
        assert_eq!(
            latest_tick(
                &s,
                Utc.with_ymd_and_hms(2026, 11, 20, 11, 7, 0).unwrap(),
                tz
            ),
            Some(utc("2026-11-20T11:00:00Z"))
        );
        assert_eq!(
            next_tick(
                &s,
                Utc.with_ymd_and_hms(2026, 11, 20, 11, 7, 0).unwrap(),
                tz
            ),
            Some(utc("2026-11-20T11:15:00Z"))
        );
    }

    #[test]
    fn ticks_fall_on_whole_seconds() {
        let s = schedule("* * * * *");
        let after = utc("2026-11-20T10:00:30.653177Z");
        assert_eq!(
            next_tick(&s, after, chrono_tz::UTC),
            Some(utc("2026-11-20T10:01:00Z"))
        );
        assert_eq!(
            latest_tick(&s, after, chrono_tz::UTC),
            Some(utc("2026-11-20T10:00:00Z"))
        );
    }

    #[test]
    fn nicknames_are_understood() {
        let s = schedule("@hourly");
        assert_eq!(
            next_tick(&s, utc("2026-11-20T10:59:59Z"), chrono_tz::UTC),
            Some(utc("2026-11-20T11:00:00Z"))
        );
    }
}
