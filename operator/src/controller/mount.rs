//! `Mount` reconcile, behind a finalizer so deleting a Mount unmounts it from the master first:
//! validate → dereference (the cluster, its secret, the credentials Secret) → mount or update
//! the mount on the master (parents made first) → apply the PV/PVC → drive the preload (one Job
//! per attempt, retried with backoff) → status, written only when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_common::ByteSize;
use alluvium_crds::{Cluster, Mount, MountPhase, MountStatus, PreloadStatus};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolume, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::{condition, has_finalizer, set_finalizer, Context, Error};
use crate::apply::{apply_cluster, apply_namespaced, patch_params};
use crate::build::mount::{self as mb, ClusterInfo};
use crate::master_api::{MasterTarget, MountRequest};
use crate::names::{self, MOUNT_FINALIZER};
use crate::validate::{validate_mount, ValidatedMount};

pub const REFRESH: Duration = Duration::from_secs(60);
pub const LOADING_REFRESH: Duration = Duration::from_secs(10);
pub const WAIT_FOR_CLUSTER: Duration = Duration::from_secs(15);
/// How long a deleted Mount keeps retrying to unmount from a master that refuses or cannot be
/// reached before the finalizer is removed anyway (with a Warning event naming the last error).
pub const UNMOUNT_DEADLINE: Duration = Duration::from_secs(120);

