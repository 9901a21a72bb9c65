//! Gateway metrics: requests by gateway, operation and status, and bytes moved.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub gateway: &'static str,
    pub op: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    pub gateway: &'static str,
}

#[derive(Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    bytes_in: Family<GatewayLabels, Counter>,
    bytes_out: Family<GatewayLabels, Counter>,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "alluvium_proxy_requests",
            "Gateway requests by gateway, operation and HTTP status",
            self.requests.clone(),
        );
        registry.register(
            "alluvium_proxy_received_bytes",
            "Data bytes received from clients",
            self.bytes_in.clone(),
        );
        registry.register(
            "alluvium_proxy_sent_bytes",
            "Data bytes sent to clients",
            self.bytes_out.clone(),
        );
    }

    pub fn request(&self, gateway: &'static str, op: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                gateway,
                op: op.to_string(),
                status,
            })
            .inc();
    }

    pub fn bytes_in(&self, gateway: &'static str, n: u64) {
        self.bytes_in
            .get_or_create(&GatewayLabels { gateway })
            .inc_by(n);
    }

    pub fn bytes_out(&self, gateway: &'static str, n: u64) {
        self.bytes_out
            .get_or_create(&GatewayLabels { gateway })
            .inc_by(n);
    }
}
