//! Bringing mounts back after the plugin restarts.
//!
//! The FUSE sessions of staged volumes live in the plugin process; when it dies (crash, OOM
//! kill, upgrade) the kernel aborts their connections, and the staging paths and every bind
//! mount of them answer ENOTCONN. On start, for every recorded volume:
//! 1. the dead staging mount is detached (`umount2(MNT_DETACH)`) and the volume is mounted
//!    afresh at the staging path;
//! 2. every recorded target of it that is not readable gets a new bind mount of the staging
//!    path, mounted *over* the dead one rather than after detaching it. A pod's container sees
//!    the target through its own copy of that mount; with `mountPropagation: HostToContainer`
//!    its copy is a slave of the host's, so a mount made on top of the host's target propagates
//!    into the container, and the pod reads again without restarting. Detaching the dead mount
//!    first would cut that link. The dead layers underneath are removed by NodeUnpublishVolume.
//!
//! A volume whose master cannot be reached yet is retried every few seconds until it comes back
//! or the CO unstages it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::KindLabels;
use crate::mounts::{self, Health};
use crate::node::{NodeInner, Staged};

/// Pause between recovery rounds while some volume is still down.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// What one round achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub staged: usize,
    pub published: usize,
    pub pending: usize,
}

/// Loads the records into the mount table (first call) and brings back what is down.
pub(crate) async fn round(inner: &NodeInner, first: bool) -> Round {
    let mut t = inner.table.lock().await;
    if first {
        match inner.state.load_staged() {
            Ok(recs) => {
                for rec in recs {
                    t.staged
                        .entry(rec.volume_id.clone())
                        .or_insert(Staged { rec, handle: None });
                }
            }
            Err(e) => tracing::error!(error = %e, "csi: cannot read staged volume records"),
        }
        match inner.state.load_published() {
            Ok(recs) => {
                for rec in recs {
                    t.published.entry(rec.target_path.clone()).or_insert(rec);
                }
            }
            Err(e) => tracing::error!(error = %e, "csi: cannot read published volume records"),
        }
    }
    let mut r = Round::default();
    let ids: Vec<String> = t.staged.keys().cloned().collect();
    for id in ids {
        let Some(s) = t.staged.get(&id) else { continue };
        if s.handle.as_ref().is_some_and(|h| h.is_active()) {
            continue;
        }
        let rec = s.rec.clone();
        match inner.mount_staged(&rec).await {
            Ok(h) => {
                tracing::info!(volume_id = %id, staging = %rec.staging_path.display(), "csi: re-staged after restart");
                inner
                    .metrics
                    .recovered
                    .get_or_create(&KindLabels {
                        kind: "staged".into(),
                    })
                    .inc();
                r.staged += 1;
                if let Some(s) = t.staged.get_mut(&id) {
                    s.handle = Some(h);
                }
            }
            Err(e) => {
                tracing::warn!(volume_id = %id, error = %e, "csi: cannot re-stage yet; will retry");
                r.pending += 1;
            }
        }
    }
    let targets: Vec<_> = t.published.values().cloned().collect();
    for p in targets {
        let up = t
            .staged
            .get(&p.volume_id)
            .is_some_and(|s| s.handle.as_ref().is_some_and(|h| h.is_active()));
        if !up {
            if !t.staged.contains_key(&p.volume_id) {
                tracing::warn!(target = %p.target_path.display(), volume_id = %p.volume_id, "csi: published target of a volume that is not staged; left for NodeUnpublishVolume");
            } else {
                r.pending += 1;
            }
            continue;
        }
        if mounts::is_mount_point(&p.target_path) && mounts::health(&p.target_path) == Health::Live
        {
            // Already readable: a bind made for another target propagated here (targets of one
            // staging mount share a peer group when the kubelet directory is shared). It carries
            // that target's flags, so a read-only target is made read-only again.
            if p.read_only {
                if let Err(e) = mounts::remount_read_only(&p.target_path) {
                    tracing::warn!(target = %p.target_path.display(), error = %e, "csi: cannot make a recovered target read-only; will retry");
                    r.pending += 1;
                }
            }
            continue;
        }
        let (src, dst, ro) = (p.staging_path.clone(), p.target_path.clone(), p.read_only);
        let bound = tokio::task::spawn_blocking(move || {
            if mounts::health(&dst) == Health::Missing {
                std::fs::create_dir_all(&dst).map_err(|e| {
                    alluvium_common::Error::internal(format!(
                        "cannot re-create {}: {e}",
                        dst.display()
                    ))
                })?;
            }
            mounts::bind(&src, &dst, ro)
        })
        .await;
        match bound {
            Ok(Ok(())) => {
                tracing::info!(target = %p.target_path.display(), volume_id = %p.volume_id, "csi: re-published after restart");
                inner
                    .metrics
                    .recovered
                    .get_or_create(&KindLabels {
                        kind: "published".into(),
                    })
                    .inc();
                r.published += 1;
            }
            Ok(Err(e)) => {
                tracing::warn!(target = %p.target_path.display(), error = %e, "csi: cannot re-publish yet; will retry");
                r.pending += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "csi: re-publish task failed");
                r.pending += 1;
            }
        }
    }
    inner.update_gauges(&t);
    r
}

/// Recovers everything recorded, then keeps retrying what could not be brought back. Records
/// the time from `started` to the first moment nothing was pending.
pub(crate) async fn run(inner: Arc<NodeInner>, started: Instant) {
    let mut first = true;
    loop {
        let r = round(&inner, first).await;
        if first || r.staged + r.published > 0 {
            tracing::info!(
                staged = r.staged,
                published = r.published,
                pending = r.pending,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "csi: recovery round done"
            );
        }
        first = false;
        if r.pending == 0 {
            inner
                .metrics
                .recovery_seconds
                .set(started.elapsed().as_secs_f64());
            return;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}
