//! Human-written durations, in one grammar with two unit sets: TTLs in whole seconds
//! (`90s`, `30m`, `4h`, `1h30m`, `2d`) and drill timelines in whole milliseconds (`300ms`,
//! `2s500ms`, `1m30s`), because a fault's latency or start needs sub-second precision and a
//! grant's TTL never does.
//!
//! The grammar is deliberately small: one or more `<digits><unit>` parts, each unit at most
//! once and largest first, no spaces, no signs, no fractions, and an upper bound so that
//! arithmetic on the result can never overflow. `parse_parts` is its only parser.

use std::fmt;
use std::str::FromStr;

/// The units of TTLs, largest first, in seconds.
const SECOND_UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
/// The units of drill timelines, largest first, in milliseconds.
const MILLI_UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
/// Most digits in one part (so that a part times its unit cannot overflow).
const MAX_DIGITS: usize = 9;

/// Why a string does not follow the duration grammar (before any bound of its type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PartsError {
    /// Nothing was given.
    Empty,
    /// Not `<digits><unit>` parts with the units given.
    Syntax,
    /// Units out of order or repeated.
    UnitOrder,
    /// A part with more than [`MAX_DIGITS`] digits (the only way the sum could overflow).
    TooLong,
}

/// The sum of the `<digits><unit>` parts of `s` in the smallest unit of `units` (largest
/// first; a unit is a run of lowercase ASCII letters).
fn parse_parts(s: &str, units: &[(&str, u64)]) -> Result<u64, PartsError> {
    if s.is_empty() {
        return Err(PartsError::Empty);
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
        if i - start > MAX_DIGITS {
            return Err(PartsError::TooLong);
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_lowercase() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit_start == start {
            return Err(PartsError::Syntax);
        }
        let index = units
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or(PartsError::Syntax)?;
        if last.is_some_and(|l| index <= l) {
            return Err(PartsError::UnitOrder);
        }
        last = Some(index);
        let n: u64 = s[start..unit_start]
            .parse()
            .map_err(|_| PartsError::Syntax)?;
        total = n
            .checked_mul(units[index].1)
            .and_then(|v| total.checked_add(v))
            .ok_or(PartsError::TooLong)?;
    }
    Ok(total)
}

/// `value` (in the smallest unit of `units`) as parts, largest first, zero parts left out;
/// nothing at all for zero.
fn write_parts(f: &mut impl fmt::Write, value: u64, units: &[(&str, u64)]) -> fmt::Result {
    let mut rest = value;
    for (unit, size) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            write!(f, "{n}{unit}")?;
        }
    }
    Ok(())
}

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
        let total = parse_parts(s, &SECOND_UNITS).map_err(|e| match e {
            PartsError::Empty => DurationError::Empty,
            PartsError::Syntax => DurationError::Syntax(s.to_owned()),
            PartsError::UnitOrder => DurationError::UnitOrder(s.to_owned()),
            PartsError::TooLong => DurationError::TooLong(s.to_owned()),
        })?;
        if total == 0 {
            return Err(DurationError::Zero(s.to_owned()));
        }
        Self::from_secs(total).ok_or_else(|| DurationError::TooLong(s.to_owned()))
    }
}

impl fmt::Display for HumanDuration {
    /// The canonical form: largest units first, zero parts left out (`5400` → `1h30m`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_parts(f, self.0, &SECOND_UNITS)
    }
}

/// A length of time in milliseconds for people, in the canonical form of durations
/// (`1m30s`, `2h5m`, `3d4h`), without the 30-day bound; below a second "less than a second".
pub fn elapsed_text(ms: u64) -> String {
    let secs = ms / 1000;
    if secs == 0 {
        return "less than a second".to_owned();
    }
    let mut out = String::new();
    // Writing into a `String` cannot fail.
    let _ = write_parts(&mut out, secs, &SECOND_UNITS);
    out
}

/// A measured time in milliseconds for reports and charts: `25 ms` below a second, whole
/// seconds as `2 s`, others to a tenth (rounded down) as `1.5 s`.
pub fn ms_text(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{}.{} s", ms / 1000, ms % 1000 / 100)
    }
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

/// A whole number of milliseconds in a drill's timeline, at most [`Millis::MAX_MS`]. Zero
/// is allowed (a fault that starts when the drill starts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(u64);

/// Why a string is not a drill duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// The longest text read as a drill duration.
    const MAX_TEXT: usize = 40;

    /// From milliseconds, saturating at the bound (for times measured, which a timeline
    /// shows up to its end).
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
        let syntax = || MillisError::Syntax(s.chars().take(Self::MAX_TEXT).collect());
        if s.len() > Self::MAX_TEXT {
            return Err(syntax());
        }
        let total = parse_parts(s, &MILLI_UNITS).map_err(|e| match e {
            PartsError::Empty | PartsError::Syntax => syntax(),
            PartsError::UnitOrder => MillisError::UnitOrder(s.to_owned()),
            // A part of ten digits or more is not a drill duration at all.
            PartsError::TooLong => syntax(),
        })?;
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
        write_parts(f, self.0, &MILLI_UNITS)
    }
}

impl serde::Serialize for Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Millis {
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
        assert!(matches!(secs("1ms"), Err(DurationError::Syntax(_))));
        assert!(matches!(secs("30m1h"), Err(DurationError::UnitOrder(_))));
        assert!(matches!(secs("1h1h"), Err(DurationError::UnitOrder(_))));
        assert!(matches!(secs("0m"), Err(DurationError::Zero(_))));
        assert!(matches!(secs("31d"), Err(DurationError::TooLong(_))));
        assert!(matches!(
            secs("99999999999999999999s"),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(secs("9999999999"), Err(DurationError::TooLong(_))));
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
    fn measured_times_read_in_milliseconds_or_seconds() {
        assert_eq!(ms_text(0), "0 ms");
        assert_eq!(ms_text(25), "25 ms");
        assert_eq!(ms_text(1_000), "1 s");
        assert_eq!(ms_text(1_500), "1.5 s");
        assert_eq!(ms_text(1_999), "1.9 s");
        assert_eq!(ms_text(20_050), "20.0 s");
        assert!(!ms_text(u64::MAX).is_empty());
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

    #[test]
    fn drill_durations_parse_and_print_the_canonical_form() {
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
    fn drill_durations_refuse_what_is_not_a_duration() {
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
        assert!(matches!(
            "1234567890ms".parse::<Millis>(),
            Err(MillisError::Syntax(_))
        ));
        assert!(matches!(
            "1s".repeat(21).parse::<Millis>(),
            Err(MillisError::Syntax(_))
        ));
    }
}
