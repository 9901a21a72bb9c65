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
    /// None when the scenario could not run here (see `skipped`).
    pub value: Option<Stat>,
    pub baseline_name: String,
    pub baseline: Option<Stat>,
    /// value.median / baseline.median (for latencies, baseline / value: higher is better).
    pub ratio: Option<f64>,
    /// The target from issue 9, as text (e.g. ">= 1.2x").
    pub target: String,
    pub target_met: Option<bool>,
    /// What the figure counts, when the name alone does not say (e.g. which memory is in RSS).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Why the scenario has no figure in this run (e.g. "fio not found").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub version: String,
    pub quick: bool,
    pub size_bytes: u64,
    pub runs: usize,
    pub metadata_files: usize,
    pub dataset_files: usize,
    pub dataset_bytes: u64,
    pub master_files: usize,
    /// Wall-clock seconds of the whole bench.
    pub elapsed_s: f64,
    pub figures: Vec<Figure>,
}

fn ratio_of(value: &Stat, baseline: Option<&Stat>) -> Option<f64> {
    baseline
        .filter(|b| b.median > 0.0)
        .map(|b| value.median / b.median)
}

impl Report {
    pub fn new(plan: &crate::Plan) -> Self {
        Report {
            version: alluvium_common::VERSION.to_string(),
            quick: plan.quick,
            size_bytes: plan.size,
            runs: plan.runs,
            metadata_files: plan.files,
            dataset_files: plan.dataset_files,
            dataset_bytes: plan.dataset_bytes,
            master_files: plan.master_files,
            elapsed_s: 0.0,
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
            value: Some(value),
            baseline_name: baseline_name.into(),
            baseline,
            ratio,
            target,
            target_met,
            note: String::new(),
            skipped: None,
        });
    }

    /// Attaches a note (what is counted, how it was measured) to the last figure added.
    pub fn note(&mut self, note: impl Into<String>) {
        if let Some(f) = self.figures.last_mut() {
            f.note = note.into();
        }
    }

    /// A scenario without figures in this run, with the reason (and the target it would have
    /// been checked against), so the table shows it rather than silently leaving it out.
    pub fn skip(&mut self, scenario: impl Into<String>, target: &str, reason: impl Into<String>) {
        self.figures.push(Figure {
            scenario: scenario.into(),
            unit: String::new(),
            value: None,
            baseline_name: String::new(),
            baseline: None,
            ratio: None,
            target: target.to_string(),
            target_met: None,
            note: String::new(),
            skipped: Some(reason.into()),
        });
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Alluvium {} bench{}: {} runs per scenario, sequential size {} MiB, {} metadata \
             files, cold/warm dataset {} files / {} MiB, master RSS at {} files ({:.0} s)\n\n",
            self.version,
            if self.quick { " --quick" } else { "" },
            self.runs,
            self.size_bytes >> 20,
            self.metadata_files,
            self.dataset_files,
            self.dataset_bytes >> 20,
            self.master_files,
            self.elapsed_s,
        ));
        out.push_str("| scenario | median | min | max | baseline (same run) | baseline median | ratio | target |\n");
        out.push_str("|---|---:|---:|---:|---|---:|---:|---|\n");
        let mut notes = Vec::new();
        for f in &self.figures {
            let mut scenario = f.scenario.clone();
            if !f.note.is_empty() {
                notes.push(f.note.clone());
                scenario.push_str(&format!(" [{}]", notes.len()));
            }
            let Some(value) = &f.value else {
                let why = f.skipped.as_deref().unwrap_or("no figure");
                out.push_str(&format!(
                    "| {scenario} | skipped: {why} | - | - | - | - | - | {} |\n",
                    f.target
                ));
                continue;
            };
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
                scenario,
                value.median,
                f.unit,
                value.min,
                value.max,
                f.baseline_name,
                b,
                ratio,
                target
            ));
        }
        if !notes.is_empty() {
            out.push('\n');
            for (i, n) in notes.iter().enumerate() {
                out.push_str(&format!("[{}] {n}\n", i + 1));
            }
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
        let args = crate::BenchArgs {
            quick: true,
            size: None,
            runs: 1,
            files: None,
            scenarios: vec![],
            json: "x.json".into(),
        };
        let mut r = Report::new(&crate::Plan::from_args(&args));
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
        r.note("counts VmRSS");
        r.skip("fuse", ">= 0.5x", "fio not found");
        let md = r.markdown();
        assert!(md.contains("| x [1] |"), "{md}");
        assert!(md.contains("[1] counts VmRSS"), "{md}");
        assert!(md.contains("skipped: fio not found"), "{md}");
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["figures"][1]["skipped"], "fio not found");
        assert!(json["figures"][1]["value"].is_null());
    }
}
