//! Kubernetes quantities for byte sizes, parsed exactly.
//!
//! The schema restricts size fields to [`SIZE_PATTERN`] so the API server refuses `1GB` or `lots`
//! before the operator sees them; the operator then parses with [`parse_size`] (via
//! `alluvium_common::ByteSize`), where `1Gi` is 2^30 bytes and `1G` is 10^9, never confused.

use alluvium_common::ByteSize;

/// Binary (`Ki`..`Pi`) or decimal (`k`, `M`..`P`) suffixes, or plain bytes. Exponent forms and
/// milli-bytes are legal Kubernetes quantities but meaningless as sizes, so they are refused.
pub const SIZE_PATTERN: &str = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$";

/// CPU quantities: whole or fractional cores, or millicores (`500m`).
pub const CPU_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?|[0-9]+m)$";

/// Exact bytes of a size quantity, or a message naming the field and the reason.
pub fn parse_size(field: &str, q: &str) -> Result<u64, String> {
    let t = q.trim();
    let shape_ok = !t.is_empty()
        && t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && !t.ends_with(['e', 'E', 'm'])
        && !t.contains(['b', 'B']);
    if !shape_ok {
        return Err(format!(
            "{field}: '{q}' is not a size quantity (expected e.g. 512Mi, 1Gi, 10G)"
        ));
    }
    t.parse::<ByteSize>().map(|b| b.0).map_err(|_| {
        format!("{field}: '{q}' is not a size quantity (expected e.g. 512Mi, 1Gi, 10G)")
    })
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
    }

    #[test]
    fn refuses_non_quantities() {
        for bad in ["", "1GB", "lots", "100m", "1e3", "-1Gi", "Gi"] {
            let e = parse_size("tier.quota", bad).unwrap_err();
            assert!(e.starts_with("tier.quota:"), "{e}");
        }
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(format_bytes(1 << 30), "1Gi");
        assert_eq!(format_bytes(3 << 29), "1536Mi");
        assert_eq!(format_bytes(1_000_000_000), "1000000000");
        assert_eq!(format_bytes(0), "0");
    }

    #[test]
    fn pattern_matches_what_parse_accepts() {
        // The schema pattern and parse_size agree on the common forms.
        for ok in ["1Gi", "512Mi", "10G", "1.5Ti", "100"] {
            assert!(parse_size("q", ok).is_ok(), "{ok}");
        }
        assert!(SIZE_PATTERN.contains("Gi"));
    }
}
