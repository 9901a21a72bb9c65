//! Charts as inline SVG, drawn on the server: usage bars and small line charts over time.

use maud::{html, Markup};

use crate::format;

/// Colours of successive series (readable on white, distinct for common colour blindness).
pub const PALETTE: [&str; 8] = [
    "#2458c6", "#e07b00", "#1f8a4c", "#c53030", "#7b4fc9", "#0f8b8d", "#b0487f", "#6b7280",
];

/// A horizontal bar showing `used` of `capacity`, with the figures under it.
pub fn usage_bar(used: u64, capacity: u64) -> Markup {
    let frac = if capacity == 0 {
        0.0
    } else {
        (used as f64 / capacity as f64).clamp(0.0, 1.0)
    };
    let colour = if frac >= 0.95 {
        "#c53030"
    } else if frac >= 0.8 {
        "#e07b00"
    } else {
        "#2458c6"
    };
    let width = format!("{:.2}", frac * 100.0);
    html! {
        div.bar {
            svg viewBox="0 0 100 6" preserveAspectRatio="none" role="img"
                aria-label=(format!("{} of {} used", format::bytes(used), format::bytes(capacity))) {
                rect x="0" y="0" width="100" height="6" rx="1" fill="#e6e9ef" {}
                rect x="0" y="0" width=(width) height="6" rx="1" fill=(colour) {}
            }
            div.bar-text {
                (format::bytes(used)) " / " (format::bytes(capacity))
                " (" (format::percent(used, capacity)) ")"
            }
        }
    }
}

/// One line of a chart: points are (time in ms, value).
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(i64, f64)>,
}

/// How a chart's values read: the unit formatter for the axis and the legend.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Plain numbers, with a suffix such as "/s" or " ms".
    Plain(&'static str),
    BytesPerSec,
    Bytes,
    Percent,
}

impl Unit {
    fn fmt(self, v: f64) -> String {
        match self {
            Unit::Plain(suffix) => format!("{}{suffix}", format::number(v)),
            Unit::BytesPerSec => format::bytes_per_sec(v),
            Unit::Bytes => format::bytes(v.max(0.0).round() as u64),
            Unit::Percent => format!("{}%", format::number(v)),
        }
    }
}

const W: f64 = 360.0;
const H: f64 = 150.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// A small line chart over the window [`from_ms`, `to_ms`], with a legend showing each series'
/// latest value. Series without points are listed in the legend only.
pub fn line_chart(title: &str, unit: Unit, from_ms: i64, to_ms: i64, series: &[Series]) -> Markup {
    let span = (to_ms - from_ms).max(1) as f64;
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = match unit {
        Unit::Percent => 100.0,
        _ => nice_ceiling(max),
    };
    let x = |t: i64| LEFT + (t - from_ms) as f64 / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - (v / top).clamp(0.0, 1.0)) * (H - TOP - BOTTOM);
    let minutes = ((to_ms - from_ms) as f64 / 60_000.0).round() as i64;
    html! {
        div.chart.panel {
            h3 { (title) }
            svg viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
                // Grid lines at 0, 50% and 100% of the axis.
                @for frac in [0.0, 0.5, 1.0] {
                    line x1=(LEFT) x2=(W - RIGHT) y1=(y(top * frac)) y2=(y(top * frac))
                        stroke="#e3e7ee" stroke-width="1" {}
                    text x=(LEFT - 6.0) y=(y(top * frac) + 4.0) text-anchor="end"
                        font-size="10" fill="#5d6677" { (unit.fmt(top * frac)) }
                }
                text x=(LEFT) y=(H - 6.0) font-size="10" fill="#5d6677" {
                    "-" (minutes) " min"
                }
                text x=(W - RIGHT) y=(H - 6.0) text-anchor="end" font-size="10" fill="#5d6677" { "now" }
                @for (i, s) in series.iter().enumerate() {
                    @if s.points.len() == 1 {
                        circle cx=(format!("{:.1}", x(s.points[0].0))) cy=(format!("{:.1}", y(s.points[0].1)))
                            r="2.5" fill=(PALETTE[i % PALETTE.len()]) {}
                    } @else if !s.points.is_empty() {
                        polyline fill="none" stroke=(PALETTE[i % PALETTE.len()]) stroke-width="1.8"
                            stroke-linejoin="round"
                            points=(s.points.iter()
                                .filter(|p| p.1.is_finite())
                                .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
                                .collect::<Vec<_>>().join(" ")) {}
                    }
                }
            }
            div.legend {
                @if series.is_empty() {
                    span.muted { "no data yet" }
                }
                @for (i, s) in series.iter().enumerate() {
                    span {
                        i style=(format!("background:{}", PALETTE[i % PALETTE.len()])) {}
                        (s.name) ": "
                        strong { (s.points.last().map(|p| unit.fmt(p.1)).unwrap_or_else(|| "-".into())) }
                    }
                }
            }
        }
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v` (axis tops that read well).
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * base >= v * (1.0 - 1e-9) {
            return m * base;
        }
    }
    10.0 * base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_tops() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(1100.0), 2000.0);
        assert_eq!(nice_ceiling(0.021), 0.025);
    }

    #[test]
    fn charts_render_svg() {
        let bar = usage_bar(512, 1024).into_string();
        assert!(bar.contains("<svg"), "{bar}");
        assert!(bar.contains("50.0%"), "{bar}");
        let s = Series {
            name: "GetStatus".into(),
            points: vec![(0, 1.0), (5000, 3.0)],
        };
        let c = line_chart("Ops", Unit::Plain("/s"), 0, 10_000, &[s]).into_string();
        assert!(c.contains("<polyline"), "{c}");
        assert!(c.contains("GetStatus"), "{c}");
        assert!(c.contains("3/s"), "{c}");
        let empty = line_chart("Ops", Unit::Percent, 0, 10_000, &[]).into_string();
        assert!(empty.contains("no data yet"));
    }
}
