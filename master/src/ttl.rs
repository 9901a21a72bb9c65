//! The TTL checker: acts on files and directories whose time to live has expired.
//! `DELETE` removes them like `rm -R` (namespace and UFS); `FREE` drops their cached blocks and
//! clears the TTL (the persisted file stays).

use std::sync::Arc;

use alluvium_common::time::now_ms;
use alluvium_common::Result;
use alluvium_proto::{SetAttributeRequest, TtlAction};

use crate::inode;
use crate::metastore::Op;
use crate::namespace::Namespace;
use crate::permission::Checker;

/// Entries handled per check.
const TTL_BATCH: usize = 1000;

/// Acts on every TTL expired at `now`; returns how many inodes were acted on.
pub async fn check_expired(ns: &Arc<Namespace>, now: i64) -> Result<usize> {
    let expired = ns.store.expired_ttls(now, TTL_BATCH)?;
    let mut acted = 0;
    for (expiry, id) in expired {
        let rec = ns.store.get_inode(id)?;
        let path = match &rec {
            Some(r) if inode::ttl_expiry(r) == Some(expiry) => ns.path_of(id)?,
            _ => None,
        };
        let (Some(r), Some(p)) = (rec, path) else {
            // A stale entry (inode gone or TTL changed): drop it.
            drop_entry(ns, expiry, id)?;
            continue;
        };
        let system = Checker::system();
        let outcome = match inode::ttl_action(&r) {
            TtlAction::Free => ns.free(&system, &p, true, false).await,
            _ => ns.delete(&system, &p, true, false).await,
        };
        match outcome {
            Ok(()) => {
                acted += 1;
                ns.metrics.ttl_actions.inc();
                tracing::info!(path = %p, action = ?inode::ttl_action(&r), "TTL expired");
            }
            Err(e) => {
                tracing::warn!(path = %p, action = ?inode::ttl_action(&r), error = %e, "TTL action failed; the TTL is cleared");
            }
        }
        // After a free (or a failure) the inode remains: clear its TTL so it is not retried
        // forever.
        if ns.store.get_inode(id)?.is_some() {
            let req = SetAttributeRequest {
                path: p.clone(),
                unset_ttl: true,
                ..Default::default()
            };
            if let Err(e) = ns.set_attribute(&system, &req).await {
                tracing::warn!(path = %p, error = %e, "cannot clear an expired TTL");
                drop_entry(ns, expiry, id)?;
            }
        }
    }
    Ok(acted)
}

fn drop_entry(ns: &Namespace, expiry: i64, id: u64) -> Result<()> {
    let mut tx = ns.tx();
    tx.op(Op::DeleteTtl {
        expiry_ms: expiry,
        inode: id,
    });
    ns.commit(tx)
}

/// Runs the checker every `interval` until `stop` fires.
pub async fn run(
    ns: Arc<Namespace>,
    interval: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval.max(std::time::Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = check_expired(&ns, now_ms()).await {
            tracing::warn!(error = %e, "TTL check failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use alluvium_proto::{SetAttributeRequest, TtlAction};

    use super::*;
    use crate::metastore::MetaStore;
    use crate::testutil::{register, Env};

    #[tokio::test]
    async fn ttl_delete_removes_namespace_and_ufs() {
        let env = Env::new();
        let su = env.su();
        env.through_file(&su, "/t/old", b"x").await;
        env.ns
            .set_attribute(
                &su,
                &SetAttributeRequest {
                    path: "/t".into(),
                    ttl_ms: Some(1000),
                    ttl_action: TtlAction::Delete as i32,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let st = env.ns.get_status(&su, "/t", false).await.unwrap();
        assert_eq!(st.ttl_ms, Some(1000));
        // Not yet expired.
        assert_eq!(
            check_expired(&env.ns, st.creation_time_ms + 999)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            check_expired(&env.ns, st.creation_time_ms + 1000)
                .await
                .unwrap(),
            1
        );
        assert!(env.ns.get_status(&su, "/t", false).await.is_err());
        assert!(!env.ufs_dir.join("t").exists());
        assert!(env.store.expired_ttls(i64::MAX, 10).unwrap().is_empty());
    }

    #[tokio::test]
    async fn ttl_free_keeps_the_file_and_clears_the_ttl() {
        let env = Env::new();
        let su = env.su();
        let w = register(&env.blocks, "h");
        let id = env.cached_file(&su, "/f", 10, w, false).await;
        env.ns.schedule_async_persistence(&su, "/f").await.unwrap();
        env.stage_persisted_copy(id, &[0u8; 10]);
        env.ns.publish_persisted(id, None).await.unwrap();
        env.ns
            .set_attribute(
                &su,
                &SetAttributeRequest {
                    path: "/f".into(),
                    ttl_ms: Some(0),
                    ttl_action: TtlAction::Free as i32,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(check_expired(&env.ns, now_ms()).await.unwrap(), 1);
        let st = env.ns.get_status(&su, "/f", false).await.unwrap();
        assert!(st.persisted && st.ttl_ms.is_none());
        assert_eq!(st.in_alluvium_percentage, 0);
        assert!(env.ufs_dir.join("f").exists());
        assert!(env.store.expired_ttls(i64::MAX, 10).unwrap().is_empty());
    }
}
