//! Thresholds written as plain numbers or percentages.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(String);

/// A fraction written as `0.05` or `"5%"`. Stored as the fraction (0.05).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Ratio(f64);

impl Ratio {
    /// Parses `"5%"`, `"0.05"` or `"0"`; `bounded` rejects values above 1 (100%).
    pub fn parse(s: &str, bounded: bool) -> Result<Self, ThresholdError> {
        let t = s.trim();
        let (number, scale) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 100.0),
            None => (t, 1.0),
        };
        let v: f64 = number.parse().map_err(|_| {
            ThresholdError(format!("`{s}` is not a number or a percentage like \"5%\""))
        })?;
        Self::from_f64(v / scale, bounded).map_err(|_| {
            ThresholdError(if bounded {
                format!("`{s}` is outside 0..100%")
            } else {
                format!("`{s}` cannot be negative")
            })
        })
    }

    pub fn from_f64(v: f64, bounded: bool) -> Result<Self, ThresholdError> {
        if !v.is_finite() || v < 0.0 || (bounded && v > 1.0) {
            return Err(ThresholdError(format!("{v} is out of range")));
        }
        Ok(Self(v))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_accept_fractions_and_percentages() {
        assert_eq!(Ratio::parse("5%", true).unwrap().get(), 0.05);
        assert_eq!(Ratio::parse("0.35", true).unwrap().get(), 0.35);
        assert_eq!(Ratio::parse("200%", false).unwrap().get(), 2.0);
        assert!(Ratio::parse("200%", true).is_err());
        assert!(Ratio::parse("-1", false).is_err());
        assert!(Ratio::parse("five", false).is_err());
    }
}
