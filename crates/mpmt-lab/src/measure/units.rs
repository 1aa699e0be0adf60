//! Units of measured quantities and their human-readable formatting.
//!
//! Samples are stored as `f64` in the base unit named by [`Unit`] (seconds, bytes, a plain
//! count), so a [`crate::measure::Summary`] needs no unit of its own and JSON consumers read
//! SI values. Only rendering scales them (`92.4 µs`, `3.1 MiB`), in [`Unit::format`].
//! [`parse_bytes`] reads a size a person typed (`256MiB`, `64`, `1.5 GB`); [`capitalise`]
//! starts a sentence assembled from measured clauses.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The base unit of a measured series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Seconds (a duration or a latency).
    Seconds,
    /// Bytes (a memory size).
    Bytes,
    /// A dimensionless count or ratio.
    Count,
}

impl Unit {
    /// Formats `value` (in this base unit) with a scaled prefix and three significant digits.
    pub fn format(self, value: f64) -> String {
        match self {
            Unit::Seconds => format_seconds(value),
            Unit::Bytes => format_bytes(value),
            Unit::Count => sig3(value),
        }
    }
}

/// Seconds of a [`Duration`] as `f64`, the lab's sample type for times.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Formats seconds as ns, µs, ms or s with three significant digits: `92.4 µs`.
pub fn format_seconds(s: f64) -> String {
    let a = s.abs();
    let (v, unit) = if a < 1e-6 {
        (s * 1e9, "ns")
    } else if a < 1e-3 {
        (s * 1e6, "µs")
    } else if a < 1.0 {
        (s * 1e3, "ms")
    } else {
        (s, "s")
    };
    format!("{} {unit}", sig3(v))
}

/// Formats bytes with binary prefixes: `3.10 MiB`.
pub fn format_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v.abs() >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{} {}", sig3(v), UNITS[i])
}

/// `s` with its first character in upper case: a summary sentence built from clauses that
/// each start in lower case ("on one core …; on two cores …").
pub fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Three significant digits without exponent: 0.123, 1.23, 12.3, 123, 1234.
fn sig3(v: f64) -> String {
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_seconds() {
        assert_eq!(format_seconds(92.44e-6), "92.4 µs");
        assert_eq!(format_seconds(1.5e-6), "1.50 µs");
        assert_eq!(format_seconds(850e-9), "850 ns");
        assert_eq!(format_seconds(0.84e-3), "840 µs");
        assert_eq!(format_seconds(2.0), "2.00 s");
    }

    #[test]
    fn scales_bytes() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(3.1 * 1024.0 * 1024.0), "3.10 MiB");
        assert_eq!(Unit::Count.format(4.567), "4.57");
    }

    #[test]
    fn capitalises_first_letter() {
        assert_eq!(capitalise("on one core"), "On one core");
        assert_eq!(capitalise("überall"), "Überall");
        assert_eq!(capitalise(""), "");
    }
}

/// Parses a byte size: a number with an optional unit, case-insensitive: `B`; `KB`, `MB`,
/// `GB` (powers of 1000); `KiB`, `MiB`, `GiB` (powers of 1024). A bare `K`, `M` or `G` is
/// refused as ambiguous. Hand-written: a dozen lines, not worth a dependency.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("'{text}' is not a size; e.g. 64, 4KiB, 256MiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "kb" => 1000,
        "mb" => 1000_u64.pow(2),
        "gb" => 1000_u64.pow(3),
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{text}'; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = number * scale as f64;
    if !(1.0..1e18).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(format!("size '{text}' is not a whole number of bytes from 1 up"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod parse_tests {
    use super::parse_bytes;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        assert_eq!(parse_bytes("2kb"), Ok(2000));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("4k").is_err(), "ambiguous");
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("0.5").is_err());
    }
}
