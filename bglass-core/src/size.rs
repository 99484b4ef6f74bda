//! Human-written sizes (`64KiB`, `512MiB`, `1GiB`) for settings such as the free-space
//! warning, and sizes printed for people (`1.5 GiB`).
//!
//! The grammar is deliberately small: `<digits><unit>`, no spaces, no signs, no fractions,
//! with binary units `KiB`, `MiB`, `GiB`, `TiB`, decimal units `KB`, `MB`, `GB`, `TB`, or
//! `B` for bytes. A number without a unit is refused (is "512" bytes or megabytes?), and so
//! is anything that would not fit in 64 bits.

use std::fmt;
use std::str::FromStr;

/// A whole number of bytes written the human way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// Why a string is not a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// Nothing was given.
    #[error("size is empty")]
    Empty,
    /// Not `<digits><unit>` with a known unit.
    #[error("size {0:?} is invalid: write it like 64KiB, 512MiB, 1GiB or 4096B")]
    Syntax(String),
    /// More bytes than 64 bits hold.
    #[error("size {0:?} is too large")]
    TooLarge(String),
}

/// The units, longest names first so that `KiB` is not read as `K` + `iB`.
const UNITS: [(&str, u64); 9] = [
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("B", 1),
];

impl ByteSize {
    /// A size of `bytes`.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = SizeError;

    fn from_str(s: &str) -> Result<Self, SizeError> {
        if s.is_empty() {
            return Err(SizeError::Empty);
        }
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = s.split_at(digits);
        if number.is_empty() || (number.len() > 1 && number.starts_with('0')) {
            return Err(SizeError::Syntax(s.to_owned()));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| SizeError::Syntax(s.to_owned()))?;
        let n: u64 = number
            .parse()
            .map_err(|_| SizeError::TooLarge(s.to_owned()))?;
        n.checked_mul(scale)
            .map(Self)
            .ok_or_else(|| SizeError::TooLarge(s.to_owned()))
    }
}

impl fmt::Display for ByteSize {
    /// For people: bytes below 1 KiB, otherwise the largest binary unit with one decimal
    /// when it is not whole (`512 MiB`, `1.5 GiB`, `3.2 KiB`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= size {
                let whole = self.0 / size;
                // Tenths, rounded down so that "1.0" never shows for a size below 1.05 units.
                let tenths = (self.0 % size).saturating_mul(10) / size;
                return if tenths == 0 {
                    write!(f, "{whole} {unit}")
                } else {
                    write!(f, "{whole}.{tenths} {unit}")
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes_parse_strictly() {
        let ok = [
            ("64KiB", 65_536),
            ("512MiB", 512 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("8MiB", 8 << 20),
            ("4096B", 4096),
            ("0B", 0),
            ("500KB", 500_000),
            ("3MB", 3_000_000),
            ("1GB", 1_000_000_000),
            ("1TB", 1_000_000_000_000),
        ];
        for (text, bytes) in ok {
            assert_eq!(text.parse::<ByteSize>().unwrap().bytes(), bytes, "{text}");
        }
        for bad in [
            "", "512", "MiB", "1.5GiB", "-1MiB", "+1MiB", " 1MiB", "1MiB ", "1 MiB", "1mib",
            "1kib", "1KIB", "1K", "1M", "1G", "1iB", "01MiB", "1MiBs", "1MiB/s", "1PiB",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} was accepted");
        }
        assert_eq!("".parse::<ByteSize>(), Err(SizeError::Empty));
        assert!(matches!(
            "99999999999999999999B".parse::<ByteSize>(),
            Err(SizeError::TooLarge(_))
        ));
        assert!(matches!(
            "17179869184GiB".parse::<ByteSize>(),
            Err(SizeError::TooLarge(_))
        ));
        // The largest that fits.
        assert_eq!(
            "16777215TiB".parse::<ByteSize>().unwrap().bytes(),
            16_777_215 << 40
        );
    }

    #[test]
    fn sizes_print_for_people() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (512 << 20, "512 MiB"),
            ((1 << 30) + (1 << 29), "1.5 GiB"),
            ((1 << 30) + 1, "1 GiB"),
            (3 << 40, "3 TiB"),
            (u64::MAX, "16777215.9 TiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize::from_bytes(bytes).to_string(), text, "{bytes}");
        }
    }
}