pub async fn reconcile(mount: Arc<Mount>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let api: Api<Mount> =
        Api::namespaced(ctx.client.clone(), &mount.namespace().unwrap_or_default());
    let key = super::key(mount.as_ref());
    let result = if mount.metadata.deletion_timestamp.is_some() {
        if has_finalizer(mount.as_ref(), MOUNT_FINALIZER) {
            match cleanup(&mount, &ctx).await {
                Ok(()) => set_finalizer(&api, mount.as_ref(), MOUNT_FINALIZER, false)
                    .await
                    .map(|()| Action::await_change()),
                Err(e) => Err(e),
            }
        } else {
            Ok(Action::await_change())
        }
    } else if !has_finalizer(mount.as_ref(), MOUNT_FINALIZER) {
        // The finalizer first, so nothing is mounted that a deletion could leave behind; the
        // change triggers the next reconcile.
        set_finalizer(&api, mount.as_ref(), MOUNT_FINALIZER, true)
            .await
            .map(|()| Action::await_change())
    } else {
        apply(&mount, &ctx).await
    };
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

/// A fingerprint of what the master is given: UFS, flags, options, and the credentials
/// Secret's identity and version (never its values).
fn applied_fingerprint(valid: &ValidatedMount, secret: Option<&Secret>) -> String {
    let secret_version = secret
        .map(|s| {
            format!(
                "{}/{}",
                s.metadata.uid.as_deref().unwrap_or(""),
                s.metadata.resource_version.as_deref().unwrap_or("")
            )
        })
        .unwrap_or_default();
    let text = format!(
        "{}\n{}\n{}\n{:?}\n{secret_version}",
        valid.ufs, valid.read_only, valid.shared, valid.options
    );
    crate::build::config::hash(&text)
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
        secret: super::cluster::cluster_secret_ref(&cluster),
    };
    let secret = match super::cluster::cluster_secret(ctx, &ns, &cluster).await {
        Ok(s) => s,
        Err(Error::SecretNotFound(message)) => {
            let o = Outcome {
                phase: MountPhase::Pending,
                reason: "SecretNotFound",
                message,
            };
            finish(mount, ctx, &old, status, o).await?;
            return Ok(Action::requeue(WAIT_FOR_CLUSTER));
        }
        Err(e) => return Err(e),
    };
    let target = MasterTarget {
        endpoint: info.master_endpoint.clone(),
        secret,
    };
    let mut options = valid.options.clone();
    let mut credentials_secret = None;
    if let Some(name) = &valid.credentials_secret {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        match api.get_opt(name).await? {
            Some(s) => {
                options.extend(credentials(&s));
                credentials_secret = Some(s);
            }
            None => {
                let o = Outcome {
                    phase: MountPhase::Failed,
                    reason: "SecretNotFound",
                    message: format!(
                        "credentialsSecretRef names Secret {ns}/{name}, which does not exist"
                    ),
                };
                finish(mount, ctx, &old, status, o).await?;
                return Ok(Action::requeue(WAIT_FOR_CLUSTER));
            }
        }
    }
    let fingerprint = applied_fingerprint(&valid, credentials_secret.as_ref());
    let req = MountRequest {
        path: valid.path.clone(),
        ufs: valid.ufs.clone(),
        read_only: valid.read_only,
        shared: valid.shared,
        options,
    };
    let changed = old.applied.as_deref() != Some(fingerprint.as_str());
    match ctx.masters.ensure_mount(&target, req, changed).await {
        Ok(id) => {
            if changed || status.mount_id != Some(id) {
                status.last_sync = Some(jiff::Timestamp::now().to_string());
            }
            status.mount_id = Some(id);
            status.applied = Some(fingerprint);
        }
        Err(e) => {
            let o = Outcome {
                phase: MountPhase::Failed,
                reason: "MountFailed",
                message: e.to_string(),
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
    let mut requeue = REFRESH;
    if valid.preload {
        let (o, next) = preload(ctx, &valid, &info, &mut status).await?;
        outcome = o;
        requeue = next;
    } else {
        status.preload = None;
    }
    match ctx.masters.path_usage(&target, &valid.path).await {
        Ok(u) => {
            if (u.total_bytes, u.cached_bytes) != (old.total_bytes, old.cached_bytes)
                || status.cached.is_none()
            {
                status.total_bytes = u.total_bytes;
                status.cached_bytes = u.cached_bytes;
                status.cached = Some(format!(
                    "{}/{}",
                    ByteSize::human(u.cached_bytes),
                    ByteSize::human(u.total_bytes)
                ));
                status.last_sync = Some(jiff::Timestamp::now().to_string());
            }
        }
        Err(e) => tracing::warn!(mount = %mount.name_any(), error = %e, "cannot read mount usage"),
    }
    finish(mount, ctx, &old, status, outcome).await?;
    Ok(Action::requeue(requeue))
}

/// Delay before attempt `n + 1` after `n` failed preloads: 30s doubling, capped at 30 min.
pub fn preload_backoff(failed_attempts: i32) -> Duration {
    let exp = u32::try_from(failed_attempts.saturating_sub(1).clamp(0, 6)).unwrap_or(6);
    Duration::from_secs((30u64 << exp).min(1800))
}

/// Drives the preload: one Job per attempt of one source. A finished preload of the same
/// source is left alone; a failed one is replaced after a backoff; a new source starts over
/// (and the old source's Jobs go).
async fn preload(
    ctx: &Context,
    valid: &ValidatedMount,
    info: &ClusterInfo,
    status: &mut MountStatus,
) -> Result<(Outcome, Duration), Error> {
    let source = mb::preload_source(valid);
    let mut p = status.preload.clone().unwrap_or_default();
    if p.source.as_deref() != Some(source.as_str()) {
        p = PreloadStatus {
            source: Some(source.clone()),
            attempts: 1,
            ..Default::default()
        };
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &valid.namespace);
    let current = mb::preload_job_name(valid, p.attempts.max(1));
    // Jobs of other attempts or sources are history: remove them (with their pods).
    for j in jobs
        .list(&ListParams::default().labels(&mb::preload_selector(valid)))
        .await?
        .items
    {
        if j.name_any() != current && j.metadata.deletion_timestamp.is_none() {
            delete_job(&jobs, &j.name_any()).await?;
        }
    }
    if p.succeeded {
        status.preload = Some(p);
        return Ok((
            Outcome {
                phase: MountPhase::Ready,
                reason: "Preloaded",
                message: format!("{} preloaded", valid.path),
            },
            REFRESH,
        ));
    }
    if p.failed {
        let since = p
            .last_failure
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map(|t| jiff::Timestamp::now().duration_since(t).unsigned_abs())
            .unwrap_or_default();
        let wait = preload_backoff(p.attempts);
        if since < wait {
            let message = format!(
                "preload attempt {} failed; attempt {} in {}s",
                p.attempts,
                p.attempts + 1,
                (wait - since).as_secs()
            );
            status.preload = Some(p);
            return Ok((
                Outcome {
                    phase: MountPhase::Failed,
                    reason: "PreloadFailed",
                    message,
                },
                wait - since + Duration::from_secs(1),
            ));
        }
        delete_job(&jobs, &current).await?;
        p.attempts += 1;
        p.failed = false;
    }
    let name = mb::preload_job_name(valid, p.attempts);
    // Applied once: the live Job carries the hash of what was applied, so later passes read it.
    let job = apply_namespaced(&ctx.client, &mb::preload_job(valid, info, p.attempts)).await?;
    p.job = Some(name.clone());
    let js = job.status.clone().unwrap_or_default();
    let outcome = if js.succeeded.unwrap_or(0) > 0 {
        p.succeeded = true;
        (
            Outcome {
                phase: MountPhase::Ready,
                reason: "Preloaded",
                message: format!("{} preloaded", valid.path),
            },
            REFRESH,
        )
    } else if job_failed(&job) {
        p.failed = true;
        p.last_failure = Some(jiff::Timestamp::now().to_string());
        let wait = preload_backoff(p.attempts);
        (
            Outcome {
                phase: MountPhase::Failed,
                reason: "PreloadFailed",
                message: format!(
                    "preload job {name} failed (attempt {}); retrying in {}s",
                    p.attempts,
                    wait.as_secs()
                ),
            },
            wait,
        )
    } else {
        (
            Outcome {
                phase: MountPhase::Loading,
                reason: "Loading",
                message: format!("preload job {name} loading {}", valid.path),
            },
            LOADING_REFRESH,
        )
    };
    status.preload = Some(p);
    Ok(outcome)
}

async fn delete_job(jobs: &Api<Job>, name: &str) -> Result<(), Error> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn job_failed(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
}

/// UFS options from a credentials Secret.
fn credentials(secret: &Secret) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.clone().unwrap_or_default() {
        out.insert(
            k,
            String::from_utf8_lossy(&v.0)
                .trim_end_matches('\n')
                .to_string(),
        );
    }
    for (k, v) in secret.string_data.clone().unwrap_or_default() {
        out.insert(k, v);
    }
    out
}

/// Writes status when it changed and publishes an event when the phase or reason changed.
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
    if &status != old {
        let api: Api<Mount> =
            Api::namespaced(ctx.client.clone(), &mount.namespace().unwrap_or_default());
        api.patch_status(
            &mount.name_any(),
            &patch_params(),
            &Patch::Merge(super::status_patch(&status, &["claimName", "preload"])),
        )
        .await?;
    }
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

/// Deletion: unmount from the master when it was ever mounted and its cluster still runs, then
/// delete the PV (the PVC and Jobs go with their owner). A master that keeps refusing or cannot
/// be reached is retried with backoff until [`UNMOUNT_DEADLINE`] after the deletion; then the
/// finalizer goes anyway, with a Warning event naming the last error.
async fn cleanup(mount: &Mount, ctx: &Context) -> Result<(), Error> {
    let ns = mount.namespace().unwrap_or_default();
    let name = mount.name_any();
    let old = mount.status.clone().unwrap_or_default();
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = clusters.get_opt(&mount.spec.cluster).await?;
    let (reason, note) = match cluster {
        _ if old.mount_id.is_none() => (
            "NothingToUnmount",
            format!("{} was never mounted", mount.spec.path),
        ),
        Some(c) if c.metadata.deletion_timestamp.is_none() => {
            let result = match super::cluster::cluster_secret(ctx, &ns, &c).await {
                Ok(secret) => {
                    let target = MasterTarget {
                        endpoint: names::master_endpoint(&mount.spec.cluster, &ns),
                        secret,
                    };
                    ctx.masters
                        .unmount(&target, &mount.spec.path)
                        .await
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(()) => ("Unmounted", format!("{} unmounted", mount.spec.path)),
                Err(e) => {
                    let deleted = mount
                        .metadata
                        .deletion_timestamp
                        .as_ref()
                        .map(|t| jiff::Timestamp::now().duration_since(t.0).unsigned_abs())
                        .unwrap_or_default();
                    if deleted < UNMOUNT_DEADLINE {
                        let o = Outcome {
                            phase: MountPhase::Terminating,
                            reason: "UnmountFailed",
                            message: format!(
                                "cannot unmount {} (retrying for {}s more, then the Mount goes anyway): {e}",
                                mount.spec.path,
                                (UNMOUNT_DEADLINE - deleted).as_secs()
                            ),
                        };
                        let status = MountStatus {
                            observed_generation: mount.metadata.generation,
                            ..old.clone()
                        };
                        finish(mount, ctx, &old, status, o).await?;
                        return Err(Error::Unmount(e));
                    }
                    tracing::warn!(mount = %name, error = %e, "giving up unmounting");
                    ctx.event(
                        &mount.object_ref(&()),
                        EventType::Warning,
                        "UnmountAbandoned",
                        format!(
                            "gave up unmounting {} after {}s; the master may still hold the mount: {e}",
                            mount.spec.path,
                            UNMOUNT_DEADLINE.as_secs()
                        ),
                    )
                    .await;
                    return remove_pv(mount, ctx).await;
                }
            }
        }
        _ => (
            "ClusterGone",
            format!(
                "Cluster {ns}/{} is gone; nothing holds {}",
                mount.spec.cluster, mount.spec.path
            ),
        ),
    };
    remove_pv(mount, ctx).await?;
    ctx.event(&mount.object_ref(&()), EventType::Normal, reason, note)
        .await;
    Ok(())
}

async fn remove_pv(mount: &Mount, ctx: &Context) -> Result<(), Error> {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_backoff_grows_and_caps() {
        assert_eq!(preload_backoff(1), Duration::from_secs(30));
        assert_eq!(preload_backoff(2), Duration::from_secs(60));
        assert_eq!(preload_backoff(3), Duration::from_secs(120));
        assert_eq!(preload_backoff(40), Duration::from_secs(1800));
    }
}
