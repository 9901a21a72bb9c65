//! The benchmark report: figures with their baselines, as Markdown and JSON.

use std::path::Path;

use alluvium_common::{Error, Result};
use serde::Serialize;

/// Median, min and max of several runs of one measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        if v.is_empty() {
            return Stat {
                median: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }
}

/// One row: a scenario and the baseline it is compared with, in the same unit.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub scenario: String,
    pub unit: String,
    pub value: Stat,
    pub baseline_name: String,
    pub baseline: Option<Stat>,
    /// value.median / baseline.median (for latencies, baseline / value: higher is better).
    pub ratio: Option<f64>,
    /// The target from issue 9, as text (e.g. ">= 1.2x").
    pub target: String,
    pub target_met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: String,
    pub size_bytes: u64,
    pub runs: usize,
    pub metadata_files: usize,
    pub figures: Vec<Figure>,
}

fn ratio_of(value: &Stat, baseline: Option<&Stat>) -> Option<f64> {
    baseline
        .filter(|b| b.median > 0.0)
        .map(|b| value.median / b.median)
}

impl Report {
    pub fn new(size_bytes: u64, runs: usize, metadata_files: usize) -> Self {
        Report {
            version: alluvium_common::VERSION.to_string(),
            size_bytes,
            runs,
            metadata_files,
            figures: Vec::new(),
        }
    }

    /// Adds a throughput-like figure (higher is better) with a minimum ratio target.
    pub fn add(
        &mut self,
        scenario: impl Into<String>,
        unit: &str,
        value: Stat,
        baseline_name: impl Into<String>,
        baseline: Option<Stat>,
        min_ratio: Option<f64>,
    ) {
        let ratio = ratio_of(&value, baseline.as_ref());
        let target = min_ratio.map(|t| (format!(">= {t}x"), ratio.is_some_and(|r| r >= t)));
        self.add_absolute(scenario, unit, value, baseline_name, baseline, target);
    }

    /// Adds a figure with its own target (text, met), the baseline given for context.
    pub fn add_absolute(
        &mut self,
        scenario: impl Into<String>,
        unit: &str,
        value: Stat,
        baseline_name: impl Into<String>,
        baseline: Option<Stat>,
        target: Option<(String, bool)>,
    ) {
        let ratio = ratio_of(&value, baseline.as_ref());
        let (target, target_met) = match target {
            Some((t, m)) => (t, Some(m)),
            None => (String::new(), None),
        };
        self.figures.push(Figure {
            scenario: scenario.into(),
            unit: unit.to_string(),
            value,
            baseline_name: baseline_name.into(),
            baseline,
            ratio,
            target,
            target_met,
        });
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Alluvium {} bench: {} runs per scenario, sequential size {} MiB, {} metadata files\n\n",
            self.version,
            self.runs,
            self.size_bytes >> 20,
            self.metadata_files
        ));
        out.push_str("| scenario | median | min | max | baseline (same run) | baseline median | ratio | target |\n");
        out.push_str("|---|---:|---:|---:|---|---:|---:|---|\n");
        for f in &self.figures {
            let b = f
                .baseline
                .as_ref()
                .map(|b| format!("{:.1}", b.median))
                .unwrap_or_else(|| "-".into());
            let ratio = f
                .ratio
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_else(|| "-".into());
            let target = match f.target_met {
                Some(true) => format!("{} met", f.target),
                Some(false) => format!("{} MISSED", f.target),
                None => f.target.clone(),
            };
            out.push_str(&format!(
                "| {} | {:.1} {} | {:.1} | {:.1} | {} | {} | {} | {} |\n",
                f.scenario,
                f.value.median,
                f.unit,
                f.value.min,
                f.value.max,
                f.baseline_name,
                b,
                ratio,
                target
            ));
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::internal(format!("bench report: {e}")))?;
        std::fs::write(path, text)
            .map_err(|e| Error::from(e).context(format!("writing {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Stat::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Stat::of(&[4.0, 1.0]);
        assert_eq!(s.median, 2.5);
        assert_eq!(Stat::of(&[]).median, 0.0);
    }

    #[test]
    fn ratios_and_targets() {
        let mut r = Report::new(1, 1, 1);
        r.add(
            "x",
            "MiB/s",
            Stat::of(&[120.0]),
            "shm",
            Some(Stat::of(&[100.0])),
            Some(1.2),
        );
        assert!((r.figures[0].ratio.unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(r.figures[0].target_met, Some(true));
        assert!(r.markdown().contains("1.20x"));
    }
}
