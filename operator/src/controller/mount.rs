//! `Mount` reconcile, behind a finalizer so deleting a Mount unmounts it from the master first:
//! validate → fetch the cluster and the credentials Secret → mount on the master → apply the
//! PV/PVC and the preload Job → status (cached bytes / total from the master).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_common::ByteSize;
use alluvium_crds::{Cluster, Mount, MountPhase, MountStatus, PreloadStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, Resource, ResourceExt};

use super::{condition, Context, Error};
use crate::apply::{apply_cluster, apply_namespaced};
use crate::build::mount::{self as mb, ClusterInfo};
use crate::master_api::{MasterTarget, MountRequest};
use crate::names::{self, MOUNT_FINALIZER};
use crate::validate::{validate_mount, ValidatedMount};

pub const REFRESH: Duration = Duration::from_secs(60);
pub const LOADING_REFRESH: Duration = Duration::from_secs(15);
pub const WAIT_FOR_CLUSTER: Duration = Duration::from_secs(15);

pub async fn reconcile(mount: Arc<Mount>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let api: Api<Mount> =
        Api::namespaced(ctx.client.clone(), &mount.namespace().unwrap_or_default());
    let key = super::key(mount.as_ref());
    let result = finalizer(&api, MOUNT_FINALIZER, mount, |event| async {
        match event {
            Finalizer::Apply(m) => apply(&m, &ctx).await,
            Finalizer::Cleanup(m) => cleanup(&m, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics.observe("Mount", start.elapsed());
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// What changed in this reconcile, for status and events.
struct Outcome {
    phase: MountPhase,
    reason: &'static str,
    message: String,
}

async fn apply(mount: &Mount, ctx: &Context) -> Result<Action, Error> {
    let ns = mount.namespace().unwrap_or_default();
    let old = mount.status.clone().unwrap_or_default();
    let mut status = MountStatus {
        observed_generation: mount.metadata.generation,
        ..old.clone()
    };
    let valid = match validate_mount(mount) {
        Ok(v) => v,
        Err(inv) => {
            let o = Outcome {
                phase: MountPhase::Failed,
                reason: inv.reason,
                message: inv.message,
            };
            finish(mount, ctx, &old, status, o).await?;
            return Ok(Action::await_change());
        }
    };
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&valid.cluster).await? else {
        let o = Outcome {
            phase: MountPhase::Pending,
            reason: "ClusterNotFound",
            message: format!("Cluster {ns}/{} does not exist", valid.cluster),
        };
        finish(mount, ctx, &old, status, o).await?;
        return Ok(Action::requeue(WAIT_FOR_CLUSTER));
    };
    let ready = cluster
        .status
        .as_ref()
        .map(|s| s.ready_masters)
        .unwrap_or(0);
    if ready < 1 {
        let o = Outcome {
            phase: MountPhase::Pending,
            reason: "MasterNotReady",
            message: format!("waiting for the master of Cluster {ns}/{}", valid.cluster),
        };
        finish(mount, ctx, &old, status, o).await?;
        return Ok(Action::requeue(WAIT_FOR_CLUSTER));
    }
    let info = ClusterInfo {
        image: cluster.spec.image.clone(),
        pull_policy: cluster.spec.image_pull_policy,
        master_endpoint: names::master_endpoint(&valid.cluster, &ns),
    };
    let target = MasterTarget {
        endpoint: info.master_endpoint.clone(),
        secret: super::cluster::cluster_secret(ctx, &ns, &cluster).await?,
    };
    let mut options = valid.options.clone();
    if let Some(secret) = &valid.credentials_secret {
        match credentials(ctx, &ns, secret).await? {
            Some(creds) => options.extend(creds),
            None => {
                let o = Outcome {
                    phase: MountPhase::Failed,
                    reason: "SecretNotFound",
                    message: format!("credentials Secret {ns}/{secret} does not exist"),
                };
                finish(mount, ctx, &old, status, o).await?;
                return Ok(Action::requeue(WAIT_FOR_CLUSTER));
            }
        }
    }
    let req = MountRequest {
        path: valid.path.clone(),
        ufs: valid.ufs.clone(),
        read_only: valid.read_only,
        shared: valid.shared,
        options,
    };
    match ctx.masters.ensure_mount(&target, req).await {
        Ok(id) => status.mount_id = Some(id),
        Err(e) => {
            let o = Outcome {
                phase: MountPhase::Failed,
                reason: "MountFailed",
                message: e.clone(),
            };
            finish(mount, ctx, &old, status, o).await?;
            return Err(Error::Master(e));
        }
    }
    if let Some(p) = &valid.pvc {
        apply_cluster(&ctx.client, &mb::persistent_volume(&valid, p, &info)).await?;
        apply_namespaced(&ctx.client, &mb::persistent_volume_claim(&valid, p)).await?;
        status.claim_name = Some(p.claim_name.clone());
    } else {
        status.claim_name = None;
    }
    let mut outcome = Outcome {
        phase: MountPhase::Mounted,
        reason: "Mounted",
        message: format!("{} mounted at {}", valid.ufs, valid.path),
    };
    if valid.preload {
        outcome = preload(mount, ctx, &valid, &info, &mut status).await?;
    } else {
        status.preload = None;
    }
    match ctx.masters.path_usage(&target, &valid.path).await {
        Ok(u) => {
            status.total_bytes = u.total_bytes;
            status.cached_bytes = u.cached_bytes;
            status.cached = Some(format!(
                "{}/{}",
                ByteSize::human(u.cached_bytes),
                ByteSize::human(u.total_bytes)
            ));
            status.last_sync = Some(jiff::Timestamp::now().to_string());
        }
        Err(e) => tracing::warn!(mount = %mount.name_any(), error = %e, "cannot read mount usage"),
    }
    let requeue = if outcome.phase == MountPhase::Loading {
        LOADING_REFRESH
    } else {
        REFRESH
    };
    finish(mount, ctx, &old, status, outcome).await?;
    Ok(Action::requeue(requeue))
}

/// Applies the preload Job of this generation and reads its progress.
async fn preload(
    mount: &Mount,
    ctx: &Context,
    valid: &ValidatedMount,
    info: &ClusterInfo,
    status: &mut MountStatus,
) -> Result<Outcome, Error> {
    let generation = mount.metadata.generation.unwrap_or(0);
    let job = apply_namespaced(&ctx.client, &mb::preload_job(valid, info, generation)).await?;
    let js = job.status.clone().unwrap_or_default();
    let succeeded = js.succeeded.unwrap_or(0) > 0;
    let failed = job_failed(&job);
    status.preload = Some(PreloadStatus {
        job: job.metadata.name.clone(),
        succeeded,
        failed,
    });
    Ok(if succeeded {
        Outcome {
            phase: MountPhase::Ready,
            reason: "Preloaded",
            message: format!("{} preloaded", valid.path),
        }
    } else if failed {
        Outcome {
            phase: MountPhase::Failed,
            reason: "PreloadFailed",
            message: format!("preload job {} failed", job.name_any()),
        }
    } else {
        Outcome {
            phase: MountPhase::Loading,
            reason: "Loading",
            message: format!("preload job {} loading {}", job.name_any(), valid.path),
        }
    })
}

fn job_failed(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
}

/// UFS options from a credentials Secret; `None` when it does not exist.
async fn credentials(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.unwrap_or_default() {
        out.insert(
            k,
            String::from_utf8_lossy(&v.0)
                .trim_end_matches('\n')
                .to_string(),
        );
    }
    for (k, v) in secret.string_data.unwrap_or_default() {
        out.insert(k, v);
    }
    Ok(Some(out))
}

/// Writes status and publishes an event when the phase or reason changed.
async fn finish(
    mount: &Mount,
    ctx: &Context,
    old: &MountStatus,
    mut status: MountStatus,
    o: Outcome,
) -> Result<(), Error> {
    let generation = mount.metadata.generation;
    let ok = matches!(
        o.phase,
        MountPhase::Mounted | MountPhase::Ready | MountPhase::Loading
    );
    status.phase = Some(o.phase);
    status.conditions = vec![condition(
        &old.conditions,
        "Ready",
        ok,
        o.reason,
        o.message.clone(),
        generation,
    )];
    let api: Api<Mount> =
        Api::namespaced(ctx.client.clone(), &mount.namespace().unwrap_or_default());
    api.patch_status(
        &mount.name_any(),
        &PatchParams::default(),
        &Patch::Merge(super::status_patch(&status, &["claimName", "preload"])),
    )
    .await?;
    let old_reason = old.conditions.first().map(|c| c.reason.as_str());
    if old.phase != Some(o.phase) || old_reason != Some(o.reason) {
        let type_ = if ok {
            EventType::Normal
        } else {
            EventType::Warning
        };
        if !ok {
            ctx.metrics.failed("Mount", o.reason);
        }
        ctx.event(&mount.object_ref(&()), type_, o.reason, o.message)
            .await;
    }
    Ok(())
}

/// Deletion: unmount from the master (unless the cluster is gone with it), delete the PV (the
/// PVC and Job go with their owner), then the finalizer is removed.
async fn cleanup(mount: &Mount, ctx: &Context) -> Result<Action, Error> {
    let ns = mount.namespace().unwrap_or_default();
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(&mount.spec.cluster).await?;
    match cluster {
        Some(c) if c.metadata.deletion_timestamp.is_none() => {
            let target = MasterTarget {
                endpoint: names::master_endpoint(&mount.spec.cluster, &ns),
                secret: super::cluster::cluster_secret(ctx, &ns, &c).await?,
            };
            ctx.masters
                .unmount(&target, &mount.spec.path)
                .await
                .map_err(Error::Master)?;
        }
        // The cluster (and its namespace) is gone or going: nothing holds the mount.
        _ => tracing::info!(mount = %mount.name_any(), "cluster gone; skipping unmount"),
    }
    if let Ok(valid) = validate_mount(mount) {
        if let Some(p) = &valid.pvc {
            let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
            match pvs.delete(&p.pv_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    ctx.event(
        &mount.object_ref(&()),
        EventType::Normal,
        "Unmounted",
        format!("{} unmounted", mount.spec.path),
    )
    .await;
    Ok(Action::await_change())
}
