//! `Tier` reconcile: validate the spec and report it in status (clusters naming the tier are
//! re-reconciled by the cluster controller's watch), and hold a Tier's deletion while a Cluster
//! still names it.
//!
//! Every Tier carries the [`TIER_FINALIZER`]. Deleting a Tier whose hostPath and quota running
//! workers use would leave those Clusters refused at their next reconcile, so deletion waits: the
//! status lists the Clusters (`usedBy`, condition `DeletionBlocked` with reason `InUse`), an event
//! says so, and the finalizer goes once no Cluster in any namespace names the Tier.
//!
//! Nothing is written at rest: the finalizer is added once, and the status is patched only when
//! it differs from the one the Tier already has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_crds::{Cluster, Tier, TierPhase, TierStatus};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::{condition, status_patch, Context, Error};
use crate::names::FIELD_MANAGER;
use crate::validate::validate_tier;

/// Finalizer on every `Tier`: removed only once no Cluster names the Tier.
pub const TIER_FINALIZER: &str = "alluvium.io/tier-in-use";
/// How soon a Tier whose deletion waits looks at the Clusters again (nothing else wakes it when a
/// Cluster stops naming it).
pub const IN_USE_RETRY: Duration = Duration::from_secs(30);
/// Condition type present while deletion waits for Clusters to stop naming the Tier.
pub const DELETION_BLOCKED: &str = "DeletionBlocked";
/// Reason of that condition and of its event.
pub const IN_USE: &str = "InUse";

/// Patches under the operator's own field manager, so `managedFields` says who wrote what.
fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

pub async fn reconcile(tier: Arc<Tier>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = reconcile_inner(&tier, &ctx).await;
    ctx.metrics.observe("Tier", start.elapsed());
    if result.is_ok() {
        ctx.succeeded(&super::key(tier.as_ref()));
    }
    result
}

async fn reconcile_inner(tier: &Tier, ctx: &Context) -> Result<Action, Error> {
    let api: Api<Tier> = Api::all(ctx.client.clone());
    let deleting = tier.metadata.deletion_timestamp.is_some();
    let finalized = tier.finalizers().iter().any(|f| f == TIER_FINALIZER);
    if deleting && !finalized {
        // Going, and not held by us: nothing to report on an object about to vanish.
        return Ok(Action::await_change());
    }
    if !finalized {
        add_finalizer(&api, tier).await?;
    }
    let used_by = if deleting {
        clusters_naming(ctx, &tier.name_any()).await?
    } else {
        Vec::new()
    };
    if deleting && used_by.is_empty() {
        remove_finalizer(&api, tier).await?;
        tracing::info!(tier = %tier.name_any(), "no Cluster names the tier: deletion proceeds");
        return Ok(Action::await_change());
    }

    let old = tier.status.clone().unwrap_or_default();
    let (status, ready) = desired_status(tier, &old, used_by);
    if tier.status.as_ref() != Some(&status) {
        api.patch_status(
            &tier.name_any(),
            &params(),
            &Patch::Merge(status_patch(&status, &["quotaBytes", "usedBy"])),
        )
        .await?;
    }
    // Events for a cluster-scoped object: the reference carries no namespace (so `kubectl
    // describe atier` finds them by involvedObject.namespace ""); kube's Recorder then creates
    // the Event object itself in `default`.
    let reference: ObjectReference = tier.object_ref(&());
    if old.phase != status.phase {
        let type_ = if status.phase == Some(TierPhase::Ready) {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.event(&reference, type_, &ready.reason, ready.message.clone())
            .await;
    }
    if !status.used_by.is_empty() && status.used_by != old.used_by {
        ctx.event(
            &reference,
            EventType::Warning,
            IN_USE,
            in_use_message(&tier.name_any(), &status.used_by),
        )
        .await;
    }
    Ok(if deleting {
        Action::requeue(IN_USE_RETRY)
    } else {
        Action::await_change()
    })
}

/// The status a Tier should have: its validity, and while its deletion waits, who uses it. Pure,
/// and stable: conditions keep their transition time while their status holds, so computing it
/// again for an unchanged Tier gives back exactly `old`.
pub fn desired_status(
    tier: &Tier,
    old: &TierStatus,
    used_by: Vec<String>,
) -> (TierStatus, Condition) {
    let generation = tier.metadata.generation;
    let (phase, quota_bytes, ready) = match validate_tier(tier) {
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
    let mut conditions = vec![ready.clone()];
    if !used_by.is_empty() {
        conditions.push(condition(
            &old.conditions,
            DELETION_BLOCKED,
            true,
            IN_USE,
            in_use_message(&tier.name_any(), &used_by),
            generation,
        ));
    }
    let status = TierStatus {
        phase: Some(phase),
        quota_bytes,
        observed_generation: generation,
        conditions,
        used_by,
    };
    (status, ready)
}

fn in_use_message(tier: &str, used_by: &[String]) -> String {
    format!(
        "deletion waits: Tier {tier} is named in spec.workers.tiers of Cluster(s) {}; remove it there first",
        used_by.join(", ")
    )
}

/// `namespace/name` of every Cluster, in any namespace, naming `tier` in `spec.workers.tiers`.
async fn clusters_naming(ctx: &Context, tier: &str) -> Result<Vec<String>, Error> {
    let api: Api<Cluster> = Api::all(ctx.client.clone());
    let mut users: Vec<String> = api
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|c| c.spec.workers.tiers.iter().any(|t| t == tier))
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    users.sort();
    Ok(users)
}

/// Adds the finalizer. The patch carries the resourceVersion it read, so a concurrent change of
/// the finalizer list is a conflict (retried) rather than a lost entry.
async fn add_finalizer(api: &Api<Tier>, tier: &Tier) -> Result<(), Error> {
    let mut finalizers = tier.finalizers().to_vec();
    finalizers.push(TIER_FINALIZER.into());
    patch_finalizers(api, tier, serde_json::json!(finalizers)).await
}

/// Removes the finalizer (only ours), under the same optimistic lock.
async fn remove_finalizer(api: &Api<Tier>, tier: &Tier) -> Result<(), Error> {
    let rest: Vec<&String> = tier
        .finalizers()
        .iter()
        .filter(|f| *f != TIER_FINALIZER)
        .collect();
    // `null` deletes the key in a merge patch; an empty list would do as well.
    let value = if rest.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::json!(rest)
    };
    patch_finalizers(api, tier, value).await
}

async fn patch_finalizers(
    api: &Api<Tier>,
    tier: &Tier,
    finalizers: serde_json::Value,
) -> Result<(), Error> {
    let body = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": tier.resource_version(),
        }
    });
    api.patch(&tier.name_any(), &params(), &Patch::Merge(body))
        .await?;
    Ok(())
}
