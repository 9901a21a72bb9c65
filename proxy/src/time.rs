//! Time formats of the two protocols: HTTP dates, ISO 8601 (S3 XML) and the compact form of
//! Signature V4 (`20130524T000000Z`), on the calendar of [`alluvium_common::time`].

use alluvium_common::time::{days_from_civil, UtcTime};

pub use alluvium_common::time::now_ms;

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 IMF-fixdate).
pub fn http_date(ms: i64) -> String {
    UtcTime::from_ms(ms).http_date()
}

/// `2009-10-12T17:50:30.000Z`, as S3 XML carries times.
pub fn iso8601(ms: i64) -> String {
    UtcTime::from_ms(ms).iso8601_millis()
}

/// Parses Signature V4's `YYYYMMDDTHHMMSSZ` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo as u32, d as u32) * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (RFC 7231's example).
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(iso8601(1_255_369_830_123), "2009-10-12T17:50:30.123Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_amz_dates() {
        assert_eq!(parse_amz_date("19941106T084937Z"), Some(784_111_777));
        assert_eq!(parse_amz_date("20000229T000000Z"), Some(951_782_400));
        assert_eq!(parse_amz_date("2000-02-29"), None);
        assert_eq!(parse_amz_date("20001329T000000Z"), None);
        assert_eq!(parse_amz_date("2000022xT000000Z"), None);
    }
}
