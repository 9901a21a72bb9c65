//! A reader of the Prometheus / OpenMetrics text format: the web UI's samplers and
//! `fsadmin report metrics` read the same `/metrics` text Prometheus scrapes, so the UI, the CLI
//! and the monitoring system never disagree.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as written (`x_total`, `x_bucket`, `x_sum`, ...).
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every sample of `text`. Comment lines and lines that cannot be read are skipped: one odd
/// metric must not blank a page.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(parse_sample)
        .collect()
}

/// One sample line: `name{a="x",b="y"} value [timestamp]`.
pub fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = open + line[open..].rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (n, r) = line.split_once(' ')?;
            (n, Vec::new(), r)
        }
    };
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(',') | Some(' ')) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut val = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => val.push('\n'),
                    c => val.push(c),
                },
                '"' => break,
                c => val.push(c),
            }
        }
        out.push((key.trim().to_string(), val));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counters_histograms_and_labels() {
        let text = "# HELP a_total A.\n# TYPE a counter\na_total{tier=\"MEM\",x=\"q\\\"uote\"} 5\n\
                    b 1.5\nc_bucket{le=\"+Inf\"} 3\nbroken{ 1\n# EOF\n";
        let s = parse(text);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[0].name, "a_total");
        assert_eq!(s[0].label("tier"), Some("MEM"));
        assert_eq!(s[0].label("x"), Some("q\"uote"));
        assert_eq!(s[0].value, 5.0);
        assert_eq!(s[1].value, 1.5);
        assert_eq!(s[2].label("le"), Some("+Inf"));
    }
}
