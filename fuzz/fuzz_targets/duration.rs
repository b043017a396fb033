//! Durations (`max_lag`, `query_timeout`, `vs`, retention) and times of day
//! (`by: "08:00"`): what parses is in range, and a time of day is exactly
//! `HH:MM`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::source::values::{MAX_DURATION, parse_duration, parse_time_of_day};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert!(!d.is_zero(), "`{text}` parsed as zero");
        assert!(d <= MAX_DURATION, "`{text}` parsed beyond the maximum");
        // Every `now ± duration` the agent computes stays in range.
        let now = chrono::Utc::now();
        let d = chrono::Duration::from_std(d).expect("a bounded duration converts");
        assert!(now.checked_add_signed(d).is_some());
        assert!(now.checked_sub_signed(d).is_some());
    }
    if let Ok(t) = parse_time_of_day(text) {
        assert_eq!(
            t.format("%H:%M").to_string(),
            text.trim(),
            "a time of day is read only as written"
        );
    }
});
