//! Mounting, updating and unmounting UFSes.

use std::collections::BTreeMap;

use alluvium_common::time::now_ms;
use alluvium_common::{path, Error, Result};
use alluvium_proto::{InodeRecord, MountInfo, MountRecord, MountRequest, PersistenceState};
use alluvium_ufs::{normalize_uri, Ufs};

use crate::inode::{self, DEFAULT_DIR_MODE};
use crate::metastore::Op;
use crate::mount_table::Mount;
use crate::permission::Checker;
use crate::tx::Tx;

use super::lookup::{norm, walk};
use super::Namespace;

impl Namespace {
    pub async fn mount(&self, checker: &Checker, req: &MountRequest) -> Result<()> {
        let p = norm(&req.path)?;
        checker.require_superuser(&format!("mount {p}"))?;
        let uri = normalize_uri(&req.ufs_uri)?;
        let options: BTreeMap<String, String> = req
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.mounts.check_new(&p, &uri)?;
        Ufs::open_existing(&uri, &options)
            .await
            .map_err(|e| e.context(format!("mount {p}")))?;
        self.sync_path(&p, false).await?;
        let check_ns = |tx: &Tx<'_>| -> Result<InodeRecord> {
            let w = walk(tx, &p)?;
            if w.found() {
                return Err(Error::already_exists(format!(
                    "mount {p}: the path already exists; mount on a new path"
                )));
            }
            if w.missing.len() > 1 || !w.last().is_dir {
                return Err(Error::not_found(format!(
                    "mount {p}: parent directory {} does not exist",
                    path::parent(&p).unwrap_or("/")
                )));
            }
            Ok(w.last().clone())
        };
        {
            let tx = self.tx();
            check_ns(&tx)?;
        }
        let now = now_ms();
        let mut record = MountRecord {
            mount_id: 0,
            path: p.clone(),
            ufs_uri: uri.clone(),
            read_only: req.read_only,
            options: options.clone().into_iter().collect(),
            mounted_at_ms: now,
            shared: req.shared,
            inode_id: 0,
        };
        let probe = Mount::open(record.clone(), self.default_sync)?;
        probe
            .ufs
            .probe()
            .await
            .map_err(|e| e.context(format!("mount {p}")))?;
        let _serial = self.mount_lock.lock();
        let mut tx = self.tx();
        self.mounts.check_new(&p, &uri)?;
        let parent = check_ns(&tx)?;
        let mount_id = tx.alloc_mount_id();
        let id = tx.alloc_id();
        record.mount_id = mount_id;
        record.inode_id = id;
        let mut d = inode::new_dir(
            id,
            parent.id,
            path::name(&p),
            &checker.caller.user,
            checker.caller.primary_group(),
            DEFAULT_DIR_MODE,
            now,
        );
        d.persistence_state = PersistenceState::Persisted as i32;
        d.mount_id = mount_id;
        tx.add_child(parent, d, now);
        tx.op(Op::PutMount(record.clone()));
        self.commit(tx)?;
        self.mounts.insert(Mount {
            record,
            ufs: probe.ufs,
            sync_interval: probe.sync_interval,
        });
        tracing::info!(path = %p, ufs = %uri, mount_id, read_only = req.read_only, "mounted");
        Ok(())
    }

    /// Changes the options, read-only flag and sharing of the mount at `req.path` in place. The
    /// UFS must stay the same (a different UFS is a new mount); the new options are probed
    /// before they replace the old ones, so a bad update leaves the mount as it was.
    pub async fn update_mount(&self, checker: &Checker, req: &MountRequest) -> Result<()> {
        let p = norm(&req.path)?;
        checker.require_superuser(&format!("update mount {p}"))?;
        let uri = normalize_uri(&req.ufs_uri)?;
        let Some(old) = self.mounts.at_path(&p) else {
            return Err(Error::not_found(format!(
                "update mount {p}: not a mount point"
            )));
        };
        if p == "/" {
            return Err(Error::invalid_argument(
                "update mount /: the root mount is configured by master.root_ufs",
            ));
        }
        if old.record.ufs_uri != uri {
            return Err(Error::invalid_argument(format!(
                "update mount {p}: it mounts {}, not {uri}; unmount and mount to change the UFS",
                old.record.ufs_uri
            )));
        }
        let record = MountRecord {
            read_only: req.read_only,
            shared: req.shared,
            options: req
                .options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..old.record.clone()
        };
        let fresh = Mount::open(record.clone(), self.default_sync)?;
        fresh
            .ufs
            .probe()
            .await
            .map_err(|e| e.context(format!("update mount {p}")))?;
        let _serial = self.mount_lock.lock();
        if self.mounts.get(old.id()).is_none() {
            return Err(Error::not_found(format!(
                "update mount {p}: unmounted meanwhile"
            )));
        }
        let mut tx = self.tx();
        tx.op(Op::PutMount(record));
        self.commit(tx)?;
        self.mounts.replace(fresh);
        tracing::info!(path = %p, mount_id = old.id(), read_only = req.read_only, "mount updated");
        Ok(())
    }

    pub async fn unmount(&self, checker: &Checker, p: &str) -> Result<()> {
        let p = norm(p)?;
        checker.require_superuser(&format!("unmount {p}"))?;
        if p == "/" {
            return Err(Error::invalid_argument(
                "/: the root mount cannot be unmounted",
            ));
        }
        let Some(m) = self.mounts.at_path(&p) else {
            return Err(Error::not_found(format!("unmount {p}: not a mount point")));
        };
        let now = now_ms();
        let _serial = self.mount_lock.lock();
        if self.mounts.get(m.id()).is_none() {
            return Err(Error::not_found(format!("unmount {p}: not a mount point")));
        }
        let mut tx = self.tx();
        let w = walk(&tx, &p)?;
        if w.found() {
            tx.delete_tree(&w.last().clone(), now)?;
        }
        tx.op(Op::DeleteMount(m.id()));
        self.commit(tx)?;
        self.mounts.remove(m.id());
        tracing::info!(path = %p, mount_id = m.id(), "unmounted");
        Ok(())
    }

    pub fn mount_infos(&self) -> Vec<MountInfo> {
        self.mounts.all().iter().map(|m| m.info(false)).collect()
    }

    /// The unredacted mount (GetUfsMount).
    pub fn ufs_mount(&self, mount_id: u64) -> Result<MountInfo> {
        self.mounts
            .get(mount_id)
            .map(|m| m.info(true))
            .ok_or_else(|| Error::not_found(format!("mount {mount_id} does not exist")))
    }
}
