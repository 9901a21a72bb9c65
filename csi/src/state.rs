//! The node plugin's memory across restarts: one JSON file per staged volume and per published
//! target under `--state-dir`, each written atomically (temp file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old record or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use alluvium_common::{Error, Result};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
    /// Opens (creating) the directory and its two record folders.
    pub fn open(root: &Path) -> Result<Self> {
        for sub in [STAGED, PUBLISHED] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| {
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
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
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
}
