//! `fsadmin report metrics`: the master's Prometheus metrics, parsed and shown for people
//! (byte metrics in binary units, durations in seconds, histograms as count and mean) or as JSON.

use std::collections::BTreeMap;

use alluvium_common::prom_text::{parse_sample, Sample};
use alluvium_common::ByteSize;
use serde_json::{json, Value};

/// A metric family: `# HELP`, `# TYPE` and its samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// Parses the Prometheus/OpenMetrics text format. Lines it cannot read are skipped: a report
/// must not fail because one metric is odd.
pub fn parse(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut family_of = |name: &str, families: &mut Vec<Family>| -> usize {
        *index.entry(name.to_string()).or_insert_with(|| {
            families.push(Family {
                name: name.to_string(),
                ..Default::default()
            });
            families.len() - 1
        })
    };
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let i = family_of(name, &mut families);
            families[i].help = unescape(help);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let i = family_of(name, &mut families);
            families[i].kind = kind.trim().to_string();
            typed.insert(name.to_string(), kind.trim().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        let family = family_name(&sample.name, &typed);
        let i = family_of(&family, &mut families);
        families[i].samples.push(sample);
    }
    families.retain(|f| !f.samples.is_empty());
    // Label sets in a stable order: the registry's order follows first use.
    for f in &mut families {
        f.samples.sort_by(|a, b| {
            (&a.labels, &a.name)
                .partial_cmp(&(&b.labels, &b.name))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    families
}

/// The family a sample belongs to: `x_total` → `x` for counters, `x_count`/`x_sum`/`x_bucket` →
/// `x` for histograms and summaries.
fn family_name(sample: &str, typed: &BTreeMap<String, String>) -> String {
    if typed.contains_key(sample) {
        return sample.to_string();
    }
    for suffix in ["_total", "_count", "_sum", "_bucket", "_created"] {
        if let Some(base) = sample.strip_suffix(suffix) {
            if typed.contains_key(base) {
                return base.to_string();
            }
        }
    }
    sample.to_string()
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\\\", "\\")
}

/// A value for people: bytes in binary units, seconds as durations, whole numbers plainly.
pub fn human_value(family: &str, value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if family.contains("bytes") && value >= 0.0 {
        return ByteSize::human(value as u64);
    }
    if family.ends_with("seconds") {
        return format!("{value:.3}s");
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    format!("{value:.3}")
}

fn label_text(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The report: one block per family, its help as the title, one line per label set. Histograms
/// show count, sum and mean per label set (buckets are for dashboards).
pub fn render(families: &[Family]) -> String {
    let mut out = String::from("Master metrics:\n");
    for f in families {
        let title = if f.help.is_empty() {
            f.name.clone()
        } else {
            format!("{} ({})", f.help.trim_end_matches('.'), f.name)
        };
        if f.kind == "histogram" || f.kind == "summary" {
            out.push_str(&format!("    {title}:\n"));
            let mut groups: BTreeMap<String, (f64, f64)> = BTreeMap::new();
            for s in &f.samples {
                let key = label_text(
                    &s.labels
                        .iter()
                        .filter(|(k, _)| k != "le" && k != "quantile")
                        .cloned()
                        .collect::<Vec<_>>(),
                );
                let g = groups.entry(key).or_default();
                if s.name.ends_with("_count") {
                    g.0 = s.value;
                } else if s.name.ends_with("_sum") {
                    g.1 = s.value;
                }
            }
            for (labels, (count, sum)) in groups {
                let mean = if count > 0.0 { sum / count } else { 0.0 };
                out.push_str(&format!(
                    "        {}count {}, sum {}, mean {}\n",
                    if labels.is_empty() {
                        String::new()
                    } else {
                        format!("{labels}: ")
                    },
                    human_value("", count),
                    human_value(&f.name, sum),
                    human_value(&f.name, mean)
                ));
            }
            continue;
        }
        match f.samples.as_slice() {
            [one] if one.labels.is_empty() => {
                out.push_str(&format!(
                    "    {title}: {}\n",
                    human_value(&f.name, one.value)
                ));
            }
            samples => {
                out.push_str(&format!("    {title}:\n"));
                for s in samples {
                    out.push_str(&format!(
                        "        {}: {}\n",
                        if s.labels.is_empty() {
                            "total".to_string()
                        } else {
                            label_text(&s.labels)
                        },
                        human_value(&f.name, s.value)
                    ));
                }
            }
        }
    }
    out.pop();
    out
}

pub fn to_json(families: &[Family]) -> Value {
    Value::Array(
        families
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "type": f.kind,
                    "help": f.help,
                    "samples": f.samples.iter().map(|s| json!({
                        "name": s.name,
                        "labels": s.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                        "value": if s.value.is_finite() { json!(s.value) } else { json!(s.value.to_string()) },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP alluvium_master_live_workers Live workers.
# TYPE alluvium_master_live_workers gauge
alluvium_master_live_workers 2
# HELP alluvium_master_capacity_bytes Total capacity of live workers.
# TYPE alluvium_master_capacity_bytes gauge
alluvium_master_capacity_bytes 134217728
# HELP alluvium_master_rpc Master RPCs.
# TYPE alluvium_master_rpc counter
alluvium_master_rpc_total{method="GetStatus",code="OK"} 12
alluvium_master_rpc_total{method="Mount",code="UNAVAILABLE"} 1
# HELP alluvium_master_rpc_seconds RPC latency.
# TYPE alluvium_master_rpc_seconds histogram
alluvium_master_rpc_seconds_sum{method="GetStatus"} 0.5
alluvium_master_rpc_seconds_count{method="GetStatus"} 10
alluvium_master_rpc_seconds_bucket{le="0.1",method="GetStatus"} 10
alluvium_master_rpc_seconds_bucket{le="+Inf",method="GetStatus"} 10
# EOF
"#;

    #[test]
    fn parses_and_renders() {
        let f = parse(TEXT);
        assert_eq!(f.len(), 4);
        assert_eq!(f[2].name, "alluvium_master_rpc");
        assert_eq!(f[2].samples.len(), 2);
        assert_eq!(
            f[2].samples[0].labels,
            vec![
                ("method".to_string(), "GetStatus".to_string()),
                ("code".to_string(), "OK".to_string())
            ]
        );
        let r = render(&f);
        assert!(
            r.contains("    Live workers (alluvium_master_live_workers): 2"),
            "{r}"
        );
        assert!(
            r.contains("(alluvium_master_capacity_bytes): 128.0MiB"),
            "{r}"
        );
        assert!(r.contains("        method=GetStatus, code=OK: 12"), "{r}");
        assert!(
            r.contains("method=GetStatus: count 10, sum 0.500s, mean 0.050s"),
            "{r}"
        );
        let j = to_json(&f);
        assert_eq!(j[0]["samples"][0]["value"], 2.0);
        assert!(j[3]["samples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["labels"]["le"] == "+Inf" && s["value"] == 10.0));
        assert_eq!(to_json(&parse("x +Inf\n"))[0]["samples"][0]["value"], "inf");
    }

    #[test]
    fn odd_lines_are_skipped() {
        let f = parse("garbage\nx{a=\"1\" 2\ny 3 1700000000\nz{a=\"q\\\"uote\"} 4\n");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].samples[0].value, 3.0);
        assert_eq!(f[1].samples[0].labels[0].1, "q\"uote");
    }
}
