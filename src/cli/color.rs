//! When output is coloured: only on a terminal, and never when `NO_COLOR` is
//! set to anything but the empty string (<https://no-color.org>). The result
//! tables and the log lines follow the same rule.

use std::ffi::OsString;
use std::io::IsTerminal;

/// Whether what is written to `stream` may carry colour codes.
pub fn enabled(stream: &impl IsTerminal) -> bool {
    decide(stream.is_terminal(), std::env::var_os("NO_COLOR"))
}

fn decide(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(decide(true, None));
        assert!(decide(true, Some(OsString::new())));
        assert!(!decide(true, Some(OsString::from("1"))));
        assert!(!decide(true, Some(OsString::from("false"))));
        assert!(!decide(false, None));
    }
}
