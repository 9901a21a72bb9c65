//! The node plugin's memory across restarts: one JSON file per staged volume and per published
//! target under `--state-dir`, each written atomically (temp file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old record or the new one, never half of one.
//!
//! A staged record holds the volume's cluster secret when NodeStageVolume brought one: recovery
//! after a restart has no other way to get it (the kubelet does not stage again, and the node
//! plugin has no business reading Secrets from the API). So the record folders are mode 0700
//! and every record file is mode 0600, readable by root (the plugin) alone.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use alluvium_common::{Error, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secrets::ClusterSecret;

/// Mode of the record folders and of the record files: they may hold cluster secrets.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// A volume staged on this node: one FUSE mount of `path` at `staging_path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedRecord {
    pub volume_id: String,
    pub staging_path: PathBuf,
    pub master: String,
    pub path: String,
    /// FUSE `-o` options, exactly as mounted (includes `ro` for read-only capabilities).
    pub fuse_options: Vec<String>,
    /// Recorded quota (0 = none); NodeGetVolumeStats reports it as the total.
    pub capacity_bytes: u64,
    /// The volume's own cluster secret (NodeStageVolume's `secrets`), used for every master
    /// connection of the volume: the FUSE mount, recovery, stats. `None`: the plugin's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_secret: Option<ClusterSecret>,
}

impl StagedRecord {
    /// Whether `other` stages the same volume the same way. The secret is left out: a new one
    /// (rotated in the Kubernetes Secret) is taken, not refused as another volume.
    pub fn same_mount(&self, other: &StagedRecord) -> bool {
        let StagedRecord {
            volume_id,
            staging_path,
            master,
            path,
            fuse_options,
            capacity_bytes,
            cluster_secret: _,
        } = other;
        self.volume_id == *volume_id
            && self.staging_path == *staging_path
            && self.master == *master
            && self.path == *path
            && self.fuse_options == *fuse_options
            && self.capacity_bytes == *capacity_bytes
    }
}

/// A target directory a staged volume is bind-mounted into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRecord {
    pub volume_id: String,
    pub target_path: PathBuf,
    pub staging_path: PathBuf,
    pub read_only: bool,
}

