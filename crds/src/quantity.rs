//! Kubernetes quantities for byte sizes, parsed exactly.
//!
//! The schema restricts size fields to [`SIZE_PATTERN`] (or [`QUOTA_PATTERN`] for a tier's quota)
//! so the API server refuses `1GB` or `lots` before the operator sees them; the operator then
//! parses with [`parse_size`] / [`parse_quota`], where `1Gi` is 2^30 bytes and `1G` is 10^9, never
//! confused. Parsing is integer arithmetic on the decimal digits (no floating point), so `1.5Gi`
//! is exactly 1610612736 and a quantity that is not a whole number of bytes (`0.5`, `1.1Ki`) is
//! refused rather than rounded.
//!
//! Which fields take which form:
//! - a tier's `quota` must carry a unit ([`parse_quota`]): a unit-less `8` is far more likely a
//!   forgotten `Gi` than an 8-byte tier, and such a tier would be reported Ready;
//! - every other size (journal size, memory requests and limits, `maxMemory`, PVC capacity) keeps
//!   accepting plain bytes ([`parse_size`]), as Kubernetes does for the same fields of its own
//!   objects; their own minimums (e.g. a 64Mi journal) catch a forgotten unit there.

use std::fmt;

/// Binary (`Ki`..`Pi`) or decimal (`k`, `M`..`P`) suffixes, or plain bytes. Exponent forms and
/// milli-bytes are legal Kubernetes quantities but meaningless as sizes, so they are refused.
pub const SIZE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$";

/// A tier quota: like [`SIZE_PATTERN`] but the unit is required.
pub const QUOTA_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)$";

/// CEL rule (Kubernetes' quantity library) refusing a quantity that is not a whole number of
/// bytes, which no regex can say for binary suffixes (`1.5Gi` is whole, `1.1Ki` is not). It
/// leaves a malformed value to the pattern, so the user sees one message, not two.
///
/// Not `quantity(self).isInteger()`: that is true only when the quantity converts to an int64
/// on a fast path, which a fractional mantissa never does (a real API server refuses `1.5Gi`
/// with it). The float comparison is exact for every fraction a person writes; a fraction
/// beyond float precision (`1.0000000000000001Gi`) passes here and the operator refuses it.
pub const WHOLE_BYTES_RULE: &str = "!isQuantity(self) || double(int(quantity(self).asApproximateFloat())) == quantity(self).asApproximateFloat()";

/// CEL rule refusing a zero quantity (`0Gi`), left to the pattern when malformed.
pub const NOT_ZERO_RULE: &str = "!isQuantity(self) || quantity(self).isGreaterThan(quantity('0'))";

/// CPU quantities: whole or fractional cores, or millicores (`500m`).
pub const CPU_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$";

/// Why a string is not a usable size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeError {
    /// Not of the form `<digits>[.<digits>][suffix]` with a known suffix.
    NotASize,
    /// A plain number where a unit is required (a tier quota).
    NoUnit,
    /// Comes to a fraction of a byte (`0.5`, `1.1Ki`).
    FractionOfAByte,
    /// Does not fit in 64 bits.
    TooLarge,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeError::NotASize => "is not a size quantity (expected e.g. 512Mi, 1Gi, 10G)",
            SizeError::NoUnit => {
                "has no unit (write e.g. 8Gi or 8G; Ki, Mi, Gi, Ti, Pi, k, M, G, T, P)"
            }
            SizeError::FractionOfAByte => "is not a whole number of bytes",
            SizeError::TooLarge => "is too large",
        })
    }
}

/// The multiplier of a quantity suffix; `None` for an unknown one. Case matters, as in
/// Kubernetes: `m` is milli, `K` is nothing.
fn multiplier(suffix: &str) -> Option<u128> {
    Some(match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        _ => return None,
    })
}

/// Exact bytes of a quantity of the shape [`SIZE_PATTERN`] describes, as a typed error.
pub fn size_bytes(q: &str) -> Result<u64, SizeError> {
    let digits_end = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(digits_end);
    let mult = multiplier(suffix).ok_or(SizeError::NotASize)?;
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || (number.contains('.') && !all_digits(frac)) {
        return Err(SizeError::NotASize);
    }
    // value = (int . frac) * mult = (int * 10^len(frac) + frac) * mult / 10^len(frac), in u128
    // so nothing is rounded; more than 38 digits cannot be a u64 anyway.
    let frac = frac.trim_end_matches('0');
    let int = int.trim_start_matches('0');
    if int.len() + frac.len() > 38 {
        return Err(SizeError::TooLarge);
    }
    let scale = 10u128.pow(frac.len() as u32);
    let mantissa: u128 = format!("{int}{frac}").parse().unwrap_or(0);
    let scaled = mantissa.checked_mul(mult).ok_or(SizeError::TooLarge)?;
    if scaled % scale != 0 {
        return Err(SizeError::FractionOfAByte);
    }
    u64::try_from(scaled / scale).map_err(|_| SizeError::TooLarge)
}

