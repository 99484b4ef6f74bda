//! UTC timestamps for logs and reports: RFC 3339 out, RFC 3339 / date / Unix seconds in.
//!
//! Hand-written (a few lines of calendar arithmetic) so that the core needs no time-zone
//! database: everything bglass writes is UTC, which is what an auditor wants anyway.

/// Why a timestamp did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "time {0:?} is invalid: use 2026-11-21T22:33:44Z, 2026-11-21 (midnight UTC) or Unix seconds"
)]
pub struct TimestampError(String);

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of `z` days after 1970-01-01 (never before it: every term is
/// non-negative): year, month 1..=12, day 1..=31.
fn civil_from_days(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{}.{:03}Z",
        format_secs(secs).trim_end_matches('Z'),
        ms % 1000
    )
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_secs(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Parses `2026-11-21T22:33:44Z` (optional fraction, `Z` or `+00:00`), `2026-11-21`, or
/// Unix seconds, into Unix milliseconds.
pub fn parse_ms(s: &str) -> Result<u64, TimestampError> {
    let bad = || TimestampError(s.chars().take(40).collect());
    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|v| v.checked_mul(1000))
            .ok_or_else(bad);
    }
    let num = |part: &str, len: usize| -> Result<u32, TimestampError> {
        if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (date, time) = match s.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let (y, m, d) = (num(y, 4)?, num(m, 2)?, num(d, 2)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d == 0 || d > month_days[(m - 1) as usize] || y < 1970 {
        return Err(bad());
    }
    let days = u64::try_from(days_from_civil(i64::from(y), m, d)).map_err(|_| bad())?;
    let mut ms = days * 86_400_000;
    if let Some(time) = time {
        let time = time
            .strip_suffix('Z')
            .or_else(|| time.strip_suffix('z'))
            .or_else(|| time.strip_suffix("+00:00"))
            .ok_or_else(bad)?;
        let (hms, frac) = match time.split_once('.') {
            Some((hms, frac)) => (hms, Some(frac)),
            None => (time, None),
        };
        let mut parts = hms.split(':');
        let (Some(h), Some(mi), Some(sec), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (h, mi, sec) = (num(h, 2)?, num(mi, 2)?, num(sec, 2)?);
        if h > 23 || mi > 59 || sec > 59 {
            return Err(bad());
        }
        ms += (u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(sec)) * 1000;
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let padded = format!("{frac:0<3}");
            ms += u64::from(num(&padded[..3], 3)?);
        }
    }
    Ok(ms)
}

/// A duration in whole milliseconds, saturating: `u64` milliseconds last 584 million years,
/// so only a nonsense duration saturates.
pub fn millis(d: std::time::Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(d.subsec_millis()))
}

/// A duration in whole microseconds, saturating (after 584 thousand years).
pub fn micros(d: std::time::Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// The current time in Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        assert_eq!(format_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_secs(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(format_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_ms(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        for secs in [
            0u64,
            1,
            59,
            86_399,
            951_782_400,
            1_767_225_600,
            4_102_444_799,
        ] {
            assert_eq!(parse_ms(&format_secs(secs)), Ok(secs * 1000), "{secs}");
        }
        assert_eq!(parse_ms("2026-01-01"), Ok(1_767_225_600_000));
        assert_eq!(parse_ms("2026-01-01T00:00:01.5Z"), Ok(1_767_225_601_500));
        assert_eq!(parse_ms("2026-01-01T00:00:01+00:00"), Ok(1_767_225_601_000));
        assert_eq!(parse_ms("1767225600"), Ok(1_767_225_600_000));
    }

    #[test]
    fn refuses_invalid_times() {
        for bad in [
            "",
            "2026-13-01",
            "2026-02-30",
            "2025-02-29",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+02:00",
            "yesterday",
            "2026-1-1",
        ] {
            assert!(parse_ms(bad).is_err(), "{bad:?}");
        }
        assert!(parse_ms("2024-02-29").is_ok());
    }
}
