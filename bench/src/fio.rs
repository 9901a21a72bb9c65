//! fio, the storage benchmark everyone already trusts: one job run as a child process and its
//! `--output-format=json` result read back.

use std::path::{Path, PathBuf};
use std::process::Command;

use alluvium_common::{Error, Result};
use serde::Deserialize;

/// One fio job over an existing file.
#[derive(Debug, Clone)]
pub struct FioJob {
    pub file: PathBuf,
    /// `read` or `randread`.
    pub rw: &'static str,
    /// Block size in bytes.
    pub bs: u64,
    /// Bytes of the file the job covers (the file must be at least this long).
    pub size: u64,
    /// Seconds of a time-based run; `None` reads `size` once.
    pub runtime_s: Option<u64>,
}

impl FioJob {
    /// The command-line arguments: psync (plain pread), one job, page cache of the file dropped
    /// first (`--invalidate=1`), read-only so fio never lays out or changes the file.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--name=bench".to_string(),
            format!("--filename={}", self.file.display()),
            format!("--rw={}", self.rw),
            format!("--bs={}", self.bs),
            format!("--size={}", self.size),
            "--ioengine=psync".into(),
            "--invalidate=1".into(),
            "--numjobs=1".into(),
            "--readonly".into(),
            "--output-format=json".into(),
        ];
        if let Some(s) = self.runtime_s {
            a.push("--time_based".into());
            a.push(format!("--runtime={s}"));
        }
        a
    }
}

/// The read side of a fio job's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FioResult {
    pub bw_bytes: f64,
    pub iops: f64,
    pub io_bytes: u64,
}

impl FioResult {
    pub fn mib_per_s(&self) -> f64 {
        self.bw_bytes / (1u64 << 20) as f64
    }
}

#[derive(Deserialize)]
struct Output {
    jobs: Vec<Job>,
}

#[derive(Deserialize)]
struct Job {
    #[serde(default)]
    error: i64,
    read: Side,
}

#[derive(Deserialize)]
struct Side {
    bw_bytes: f64,
    iops: f64,
    io_bytes: u64,
}

/// Parses fio's JSON output. Older fio versions print notes before the JSON document on stdout,
/// so parsing starts at the first `{`.
pub fn parse_output(stdout: &str) -> Result<FioResult> {
    let start = stdout
        .find('{')
        .ok_or_else(|| Error::internal("fio printed no JSON result"))?;
    let out: Output = serde_json::from_str(&stdout[start..])
        .map_err(|e| Error::internal(format!("fio's JSON result is not understood: {e}")))?;
    let job = out
        .jobs
        .first()
        .ok_or_else(|| Error::internal("fio's JSON result has no job"))?;
    if job.error != 0 {
        return Err(Error::internal(format!(
            "fio job failed with error {} ({})",
            job.error,
            std::io::Error::from_raw_os_error(job.error as i32)
        )));
    }
    if job.read.io_bytes == 0 {
        return Err(Error::internal("fio read nothing"));
    }
    Ok(FioResult {
        bw_bytes: job.read.bw_bytes,
        iops: job.read.iops,
        io_bytes: job.read.io_bytes,
    })
}

/// The fio binary on PATH, if any.
pub fn find_fio() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("fio"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `job` with the fio at `fio` and returns its read result (blocking).
pub fn run(fio: &Path, job: &FioJob) -> Result<FioResult> {
    let out = Command::new(fio)
        .args(job.args())
        .output()
        .map_err(|e| Error::internal(format!("cannot run {}: {e}", fio.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::internal(format!(
            "fio {} of {} exited with {}: {}",
            job.rw,
            job.file.display(),
            out.status,
            stderr.trim()
        )));
    }
    parse_output(&stdout)
        .map_err(|e| e.context(format!("fio {} of {}", job.rw, job.file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from fio 3.33's `--output-format=json`.
    const OUTPUT: &str = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{
  "fio version" : "fio-3.33",
  "jobs" : [
    {
      "jobname" : "bench",
      "error" : 0,
      "read" : {
        "io_bytes" : 65908736,
        "io_kbytes" : 64364,
        "bw_bytes" : 65842893,
        "bw" : 64299,
        "iops" : 16074.925075,
        "runtime" : 1001,
        "clat_ns" : { "percentile" : { "50.000000" : 1000 } }
      },
      "write" : { "io_bytes" : 0, "bw_bytes" : 0, "iops" : 0.0 }
    }
  ]
}"#;

    #[test]
    fn parses_read_bandwidth_and_iops() {
        let r = parse_output(OUTPUT).unwrap();
        assert_eq!(r.io_bytes, 65908736);
        assert!((r.iops - 16074.925075).abs() < 1e-6);
        assert!((r.mib_per_s() - 62.79).abs() < 0.01);
    }

    #[test]
    fn failed_or_empty_jobs_are_errors() {
        let failed = OUTPUT.replace("\"error\" : 0", "\"error\" : 5");
        assert!(parse_output(&failed)
            .unwrap_err()
            .message
            .contains("error 5"));
        let empty = OUTPUT.replace("\"io_bytes\" : 65908736", "\"io_bytes\" : 0");
        assert!(parse_output(&empty).is_err());
        assert!(parse_output("fio: no such file").is_err());
        assert!(parse_output("{\"jobs\": []}").is_err());
    }

    #[test]
    fn job_arguments() {
        let job = FioJob {
            file: "/mnt/a/seq".into(),
            rw: "randread",
            bs: 4096,
            size: 1 << 20,
            runtime_s: Some(2),
        };
        let a = job.args();
        assert!(a.contains(&"--filename=/mnt/a/seq".to_string()));
        assert!(a.contains(&"--bs=4096".to_string()));
        assert!(a.contains(&"--runtime=2".to_string()));
        assert!(a.contains(&"--readonly".to_string()));
    }

    #[test]
    fn runs_fio_when_installed() {
        let fio = find_fio().expect("fio on PATH (scripts/setup.sh installs it)");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
        let r = run(
            &fio,
            &FioJob {
                file,
                rw: "read",
                bs: 1 << 16,
                size: 1 << 20,
                runtime_s: None,
            },
        )
        .unwrap();
        assert_eq!(r.io_bytes, 1 << 20);
    }
}