/// Exact bytes of a size quantity (unit optional), or a message naming the field and the reason.
pub fn parse_size(field: &str, q: &str) -> Result<u64, String> {
    size_bytes(q).map_err(|e| format!("{field}: '{q}' {e}"))
}

/// Exact bytes of a tier quota: a size that must carry a unit.
pub fn quota_bytes(q: &str) -> Result<u64, SizeError> {
    let bytes = size_bytes(q);
    if bytes != Err(SizeError::NotASize) && q.ends_with(|c: char| c.is_ascii_digit()) {
        return Err(SizeError::NoUnit);
    }
    bytes
}

/// [`quota_bytes`] with a message naming the field and the reason.
pub fn parse_quota(field: &str, q: &str) -> Result<u64, String> {
    quota_bytes(q).map_err(|e| format!("{field}: '{q}' {e}"))
}

/// The canonical Kubernetes form of a byte count: the largest binary unit that divides it
/// exactly, so what the operator writes into a pod spec is exactly what it computed.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u32); 5] = [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
    for (suffix, shift) in UNITS {
        let unit = 1u64 << shift;
        if bytes >= unit && bytes.trailing_zeros() >= shift {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_are_exact() {
        assert_eq!(parse_size("q", "512Mi"), Ok(512 << 20));
        assert_eq!(parse_size("q", "1Gi"), Ok(1 << 30));
        assert_eq!(parse_size("q", "1G"), Ok(1_000_000_000));
        assert_eq!(parse_size("q", "1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_size("q", "4096"), Ok(4096));
        assert_eq!(parse_size("q", "0.5Ki"), Ok(512));
        assert_eq!(parse_size("q", "1.000Ki"), Ok(1024));
        assert_eq!(parse_size("q", "16383Pi"), Ok(16383 << 50));
    }

    #[test]
    fn refuses_non_quantities() {
        for bad in [
            "", "1GB", "lots", "100m", "1e3", "-1Gi", "Gi", " 1Gi", "1gi", "1Ki ", "1.", ".5Gi",
        ] {
            let e = parse_size("tier.quota", bad).unwrap_err();
            assert!(e.starts_with("tier.quota:"), "{e}");
            assert!(e.contains("not a size quantity"), "{bad}: {e}");
        }
    }

    #[test]
    fn refuses_fractions_of_a_byte_instead_of_rounding() {
        for bad in ["0.5", "1.1Ki", "1.5", "0.0001k", "1.0000000001Gi"] {
            assert_eq!(size_bytes(bad), Err(SizeError::FractionOfAByte), "{bad}");
        }
        assert!(parse_size("f", "0.5")
            .unwrap_err()
            .contains("not a whole number of bytes"));
    }

    #[test]
    fn refuses_sizes_beyond_64_bits() {
        assert_eq!(size_bytes("16384Pi"), Err(SizeError::TooLarge));
        assert_eq!(size_bytes("18446744073709551616"), Err(SizeError::TooLarge));
        assert_eq!(size_bytes(&"9".repeat(60)), Err(SizeError::TooLarge));
    }

    #[test]
    fn a_tier_quota_needs_a_unit() {
        assert_eq!(quota_bytes("8"), Err(SizeError::NoUnit));
        assert_eq!(quota_bytes("0.5"), Err(SizeError::NoUnit));
        assert_eq!(quota_bytes("1.1Ki"), Err(SizeError::FractionOfAByte));
        assert_eq!(quota_bytes("8GB"), Err(SizeError::NotASize));
        assert_eq!(quota_bytes("8Gi"), Ok(8 << 30));
        assert_eq!(quota_bytes("8G"), Ok(8_000_000_000));
        assert_eq!(quota_bytes("1.5Gi"), Ok(3 << 29));
        assert!(parse_quota("tier t: quota", "8")
            .unwrap_err()
            .contains("has no unit"));
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(3 << 29), "1536Mi");
        assert_eq!(format_bytes(1_000_000_000), "1000000000");
        assert_eq!(format_bytes(0), "0");
    }
}
