//! Logging: `tracing` to stderr. Servers log at `info` by default; commands only warnings, so
//! their stdout stays clean for scripts.

use tracing_subscriber::EnvFilter;

pub fn init(flag: Option<&str>, is_server: bool) {
    let default = if is_server { "info" } else { "warn" };
    let filter = flag
        .map(String::from)
        .or_else(|| std::env::var("ALLUVIUM_LOG").ok())
        .unwrap_or_else(|| default.to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(is_server)
        .try_init();
}
