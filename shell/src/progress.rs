//! Progress of long work (copies, loads, persists): an indicatif bar with bytes, rate and ETA
//! when stdout is a terminal, plain lines otherwise (logs and scripts stay readable).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alluvium_common::ByteSize;
use indicatif::{ProgressBar, ProgressStyle};

use super::out;

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    done: AtomicU64,
    /// Files finished and the number of files, when the work is counted in files too.
    files_done: AtomicU64,
    files_total: Option<u64>,
    started: Instant,
}

/// The plain form of progress: `12.0MiB / 64.0MiB (18%), 3.0MiB/s, ETA 17s`.
pub fn progress_line(done: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let pct = done.saturating_mul(100).checked_div(total).unwrap_or(100);
    let eta = if done >= total {
        "0s".to_string()
    } else if rate > 0.0 {
        let left = Duration::from_secs(((total - done) as f64 / rate).ceil() as u64);
        humantime::format_duration(left).to_string()
    } else {
        "unknown".to_string()
    };
    format!(
        "{} / {} ({pct}%), {}/s, ETA {eta}",
        ByteSize::human(done),
        ByteSize::human(total),
        ByteSize::human(rate as u64)
    )
}

impl Progress {
    /// A progress display of `total` bytes; a bar only when stdout is a terminal.
    pub fn new(label: &str, total: u64) -> Self {
        Self::with_terminal(label, total, std::io::stdout().is_terminal())
    }

    pub fn with_terminal(label: &str, total: u64, terminal: bool) -> Self {
        Self::build(label, total, None, terminal)
    }

    /// A progress display counting files as well as bytes (`distributedLoad`).
    pub fn with_files(label: &str, total_bytes: u64, total_files: u64) -> Self {
        Self::build(
            label,
            total_bytes,
            Some(total_files),
            std::io::stdout().is_terminal(),
        )
    }

    fn build(label: &str, total: u64, files_total: Option<u64>, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        let p = Self {
            bar,
            label: label.to_string(),
            total,
            done: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            files_total,
            started: Instant::now(),
        };
        if let Some(b) = &p.bar {
            b.set_message(p.message());
        }
        p
    }

    /// The bar's label: the command, and `3/10 files` when files are counted.
    fn message(&self) -> String {
        match self.files_total {
            Some(t) => format!(
                "{} {}/{t} files",
                self.label,
                self.files_done.load(Ordering::Relaxed)
            ),
            None => self.label.clone(),
        }
    }

    /// Counts a finished file.
    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_message(self.message());
        }
    }

    /// `[3/10 files, 12.0MiB / 64.0MiB (18%), 3.0MiB/s, ETA 17s]`: the state in one bracket, for
    /// plain per-file lines.
    pub fn status(&self) -> String {
        let bytes = progress_line(
            self.done.load(Ordering::Relaxed),
            self.total,
            self.started.elapsed(),
        );
        match self.files_total {
            Some(t) => format!(
                "[{}/{t} files, {bytes}]",
                self.files_done.load(Ordering::Relaxed)
            ),
            None => format!("[{bytes}]"),
        }
    }

    /// Whether a live bar is drawn (a terminal); plain lines otherwise.
    pub fn is_bar(&self) -> bool {
        self.bar.is_some()
    }

    pub fn inc(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn println(&self, line: impl AsRef<str>) {
        match &self.bar {
            Some(b) => b.println(line.as_ref()),
            None => out::line(line),
        }
    }

    /// Ends the display; in plain mode prints the totals when there was more than nothing.
    pub fn finish(&self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => {
                let done = self.done.load(Ordering::Relaxed);
                if self.total > 0 {
                    out::line(progress_line(done, self.total, self.started.elapsed()));
                }
            }
        }
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_progress_lines() {
        let l = progress_line(12 << 20, 64 << 20, Duration::from_secs(4));
        assert_eq!(l, "12.0MiB / 64.0MiB (18%), 3.0MiB/s, ETA 18s");
        assert_eq!(
            progress_line(10, 10, Duration::from_secs(1)),
            "10B / 10B (100%), 10B/s, ETA 0s"
        );
        assert!(progress_line(0, 10, Duration::ZERO).ends_with("ETA unknown"));
        assert!(progress_line(0, 0, Duration::ZERO).contains("(100%)"));
    }

    #[test]
    fn counts_files_too() {
        let p = Progress::build("distributedLoad", 100, Some(4), false);
        p.inc(50);
        p.file_done();
        assert_eq!(p.message(), "distributedLoad 1/4 files");
        let s = p.status();
        assert!(s.starts_with("[1/4 files, 50B / 100B (50%)"), "{s}");
        assert!(!p.is_bar());
    }

    #[test]
    fn counts_without_a_terminal() {
        let p = Progress::with_terminal("copy", 100, false);
        p.inc(40);
        p.inc(60);
        assert_eq!(p.done(), 100);
        assert!(p.bar.is_none());
    }
}
