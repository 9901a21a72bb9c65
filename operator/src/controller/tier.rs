//! `Tier` reconcile: validate the spec and report it in status (clusters naming the tier are
//! re-reconciled by the cluster controller's watch).

use std::sync::Arc;
use std::time::Instant;

use alluvium_crds::{Tier, TierPhase, TierStatus};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::{condition, Context, Error};
use crate::validate::validate_tier;

pub async fn reconcile(tier: Arc<Tier>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let name = tier.name_any();
    let old = tier.status.clone().unwrap_or_default();
    let generation = tier.metadata.generation;
    let (phase, quota_bytes, cond) = match validate_tier(&tier) {
        Ok(v) => (
            TierPhase::Ready,
            Some(v.quota_bytes),
            condition(
                &old.conditions,
                "Ready",
                true,
                "Valid",
                format!("{} bytes per node", v.quota_bytes),
                generation,
            ),
        ),
        Err(e) => (
            TierPhase::Invalid,
            None,
            condition(
                &old.conditions,
                "Ready",
                false,
                e.reason,
                e.message,
                generation,
            ),
        ),
    };
    let status = TierStatus {
        phase: Some(phase),
        quota_bytes,
        observed_generation: generation,
        conditions: vec![cond.clone()],
        used_by: Vec::new(),
    };
    let api: Api<Tier> = Api::all(ctx.client.clone());
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await?;
    if old.phase != Some(phase) {
        // Events are namespaced; a cluster-scoped object's events go to `default`.
        let reference = ObjectReference {
            namespace: Some("default".into()),
            ..tier.object_ref(&())
        };
        let type_ = if phase == TierPhase::Ready {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(&reference, type_, &cond.reason, cond.message)
            .await;
    }
    ctx.metrics.observe("Tier", start.elapsed());
    ctx.succeeded(&super::key(tier.as_ref()));
    Ok(Action::await_change())
}
