//! The mount table: which UFS backs which namespace path. Kept in memory (mounts are few), with
//! one opened [`Ufs`] per mount; persisted through the metastore by the namespace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::{path, Error, Reason, Result};
use alluvium_proto::{MountInfo, MountRecord};
use alluvium_ufs::{redact_options, uris_overlap, Ufs, UfsUri};
use parking_lot::RwLock;

/// The root mount's id.
pub const ROOT_MOUNT_ID: u64 = 1;

/// One mounted UFS.
pub struct Mount {
    pub record: MountRecord,
    pub ufs: Ufs,
    /// Bound on metadata staleness under this mount.
    pub sync_interval: Duration,
}

impl Mount {
    /// Opens the UFS of `record` (no I/O). `default_sync` applies unless the mount has a
    /// `sync_interval` option.
    pub fn open(record: MountRecord, default_sync: Duration) -> Result<Self> {
        let options: BTreeMap<String, String> = record
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let sync_interval = parse_sync_interval(&options)?.unwrap_or(default_sync);
        let ufs = Ufs::open(&record.ufs_uri, &options)?;
        Ok(Self {
            record,
            ufs,
            sync_interval,
        })
    }

    pub fn id(&self) -> u64 {
        self.record.mount_id
    }

    pub fn path(&self) -> &str {
        &self.record.path
    }

    /// The mount's description; secret option values are redacted unless `reveal`.
    pub fn info(&self, reveal: bool) -> MountInfo {
        let options: BTreeMap<String, String> = self
            .record
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let options = if reveal {
            options
        } else {
            redact_options(&options)
        };
        MountInfo {
            mount_id: self.record.mount_id,
            path: self.record.path.clone(),
            ufs_uri: self.record.ufs_uri.clone(),
            read_only: self.record.read_only,
            options: options.into_iter().collect(),
            sync_interval_ms: self.sync_interval.as_millis() as i64,
            mounted_at_ms: self.record.mounted_at_ms,
            shared: self.record.shared,
        }
    }

    /// Refuses writes under a read-only mount.
    pub fn check_writable(&self, ns_path: &str) -> Result<()> {
        if self.record.read_only {
            return Err(Error::permission_denied(format!(
                "{ns_path}: the mount at {} ({}) is read-only",
                self.record.path, self.record.ufs_uri
            ))
            .with_reason(Reason::ReadOnly));
        }
        Ok(())
    }
}

/// Parses the `sync_interval` mount option (humantime: `0s`, `30s`, `5m`).
pub fn parse_sync_interval(options: &BTreeMap<String, String>) -> Result<Option<Duration>> {
    match options.get("sync_interval") {
        None => Ok(None),
        Some(v) => humantime::parse_duration(v.trim()).map(Some).map_err(|e| {
            Error::invalid_argument(format!(
                "mount option sync_interval '{v}' is not a duration like 30s or 5m: {e}"
            ))
        }),
    }
}

/// A namespace path resolved to its mount and the path relative to the mount's UFS root.
#[derive(Clone)]
pub struct Resolved {
    pub mount: Arc<Mount>,
    pub rel: String,
}

#[derive(Default)]
pub struct MountTable {
    mounts: RwLock<Vec<Arc<Mount>>>,
}

impl MountTable {
    #[cfg(test)]
    pub fn new(mounts: Vec<Mount>) -> Self {
        Self {
            mounts: RwLock::new(mounts.into_iter().map(Arc::new).collect()),
        }
    }

    pub fn all(&self) -> Vec<Arc<Mount>> {
        let mut v = self.mounts.read().clone();
        v.sort_by(|a, b| a.path().cmp(b.path()));
        v
    }

    pub fn get(&self, id: u64) -> Option<Arc<Mount>> {
        self.mounts.read().iter().find(|m| m.id() == id).cloned()
    }

    pub fn at_path(&self, ns_path: &str) -> Option<Arc<Mount>> {
        self.mounts
            .read()
            .iter()
            .find(|m| m.path() == ns_path)
            .cloned()
    }

    /// The mount holding `ns_path` (the deepest mount point at or above it).
    pub fn resolve(&self, ns_path: &str) -> Result<Resolved> {
        let mounts = self.mounts.read();
        let mount = mounts
            .iter()
            .filter(|m| path::is_ancestor_or_self(m.path(), ns_path))
            .max_by_key(|m| m.path().len())
            .cloned()
            .ok_or_else(|| Error::internal(format!("{ns_path}: no mount covers this path")))?;
        drop(mounts);
        let rel = path::relative_to(mount.path(), ns_path)
            .unwrap_or("")
            .to_string();
        Ok(Resolved { mount, rel })
    }

