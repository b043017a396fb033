//! How numbers and durations read in messages, tables, the status page and
//! alerts: one formatter of each, so that every surface shows a value the
//! same way.

/// A number as people read it: no trailing `.0`, at most 4 decimals.
pub fn number(v: f64) -> String {
    decimals(v, 4)
}

/// A number without a useless `.0`, with at most `max` decimals.
pub fn decimals(v: f64, max: usize) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.max$}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A count with its thousands grouped: `1204331` → `1,204,331`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction as a percentage: `0.012` → `1.2%`, `0.35` → `35%`; tiny
/// non-zero values keep enough digits not to read as 0%.
pub fn percent(fraction: f64) -> String {
    let v = fraction * 100.0;
    let decimals = if v != 0.0 && v.abs() < 0.01 {
        (-v.abs().log10()).ceil() as usize + 1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}%")
}

/// Like [`percent`], with a `+` before an increase.
pub fn signed_percent(fraction: f64) -> String {
    if fraction > 0.0 {
        format!("+{}", percent(fraction))
    } else {
        percent(fraction)
    }
}

/// Seconds as `7h 12m`, `45s`, `2d 3h`: whole seconds, the two largest
/// units that are not zero; `-` before a negative duration, `–` for one that
/// is not a number.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return "–".to_owned();
    }
    let sign = if seconds.round() < 0.0 { "-" } else { "" };
    let total = seconds.abs().round() as u64;
    let units = [
        (total / 86_400, "d"),
        (total % 86_400 / 3_600, "h"),
        (total % 3_600 / 60, "m"),
        (total % 60, "s"),
    ];
    let parts: Vec<String> = units
        .iter()
        .filter(|(n, _)| *n > 0)
        .take(2)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        format!("{sign}{}", parts.join(" "))
    }
}

/// An error and each of its causes, outermost first, joined by `: `: how
/// warden prints an error wherever it is shown. warden's own errors never
/// end their message with the cause they also return as their source; a
/// cause whose text the message already ends with (some libraries' errors
/// do that) is not printed again.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(number(50000.0), "50000");
        assert_eq!(number(0.012), "0.012");
        assert_eq!(number(1.0 / 3.0), "0.3333");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.0125), "0.0125");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(decimals(1.0 / 3.0, 6), "0.333333");
    }

    #[test]
    fn counts_group_their_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_204_331), "1,204,331");
        assert_eq!(count(100_000), "100,000");
    }

    #[test]
    fn percentages_keep_tiny_values_visible() {
        assert_eq!(percent(0.0), "0%");
        assert_eq!(percent(0.35), "35%");
        assert_eq!(percent(1.0 / 3.0), "33.33%");
        assert_eq!(percent(0.000_000_1), "0.00001%");
        assert_eq!(signed_percent(0.2), "+20%");
        assert_eq!(signed_percent(-0.4), "-40%");
    }

    #[test]
    fn durations_show_two_units() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(45.0), "45s");
        assert_eq!(duration(25_920.0), "7h 12m");
        assert_eq!(duration(183_600.0), "2d 3h");
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(3_700.0), "1h 1m");
        assert_eq!(duration(3.0 * 86_400.0 + 7200.0), "3d 2h");
        assert_eq!(duration(-300.0), "-5m");
        assert_eq!(duration(f64::NAN), "–");
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read warden.yaml")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(std::io::Error::other("disk gone"));
        assert_eq!(error_chain(&outer), "cannot read warden.yaml: disk gone");

        // sqlx's errors end their message with their source.
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open the registry")]
        struct Open(#[source] sqlx::Error);
        let open = Open(sqlx::Error::Io(std::io::Error::other("disk gone")));
        assert_eq!(
            error_chain(&open),
            "cannot open the registry: error communicating with database: disk gone"
        );
    }
}
