//! Human-written durations (`90s`, `30m`, `4h`, `1h30m`, `2d`) for TTLs and drill timelines.
//!
//! The grammar is deliberately small: one or more `<digits><unit>` parts with units `d`,
//! `h`, `m`, `s` in that order, each at most once, no spaces, no signs, no fractions, and an
//! upper bound so that arithmetic on the result can never overflow.

use std::fmt;
use std::str::FromStr;

/// A whole number of seconds written the human way. Always positive, at most
/// [`HumanDuration::MAX_SECS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(u64);

/// Why a string is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Nothing was given.
    #[error("duration is empty")]
    Empty,
    /// A character other than digits and the units d, h, m, s.
    #[error("duration {0:?} is invalid: write it like 90s, 30m, 4h, 1h30m or 2d")]
    Syntax(String),
    /// Units out of order or repeated (`30m1h`, `1h1h`).
    #[error("duration {0:?} is invalid: units must appear once each, in the order d, h, m, s")]
    UnitOrder(String),
    /// Zero length.
    #[error("duration {0:?} is zero")]
    Zero(String),
    /// Longer than the bound.
    #[error("duration {0:?} is longer than the limit of 30 days")]
    TooLong(String),
}

impl HumanDuration {
    /// The longest duration accepted anywhere: 30 days.
    pub const MAX_SECS: u64 = 30 * 24 * 3600;

    /// Makes a duration from seconds; `None` when zero or above the bound.
    pub fn from_secs(secs: u64) -> Option<Self> {
        (secs > 0 && secs <= Self::MAX_SECS).then_some(Self(secs))
    }

    /// The length in seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }

    /// The length as a standard duration.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        // Units in the only order allowed; `last` is the index of the previous unit.
        const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
        let mut total: u64 = 0;
        let mut last: Option<usize> = None;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                if digits.len() > 9 {
                    return Err(DurationError::TooLong(s.to_owned()));
                }
                continue;
            }
            let Some(index) = UNITS.iter().position(|(u, _)| *u == c) else {
                return Err(DurationError::Syntax(s.to_owned()));
            };
            if digits.is_empty() {
                return Err(DurationError::Syntax(s.to_owned()));
            }
            if last.is_some_and(|l| index <= l) {
                return Err(DurationError::UnitOrder(s.to_owned()));
            }
            last = Some(index);
            let n: u64 = digits
                .parse()
                .map_err(|_| DurationError::Syntax(s.to_owned()))?;
            digits.clear();
            total = n
                .checked_mul(UNITS[index].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| DurationError::TooLong(s.to_owned()))?;
        }
        if !digits.is_empty() {
            // A number with no unit: "30" is ambiguous, so refuse it.
            return Err(DurationError::Syntax(s.to_owned()));
        }
        if total == 0 {
            return Err(DurationError::Zero(s.to_owned()));
        }
        if total > Self::MAX_SECS {
            return Err(DurationError::TooLong(s.to_owned()));
        }
        Ok(Self(total))
    }
}

impl fmt::Display for HumanDuration {
    /// The canonical form: largest units first, zero parts left out (`5400` → `1h30m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// A length of time in milliseconds for people, in the canonical form of durations
/// (`1m30s`, `2h5m`, `3d4h`), without the 30-day bound; below a second "less than a second".
pub fn elapsed_text(ms: u64) -> String {
    let mut rest = ms / 1000;
    if rest == 0 {
        return "less than a second".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Result<u64, DurationError> {
        s.parse::<HumanDuration>().map(HumanDuration::as_secs)
    }

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30m"), Ok(1800));
        assert_eq!(secs("4h"), Ok(14_400));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("2d"), Ok(172_800));
        assert_eq!(secs("1d2h3m4s"), Ok(93_784));
        assert_eq!(secs("30d"), Ok(HumanDuration::MAX_SECS));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(secs(""), Err(DurationError::Empty));
        assert!(matches!(secs("30"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("1.5h"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("-5m"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("5 m"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("h"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("5w"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("30m1h"), Err(DurationError::UnitOrder(_))));
        assert!(matches!(secs("1h1h"), Err(DurationError::UnitOrder(_))));
        assert!(matches!(secs("0m"), Err(DurationError::Zero(_))));
        assert!(matches!(secs("31d"), Err(DurationError::TooLong(_))));
        assert!(matches!(
            secs("99999999999999999999s"),
            Err(DurationError::TooLong(_))
        ));
    }

    #[test]
    fn elapsed_time_reads_like_a_duration() {
        assert_eq!(elapsed_text(0), "less than a second");
        assert_eq!(elapsed_text(999), "less than a second");
        assert_eq!(elapsed_text(1_000), "1s");
        assert_eq!(elapsed_text(90_500), "1m30s");
        assert_eq!(elapsed_text(7_500_000), "2h5m");
        assert_eq!(elapsed_text(40 * 86_400_000 + 3_600_000), "40d1h");
        assert!(!elapsed_text(u64::MAX).is_empty());
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (input, shown) in [
            ("90s", "1m30s"),
            ("5400s", "1h30m"),
            ("1d", "1d"),
            ("4h", "4h"),
        ] {
            let d: HumanDuration = input.parse().unwrap();
            assert_eq!(d.to_string(), shown);
            assert_eq!(shown.parse::<HumanDuration>().unwrap(), d);
        }
    }
}
