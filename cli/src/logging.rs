//! Logging: `tracing` to stderr. Servers log at `info` by default; commands only warnings, so
//! their stdout stays clean for scripts.
//!
//! The filter comes from, in order: `--log`, `ALLUVIUM_LOG`, `RUST_LOG` (what most Rust programs
//! and the Helm chart's `operator.logLevel` set), then the default. `ALLUVIUM_LOG` wins over
//! `RUST_LOG` when both are set, so an Alluvium-specific setting is never overridden by a
//! generic one inherited from the environment.
//!
//! Colours (ANSI escape codes) only go to a terminal: piped into `kubectl logs`, a file or
//! another program, logs are plain text. `NO_COLOR` turns them off on a terminal too.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Environment variables read for the filter, strongest first.
pub const FILTER_VARS: [&str; 2] = ["ALLUVIUM_LOG", "RUST_LOG"];

/// The filter to use and where it came from. Empty variables count as unset.
pub fn filter_source(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    default: &str,
) -> (String, &'static str) {
    if let Some(f) = flag.filter(|f| !f.trim().is_empty()) {
        return (f.to_string(), "--log");
    }
    for var in FILTER_VARS {
        if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
            return (v, var);
        }
    }
    (default.to_string(), "default")
}

/// Whether to colour output written to `stream`: only a terminal, and not under `NO_COLOR`.
pub fn use_ansi(stream_is_terminal: bool, no_color: Option<String>) -> bool {
    stream_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

pub fn init(flag: Option<&str>, is_server: bool) {
    let default = if is_server { "info" } else { "warn" };
    let (filter, source) = filter_source(flag, |v| std::env::var(v).ok(), default);
    let parsed = EnvFilter::try_new(&filter);
    let bad = parsed.is_err();
    let ansi = use_ansi(
        std::io::stderr().is_terminal(),
        std::env::var("NO_COLOR").ok(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(parsed.unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(is_server)
        .try_init();
    if bad {
        tracing::warn!(filter = %filter, source, "invalid log filter; using '{default}'");
    } else {
        tracing::debug!(filter = %filter, source, "log filter");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn flag_then_alluvium_log_then_rust_log_then_default() {
        let both = [("ALLUVIUM_LOG", "debug"), ("RUST_LOG", "trace")];
        assert_eq!(
            filter_source(Some("warn"), env(&both), "info"),
            ("warn".into(), "--log")
        );
        assert_eq!(
            filter_source(None, env(&both), "info"),
            ("debug".into(), "ALLUVIUM_LOG")
        );
        assert_eq!(
            filter_source(None, env(&[("RUST_LOG", "trace")]), "info"),
            ("trace".into(), "RUST_LOG")
        );
        assert_eq!(
            filter_source(
                None,
                env(&[("ALLUVIUM_LOG", ""), ("RUST_LOG", "trace")]),
                "info"
            ),
            ("trace".into(), "RUST_LOG")
        );
        assert_eq!(
            filter_source(None, env(&[]), "info"),
            ("info".into(), "default")
        );
    }

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(use_ansi(true, None));
        assert!(use_ansi(true, Some(String::new())));
        assert!(!use_ansi(true, Some("1".into())));
        assert!(!use_ansi(false, None));
    }
}
