//! Wall-clock helpers, and the one UTC calendar every output format is written with (HTTP
//! dates, S3's ISO 8601, `ls` columns, the web UI), converted without a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A Unix time in milliseconds as UTC calendar fields (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl UtcTime {
    pub fn from_ms(ms: i64) -> Self {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod % 3600 / 60,
            second: sod % 60,
            milli: ms.rem_euclid(1000) as u32,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 7231 IMF-fixdate).
    pub fn http_date(&self) -> String {
        format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
            WEEKDAYS[self.weekday as usize],
            self.day,
            MONTHS[(self.month - 1) as usize],
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `2009-10-12T17:50:30.000Z`, as S3 XML carries times.
    pub fn iso8601_millis(&self) -> String {
        format!("{}T{}.{:03}Z", self.date(), self.time(), self.milli)
    }

    /// `2009-10-12`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `17:50:30`.
    pub fn time(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// POSIX permission bits as `drwxr-xr-x` (setuid/setgid/sticky as s/S, t/T like `ls -l`).
pub fn mode_string(mode: u32, is_dir: bool) -> String {
    let mut s = String::with_capacity(10);
    s.push(if is_dir { 'd' } else { '-' });
    let specials = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, shift) in [6u32, 3, 0].into_iter().enumerate() {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let (flag, on, off) = specials[i];
        s.push(match (mode & flag != 0, bits & 1 != 0) {
            (true, true) => on,
            (true, false) => off,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (RFC 7231's example).
        let t = UtcTime::from_ms(784_111_777_000);
        assert_eq!(t.http_date(), "Sun, 06 Nov 1994 08:49:37 GMT");
        let t = UtcTime::from_ms(1_255_369_830_123);
        assert_eq!(t.iso8601_millis(), "2009-10-12T17:50:30.123Z");
        assert_eq!(
            UtcTime::from_ms(0).iso8601_millis(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(UtcTime::from_ms(951_782_400_000).date(), "2000-02-29");
        // Before the epoch: the calendar and the clock both count back.
        let t = UtcTime::from_ms(-1);
        assert_eq!(
            (t.date(), t.time(), t.milli),
            ("1969-12-31".into(), "23:59:59".into(), 999)
        );
    }

    #[test]
    fn days_and_dates_agree() {
        for days in [-800_000, -1, 0, 59, 10_956, 11_016, 2_932_896] {
            let t = UtcTime::from_ms(days * 86_400_000);
            assert_eq!(days_from_civil(t.year, t.month, t.day), days, "{t:?}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(mode_string(0o755, true), "drwxr-xr-x");
        assert_eq!(mode_string(0o644, false), "-rw-r--r--");
        assert_eq!(mode_string(0o1777, true), "drwxrwxrwt");
        assert_eq!(mode_string(0o4644, false), "-rwSr--r--");
        assert_eq!(mode_string(0o4640, false), "-rwSr-----");
    }
}
