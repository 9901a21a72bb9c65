//! The Identity service: who the plugin is, what it serves, and whether it can work now.

use std::collections::HashMap;
use std::sync::Arc;

use alluvium_proto::csi::v1::identity_server::Identity;
use alluvium_proto::csi::v1::plugin_capability::service::Type as ServiceType;
use alluvium_proto::csi::v1::plugin_capability::{self, Service};
use alluvium_proto::csi::v1::{
    GetPluginCapabilitiesRequest, GetPluginCapabilitiesResponse, GetPluginInfoRequest,
    GetPluginInfoResponse, PluginCapability, ProbeRequest, ProbeResponse,
};
use tonic::{Request, Response, Status};

use crate::masters::Masters;
use crate::metrics::CsiMetrics;
use crate::Mode;

pub struct IdentityService {
    driver_name: String,
    mode: Mode,
    masters: Arc<Masters>,
    metrics: Arc<CsiMetrics>,
}

impl IdentityService {
    pub(crate) fn new(
        driver_name: String,
        mode: Mode,
        masters: Arc<Masters>,
        metrics: Arc<CsiMetrics>,
    ) -> Self {
        Self {
            driver_name,
            mode,
            masters,
            metrics,
        }
    }
}

fn service(t: ServiceType) -> PluginCapability {
    PluginCapability {
        r#type: Some(plugin_capability::Type::Service(Service {
            r#type: t as i32,
        })),
    }
}

#[tonic::async_trait]
impl Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _req: Request<GetPluginInfoRequest>,
    ) -> Result<Response<GetPluginInfoResponse>, Status> {
        self.metrics
            .call("GetPluginInfo", async {
                Ok(GetPluginInfoResponse {
                    name: self.driver_name.clone(),
                    vendor_version: env!("CARGO_PKG_VERSION").to_string(),
                    manifest: HashMap::from([(
                        "default-master".to_string(),
                        self.masters.default_master().to_string(),
                    )]),
                })
            })
            .await
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<GetPluginCapabilitiesRequest>,
    ) -> Result<Response<GetPluginCapabilitiesResponse>, Status> {
        self.metrics
            .call("GetPluginCapabilities", async {
                let mut capabilities = Vec::new();
                if self.mode.controller() {
                    capabilities.push(service(ServiceType::ControllerService));
                }
                // NodeGetInfo reports the node as its topology segment; volumes themselves
                // carry none (every node reaches every master), so this never restricts where
                // a volume is used.
                capabilities.push(service(ServiceType::VolumeAccessibilityConstraints));
                Ok(GetPluginCapabilitiesResponse { capabilities })
            })
            .await
    }

    /// Ready when the default master answers; otherwise `ready: false` (the spec's "healthy but
    /// not ready" answer rather than an error: the plugin is fine, the cluster is not reachable).
    async fn probe(&self, _req: Request<ProbeRequest>) -> Result<Response<ProbeResponse>, Status> {
        self.metrics
            .call("Probe", async {
                let ready = match self.masters.probe().await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(master = %self.masters.default_master(), error = %e, "csi: probe: master unreachable");
                        false
                    }
                };
                Ok(ProbeResponse { ready: Some(ready) })
            })
            .await
    }
}