    /// Whether some mount point lies strictly below `ns_path`.
    pub fn has_mount_below(&self, ns_path: &str) -> Option<String> {
        self.mounts
            .read()
            .iter()
            .find(|m| m.path() != ns_path && path::is_ancestor_or_self(ns_path, m.path()))
            .map(|m| m.path().to_string())
    }

    /// The table's rules for a new mount at `ns_path` of `uri` (DESIGN.md): not the root, not
    /// below another non-root mount, and no overlap with an existing mount's UFS.
    pub fn check_new(&self, ns_path: &str, uri: &str) -> Result<()> {
        if ns_path == "/" {
            return Err(Error::invalid_argument(
                "/: the root is already mounted (on master.root_ufs)",
            ));
        }
        UfsUri::parse(uri)?;
        for m in self.mounts.read().iter() {
            if m.path() == ns_path {
                return Err(Error::already_exists(format!(
                    "{ns_path}: already a mount point of {}",
                    m.record.ufs_uri
                )));
            }
            if m.path() != "/" && path::is_ancestor_or_self(m.path(), ns_path) {
                return Err(Error::invalid_argument(format!(
                    "{ns_path}: lies under the mount at {}; nested mounts are not allowed",
                    m.path()
                )));
            }
            if uris_overlap(&m.record.ufs_uri, uri) {
                return Err(Error::invalid_argument(format!(
                    "{ns_path}: UFS {uri} overlaps {} already mounted at {}",
                    m.record.ufs_uri,
                    m.path()
                )));
            }
        }
        Ok(())
    }

    pub fn insert(&self, mount: Mount) {
        self.mounts.write().push(Arc::new(mount));
    }

    /// Swaps the mount with `mount`'s id for `mount` (an in-place update).
    pub fn replace(&self, mount: Mount) {
        let mut mounts = self.mounts.write();
        mounts.retain(|m| m.id() != mount.id());
        mounts.push(Arc::new(mount));
    }

    pub fn remove(&self, id: u64) {
        self.mounts.write().retain(|m| m.id() != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(id: u64, path: &str, uri: &str) -> Mount {
        Mount::open(
            MountRecord {
                mount_id: id,
                path: path.into(),
                ufs_uri: uri.into(),
                ..Default::default()
            },
            Duration::from_secs(60),
        )
        .unwrap()
    }

    #[test]
    fn resolves_deepest_mount() {
        let t = MountTable::new(vec![
            mount(1, "/", "memory://root"),
            mount(2, "/m", "memory://other/x"),
        ]);
        let r = t.resolve("/m/a/b").unwrap();
        assert_eq!((r.mount.id(), r.rel.as_str()), (2, "a/b"));
        let r = t.resolve("/ma").unwrap();
        assert_eq!((r.mount.id(), r.rel.as_str()), (1, "ma"));
        assert_eq!(t.resolve("/m").unwrap().rel, "");
        assert_eq!(t.has_mount_below("/").as_deref(), Some("/m"));
        assert_eq!(t.has_mount_below("/m"), None);
    }

    #[test]
    fn mount_rules() {
        let t = MountTable::new(vec![
            mount(1, "/", "file:///data/root"),
            mount(2, "/m", "s3://b/p"),
        ]);
        assert!(t.check_new("/", "s3://c").is_err());
        assert!(t.check_new("/m/x", "s3://c").is_err(), "nested");
        assert!(t.check_new("/m", "s3://c").is_err(), "taken");
        assert!(t.check_new("/n", "s3://b/p/q").is_err(), "overlap below");
        assert!(t.check_new("/n", "s3://b").is_err(), "overlap above");
        assert!(
            t.check_new("/n", "file:///data/root/x").is_err(),
            "overlaps the root UFS"
        );
        assert!(t.check_new("/n", "s3://b/pq").is_ok());
        assert!(t.check_new("/n", "ftp://x").is_err());
    }

    #[test]
    fn secrets_redacted_and_sync_interval_parsed() {
        let mut rec = MountRecord {
            mount_id: 3,
            path: "/s".into(),
            ufs_uri: "s3://b".into(),
            ..Default::default()
        };
        rec.options
            .insert("secret_access_key".into(), "hunter2".into());
        rec.options.insert("sync_interval".into(), "5s".into());
        let m = Mount::open(rec.clone(), Duration::from_secs(60)).unwrap();
        assert_eq!(m.sync_interval, Duration::from_secs(5));
        assert_eq!(
            m.info(false).options["secret_access_key"],
            alluvium_ufs::REDACTED
        );
        assert_eq!(m.info(true).options["secret_access_key"], "hunter2");
        rec.options.insert("sync_interval".into(), "soon".into());
        assert!(Mount::open(rec, Duration::from_secs(60)).is_err());
    }
}