const STAGED: &str = "staged";
const PUBLISHED: &str = "published";

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Opens (creating) the directory and its two record folders, and makes the folders
    /// private (also when an older version made them).
    pub fn open(root: &Path) -> Result<Self> {
        for sub in [STAGED, PUBLISHED] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(DIR_MODE))
                })
                .map_err(|e| {
                    Error::internal(format!(
                        "cannot create the CSI state directory {}: {e}",
                        dir.display()
                    ))
                })?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn save_staged(&self, r: &StagedRecord) -> Result<()> {
        self.write(STAGED, &r.volume_id, r)
    }

    pub fn remove_staged(&self, volume_id: &str) -> Result<()> {
        self.remove(STAGED, volume_id)
    }

    pub fn load_staged(&self) -> Result<Vec<StagedRecord>> {
        self.load(STAGED)
    }

    pub fn save_published(&self, r: &PublishedRecord) -> Result<()> {
        self.write(PUBLISHED, &r.target_path.to_string_lossy(), r)
    }

    pub fn remove_published(&self, target: &Path) -> Result<()> {
        self.remove(PUBLISHED, &target.to_string_lossy())
    }

    pub fn load_published(&self) -> Result<Vec<PublishedRecord>> {
        self.load(PUBLISHED)
    }

    /// Record file of a key: keys (volume ids, paths) hold any character, so files are named by
    /// a hash of the key.
    fn file(&self, kind: &str, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.root.join(kind).join(format!("{name}.json"))
    }

    fn write<T: Serialize>(&self, kind: &str, key: &str, value: &T) -> Result<()> {
        let path = self.file(kind, key);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::internal(format!("cannot encode a CSI state record: {e}")))?;
        let io = |e: std::io::Error| {
            Error::internal(format!(
                "cannot write the CSI state record {}: {e}",
                path.display()
            ))
        };
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .open(&tmp)
                .map_err(io)?;
            // `mode` applies only to a file it creates: a temp file left by a crash keeps its
            // mode, so set it before any byte is written.
            f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
                .map_err(io)?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        sync_dir(&self.root.join(kind)).map_err(io)
    }

    fn remove(&self, kind: &str, key: &str) -> Result<()> {
        let path = self.file(kind, key);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.root.join(kind))
                .map_err(|e| Error::internal(format!("cannot sync {}: {e}", self.root.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::internal(format!(
                "cannot remove the CSI state record {}: {e}",
                path.display()
            ))),
        }
    }

    /// Every record of a kind. A file that does not parse (edited by hand, disk trouble) is
    /// skipped with a warning rather than blocking every other volume's recovery.
    fn load<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>> {
        let dir = self.root.join(kind);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            Error::internal(format!(
                "cannot read the CSI state directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(v) => out.push(v),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "csi: skipping an unreadable state record")
                }
            }
        }
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let staged = StagedRecord {
            volume_id: "alluvium://m:1/pvc/a".into(),
            staging_path: "/k/staging".into(),
            master: "m:1".into(),
            path: "/pvc/a".into(),
            fuse_options: vec!["allow_other".into()],
            capacity_bytes: 10,
            cluster_secret: None,
        };
        let published = PublishedRecord {
            volume_id: staged.volume_id.clone(),
            target_path: "/k/pods/x/mount".into(),
            staging_path: "/k/staging".into(),
            read_only: true,
        };
        s.save_staged(&staged).unwrap();
        s.save_staged(&staged).unwrap();
        s.save_published(&published).unwrap();
        std::fs::write(dir.path().join(STAGED).join("junk.json"), b"{").unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        assert_eq!(s.load_staged().unwrap(), vec![staged.clone()]);
        assert_eq!(s.load_published().unwrap(), vec![published.clone()]);
        s.remove_published(&published.target_path).unwrap();
        s.remove_published(&published.target_path).unwrap();
        s.remove_staged(&staged.volume_id).unwrap();
        assert!(s.load_staged().unwrap().is_empty());
        assert!(s.load_published().unwrap().is_empty());
    }

    #[test]
    fn secrets_are_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        // A folder an older version made world-readable is made private on open.
        std::fs::create_dir_all(dir.path().join(STAGED)).unwrap();
        std::fs::set_permissions(
            dir.path().join(STAGED),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let s = StateDir::open(dir.path()).unwrap();
        let secret = ClusterSecret::from_secrets(&HashMap::from([(
            crate::secrets::CLUSTER_SECRET_KEY.to_string(),
            "hunter2".to_string(),
        )]))
        .unwrap();
        let rec = StagedRecord {
            volume_id: "v".into(),
            staging_path: "/k/staging".into(),
            master: "m:1".into(),
            path: "/v".into(),
            fuse_options: Vec::new(),
            capacity_bytes: 0,
            cluster_secret: secret,
        };
        // A temp file left behind by a crash, world-readable.
        let file = s.file(STAGED, "v");
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, b"{").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        s.save_staged(&rec).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(mode(&dir.path().join(STAGED)), DIR_MODE);
        assert_eq!(mode(&dir.path().join(PUBLISHED)), DIR_MODE);
        assert_eq!(s.load_staged().unwrap(), vec![rec.clone()]);
        assert!(!format!("{rec:?}").contains("hunter2"));
        // Another secret is the same mount; another path is not.
        let rotated = StagedRecord {
            cluster_secret: None,
            ..rec.clone()
        };
        assert!(rec.same_mount(&rotated));
        let moved = StagedRecord {
            path: "/w".into(),
            ..rec.clone()
        };
        assert!(!rec.same_mount(&moved));
    }
}
