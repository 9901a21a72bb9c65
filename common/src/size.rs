//! Exact byte sizes. `1GiB` is 2^30 bytes and `1GB` is 10^9: the two are never confused, because
//! a MEM tier sized in the wrong unit is how workers get OOM-killed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const KIB: u64 = 1 << 10;
    pub const MIB: u64 = 1 << 20;
    pub const GIB: u64 = 1 << 30;
    pub const TIB: u64 = 1 << 40;

    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Human form with binary units and one decimal: `1.5GiB`, `512B`.
    pub fn human(bytes: u64) -> String {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        if bytes < 1024 {
            return format!("{bytes}B");
        }
        let mut value = bytes as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        format!("{value:.1}{}", UNITS[unit])
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ByteSize::human(self.0))
    }
}

impl FromStr for ByteSize {
    type Err = Error;

    /// Accepts a plain number of bytes or a number with a unit: `B`, `K`/`KB` (10^3), `KiB`/`Ki`
    /// (2^10), and likewise `M`, `G`, `T`, `P`; case-insensitive, spaces allowed, decimals allowed
    /// (`1.5GiB`). Kubernetes quantities (`512Mi`, `1G`) parse the same way.
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let bad = || {
            Error::invalid_argument(format!(
                "invalid size '{s}': expected e.g. 512MiB, 1GiB, 1GB or a byte count"
            ))
        };
        if num.is_empty() {
            return Err(bad());
        }
        let multiplier: u64 = match unit.as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "ki" | "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mi" | "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gi" | "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "ti" | "tib" => 1 << 40,
            "p" | "pb" => 1_000_000_000_000_000,
            "pi" | "pib" => 1 << 50,
            _ => return Err(bad()),
        };
        let bytes = if let Ok(n) = num.parse::<u64>() {
            n.checked_mul(multiplier).ok_or_else(bad)?
        } else {
            let f: f64 = num.parse().map_err(|_| bad())?;
            let v = f * multiplier as f64;
            if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
                return Err(bad());
            }
            v.round() as u64
        };
        Ok(ByteSize(bytes))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units_differ() {
        assert_eq!("1GiB".parse::<ByteSize>().unwrap().0, 1 << 30);
        assert_eq!("1GB".parse::<ByteSize>().unwrap().0, 1_000_000_000);
        assert_eq!("512Mi".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("1.5 KiB".parse::<ByteSize>().unwrap().0, 1536);
        assert_eq!("42".parse::<ByteSize>().unwrap().0, 42);
        assert_eq!("64mib".parse::<ByteSize>().unwrap().0, 64 << 20);
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "GiB", "1XB", "-1", "1e99PiB", "99999999999999999999"] {
            assert!(s.parse::<ByteSize>().is_err(), "{s}");
        }
    }

    #[test]
    fn human_form() {
        assert_eq!(ByteSize::human(0), "0B");
        assert_eq!(ByteSize::human(1536), "1.5KiB");
        assert_eq!(ByteSize::human(1 << 30), "1.0GiB");
    }
}
