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

/// Labels of per-operation metrics: the gRPC method name (`GetStatus`, `ReadBlock`, ...).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

/// Latency buckets of operations, in seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn latency_histogram() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(LATENCY_BUCKETS)
}

/// `<component>_operation_duration_seconds{operation}`: one histogram per gRPC method, filled by
/// [`Timed`] around a tonic service. Its `_count` gives operation rates.
pub type OperationDurations = prometheus_client::metrics::family::Family<
    OperationLabels,
    prometheus_client::metrics::histogram::Histogram,
    fn() -> prometheus_client::metrics::histogram::Histogram,
>;

/// A new, empty [`OperationDurations`].
pub fn operation_durations() -> OperationDurations {
    OperationDurations::new_with_constructor(latency_histogram)
}

/// Wraps a tonic service and records how long each call takes until its response headers (the
/// whole call for unary methods; time to the first message for streaming ones), by method.
/// A wrapper rather than code in every handler: the measurement is one concern in one place.
#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    durations: OperationDurations,
}

impl<S> Timed<S> {
    pub fn new(inner: S, durations: OperationDurations) -> Self {
        Self { inner, durations }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for Timed<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tonic::codegen::Service<tonic::codegen::http::Request<B>> for Timed<S>
where
    S: tonic::codegen::Service<tonic::codegen::http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send + 'static>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        // gRPC paths are `/package.Service/Method`.
        let operation = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let histogram = self
            .durations
            .get_or_create(&OperationLabels { operation })
            .clone();
        let started = std::time::Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            histogram.observe(started.elapsed().as_secs_f64());
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_histograms_are_named_by_operation() {
        let mut r = new_registry();
        let d = operation_durations();
        r.register(
            "test_operation_duration_seconds",
            "Operation latency",
            d.clone(),
        );
        d.get_or_create(&OperationLabels {
            operation: "GetStatus".into(),
        })
        .observe(0.002);
        let text = encode_text(&r);
        assert!(
            text.contains(
                "alluvium_test_operation_duration_seconds_count{operation=\"GetStatus\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("le=\"0.0025\""), "{text}");
    }
}
