//! Drill timelines need sub-second precision (`300ms` of latency, a fault at `1500ms`), so
//! scenarios use their own duration type: whole milliseconds written as parts with units
//! `h`, `m`, `s`, `ms` in that order, each at most once (`1m30s`, `2s500ms`, `0s`).

use std::fmt;
use std::str::FromStr;

/// A whole number of milliseconds, at most [`Millis::MAX_MS`]. Zero is allowed (a fault
/// that starts when the drill starts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(u64);

/// Why a string is not a drill duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MillisError {
    /// Not `<digits><unit>` parts with units h, m, s, ms.
    #[error("{0:?} is not a duration: write it like 300ms, 2s, 1m30s or 1h")]
    Syntax(String),
    /// Units out of order or repeated.
    #[error("{0:?}: units must appear once each, in the order h, m, s, ms")]
    UnitOrder(String),
    /// Over the bound.
    #[error("{0:?} is longer than the limit of 24h")]
    TooLong(String),
}

impl Millis {
    /// The longest duration a scenario may write: one day.
    pub const MAX_MS: u64 = 24 * 3600 * 1000;

    /// From milliseconds (clamped to the bound).
    pub fn from_ms(ms: u64) -> Self {
        Self(ms.min(Self::MAX_MS))
    }

    /// The length in milliseconds.
    pub fn as_ms(self) -> u64 {
        self.0
    }

    /// As a standard duration.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0)
    }
}

impl FromStr for Millis {
    type Err = MillisError;

    fn from_str(s: &str) -> Result<Self, MillisError> {
        const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
        let syntax = || MillisError::Syntax(s.chars().take(40).collect());
        if s.is_empty() || s.len() > 40 {
            return Err(syntax());
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut total: u64 = 0;
        let mut last: Option<usize> = None;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start || i - start > 9 {
                return Err(syntax());
            }
            let n: u64 = s[start..i].parse().map_err(|_| syntax())?;
            let unit_start = i;
            while i < bytes.len() && bytes[i].is_ascii_lowercase() {
                i += 1;
            }
            let unit = &s[unit_start..i];
            let index = UNITS
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(syntax)?;
            if last.is_some_and(|l| index <= l) {
                return Err(MillisError::UnitOrder(s.to_owned()));
            }
            last = Some(index);
            total = n
                .checked_mul(UNITS[index].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| MillisError::TooLong(s.to_owned()))?;
        }
        if total > Self::MAX_MS {
            return Err(MillisError::TooLong(s.to_owned()));
        }
        Ok(Self(total))
    }
}

impl fmt::Display for Millis {
    /// The canonical form (`90500` → `1m30s500ms`; zero → `0s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, size) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Millis {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_canonical_form() {
        for (text, ms) in [
            ("0s", 0),
            ("300ms", 300),
            ("2s", 2000),
            ("2s500ms", 2500),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("24h", Millis::MAX_MS),
        ] {
            let m: Millis = text.parse().unwrap();
            assert_eq!(m.as_ms(), ms, "{text}");
            assert_eq!(m.to_string(), text);
        }
        assert_eq!("1500ms".parse::<Millis>().unwrap().to_string(), "1s500ms");
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "", "300", "ms", "1.5s", "-1s", "1s1m", "1s1s", "2x", "1 s", "25h", "1d",
        ] {
            assert!(bad.parse::<Millis>().is_err(), "{bad:?} accepted");
        }
        assert!(matches!(
            "1s1m".parse::<Millis>(),
            Err(MillisError::UnitOrder(_))
        ));
        assert!(matches!(
            "25h".parse::<Millis>(),
            Err(MillisError::TooLong(_))
        ));
    }
}
