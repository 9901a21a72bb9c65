//! Prometheus helpers shared by every component: one text encoder, names prefixed `alluvium_`.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// A registry whose metric names all start with `alluvium_`.
pub fn new_registry() -> Registry {
    Registry::with_prefix("alluvium")
}

/// The registry in Prometheus' text exposition format.
pub fn encode_text(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, registry);
    out
}

/// The content type Prometheus expects for the text format (OpenMetrics).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
