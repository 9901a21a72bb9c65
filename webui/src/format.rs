//! Values for people: binary byte units, durations, UTC timestamps, POSIX modes.

use alluvium_common::time::{mode_string, UtcTime};

/// Bytes in binary units, e.g. `1.50 GiB` (exact bytes below 1 KiB).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {}", UNITS[u])
}

/// A rate in bytes per second.
pub fn bytes_per_sec(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "0 B/s".into();
    }
    format!("{}/s", bytes(v.round() as u64))
}

/// A duration in milliseconds as `3d 4h`, `2h 5m`, `4m 10s`, `12s`, `250 ms`.
pub fn duration_ms(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 && s == 0 {
        format!("{m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Milliseconds since the Unix epoch as `2024-05-01 12:00:00 UTC`; 0 or less as `-`.
pub fn timestamp_ms(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    let t = UtcTime::from_ms(ms);
    format!("{} {} UTC", t.date(), t.time())
}

/// How long ago `then_ms` was, seen at `now_ms`: `5s ago`.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    if then_ms <= 0 {
        return "never".into();
    }
    format!("{} ago", duration_ms((now_ms - then_ms).max(0)))
}

/// POSIX permission bits as `drwxr-xr-x` (with setuid/setgid/sticky letters).
pub fn mode(mode: u32, is_dir: bool) -> String {
    mode_string(mode, is_dir)
}

/// `used / capacity` as a percentage with one decimal; `-` without capacity.
pub fn percent(used: u64, capacity: u64) -> String {
    if capacity == 0 {
        return "-".into();
    }
    format!("{:.1}%", used as f64 * 100.0 / capacity as f64)
}

/// A plain number with up to two decimals, trailing zeros dropped.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(bytes(200 << 20), "200 MiB");
        assert_eq!(duration_ms(250), "250 ms");
        assert_eq!(duration_ms(65_000), "1m 5s");
        assert_eq!(duration_ms(60_000), "1m");
        assert_eq!(duration_ms(90_061_000), "1d 1h");
        assert_eq!(timestamp_ms(0), "-");
        assert_eq!(timestamp_ms(1_700_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(timestamp_ms(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(mode(0o755, true), "drwxr-xr-x");
        assert_eq!(mode(0o644, false), "-rw-r--r--");
        assert_eq!(mode(0o1777, true), "drwxrwxrwt");
        assert_eq!(mode(0o4640, false), "-rwSr-----");
        assert_eq!(percent(1, 4), "25.0%");
        assert_eq!(percent(1, 0), "-");
        assert_eq!(number(2.50), "2.5");
        assert_eq!(number(3.0), "3");
        assert_eq!(ago(1000, 6000), "5s ago");
    }
}
