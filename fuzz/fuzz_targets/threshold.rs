//! Thresholds written as `0.05` or `"5%"` (`null_rate.max`,
//! `row_count_change.max_drop`, …): what parses is a finite fraction in
//! range, and the same number with or without `%` agrees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::domain::Ratio;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for bounded in [true, false] {
        if let Ok(r) = Ratio::parse(text, bounded) {
            let v = r.get();
            assert!(v.is_finite() && v >= 0.0, "`{text}` gave {v}");
            assert!(!bounded || v <= 1.0, "`{text}` gave {v} beyond 100%");
            assert_eq!(Ratio::from_f64(v, bounded).map(Ratio::get), Ok(v));
        }
    }
});
