//! Resident memory of a process, from `/proc/<pid>/status`.
//!
//! VmRSS = RssAnon (heap, stacks) + RssFile (mapped files and the binary) + RssShmem (mapped
//! tmpfs/shared memory, e.g. tier files in /dev/shm the process has mmapped). Pages of tmpfs files
//! a process only read(2)/write(2)s are in the page cache, not in its RSS.

use alluvium_common::{Error, Result};
use serde::Serialize;

/// Memory figures of one process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemStatus {
    pub vm_rss: u64,
    /// Peak resident set ("high water mark").
    pub vm_hwm: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
}

/// Parses the text of `/proc/<pid>/status`. VmRSS is required; the breakdown (Linux ≥ 4.5) is
/// zero when absent.
pub fn parse_status(text: &str) -> Result<MemStatus> {
    let mut m = MemStatus::default();
    let mut saw_rss = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let field = match key.trim() {
            "VmRSS" => {
                saw_rss = true;
                &mut m.vm_rss
            }
            "VmHWM" => &mut m.vm_hwm,
            "RssAnon" => &mut m.rss_anon,
            "RssFile" => &mut m.rss_file,
            "RssShmem" => &mut m.rss_shmem,
            _ => continue,
        };
        *field = parse_kb(value).ok_or_else(|| {
            Error::internal(format!("unexpected /proc status line '{}'", line.trim()))
        })?;
    }
    if !saw_rss {
        return Err(Error::internal(
            "no VmRSS line in /proc status (a kernel thread, or not Linux?)",
        ));
    }
    Ok(m)
}

/// `   123456 kB` → bytes.
fn parse_kb(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// Reads the memory figures of process `pid`.
pub fn mem_status(pid: u32) -> Result<MemStatus> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::from(e).context(format!("reading {path}")))?;
    parse_status(&text).map_err(|e| e.context(path))
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\talluvium\nUmask:\t0022\nState:\tS (sleeping)\n\
        VmPeak:\t 1234567 kB\nVmHWM:\t   90000 kB\nVmRSS:\t   81920 kB\nRssAnon:\t   61440 kB\n\
        RssFile:\t   20000 kB\nRssShmem:\t     480 kB\nThreads:\t12\n";

    #[test]
    fn parses_rss_and_breakdown() {
        let m = parse_status(STATUS).unwrap();
        assert_eq!(m.vm_rss, 81920 * 1024);
        assert_eq!(m.vm_hwm, 90000 * 1024);
        assert_eq!(m.rss_anon, 61440 * 1024);
        assert_eq!(m.rss_file, 20000 * 1024);
        assert_eq!(m.rss_shmem, 480 * 1024);
        assert_eq!(mib(m.vm_rss), 80.0);
    }

    #[test]
    fn missing_or_bad_rss_is_an_error() {
        assert!(parse_status("Name:\tkthreadd\nThreads:\t1\n").is_err());
        assert!(parse_status("VmRSS:\t lots kB\n").is_err());
        assert!(parse_status("VmRSS:\t 12 MB\n").is_err());
    }

    #[test]
    fn reads_this_process() {
        let m = mem_status(std::process::id()).unwrap();
        assert!(m.vm_rss > 0);
        assert!(m.vm_hwm >= m.vm_rss);
    }
}
