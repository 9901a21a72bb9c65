//! `checkConsistency`: compares the namespace under a path with its UFS, entry by entry, and
//! optionally repairs what differs.
//!
//! The check reads the namespace as it is, without a metadata sync first: a sync would quietly
//! fix exactly what the check exists to show (a mount with a long sync interval, files changed
//! behind Alluvium's back). An entry is inconsistent when it is persisted in Alluvium but gone
//! from the UFS, a file in one and a directory in the other, a file whose UFS content changed
//! (fingerprint or length), or present in the UFS but unknown to Alluvium. Entries that exist only
//! in Alluvium (never persisted) are not inconsistent: they were never meant to be in the UFS.
//!
//! Every finding is confirmed by a fresh stat before it is reported, because a listing taken a
//! moment earlier can miss a file whose asynchronous persistence just finished. A repair re-syncs
//! the entry from the UFS with the metadata-sync code (the UFS is the source of truth), then
//! compares again, so `repaired` is only reported when the entry really matches now.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use alluvium_common::{path, Error, Result};
use alluvium_proto::{CheckConsistencyResponse, Inconsistency, InodeRecord};
use alluvium_ufs::UfsStatus;
use tokio::sync::mpsc;

use super::lookup::check_traverse;
use super::{is_not_found, walk, Namespace};
use crate::inode;
use crate::permission::{Access, Checker};

/// Findings per response message.
const PAGE: usize = 256;
/// Namespace children read per metastore call.
const CHILD_PAGE: usize = 1024;

/// What differs between an entry and its UFS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MissingInUfs,
    MissingInAlluvium,
    TypeMismatch,
    ContentMismatch,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::MissingInUfs => "MISSING_IN_UFS",
            Kind::MissingInAlluvium => "MISSING_IN_ALLUVIUM",
            Kind::TypeMismatch => "TYPE_MISMATCH",
            Kind::ContentMismatch => "CONTENT_MISMATCH",
        }
    }
}

fn kind_name(is_dir: bool) -> &'static str {
    if is_dir {
        "directory"
    } else {
        "file"
    }
}

/// Compares one entry: its inode (if the namespace has it) with its UFS status (if the UFS has
/// it). `None` when they agree.
pub fn compare(r: Option<&InodeRecord>, st: Option<&UfsStatus>) -> Option<(Kind, String)> {
    match (r, st) {
        (None, None) => None,
        (None, Some(st)) => Some((
            Kind::MissingInAlluvium,
            format!("{} in the UFS, not in Alluvium", kind_name(st.is_dir)),
        )),
        // A mount point is the root of another UFS: it is compared as that mount's root.
        (Some(r), _) if r.mount_id != 0 => None,
        // Only in Alluvium by design (MUST_CACHE, or persistence still pending).
        (Some(r), _) if !inode::is_persisted(r) => None,
        (Some(r), None) => Some((
            Kind::MissingInUfs,
            format!(
                "persisted {} in Alluvium, missing in the UFS",
                kind_name(r.is_dir)
            ),
        )),
        (Some(r), Some(st)) if r.is_dir != st.is_dir => Some((
            Kind::TypeMismatch,
            format!(
                "{} in Alluvium, {} in the UFS",
                kind_name(r.is_dir),
                kind_name(st.is_dir)
            ),
        )),
        (Some(r), Some(st)) if !r.is_dir && r.completed => {
            if r.length != st.length {
                Some((
                    Kind::ContentMismatch,
                    format!("length {} in Alluvium, {} in the UFS", r.length, st.length),
                ))
            } else if !r.ufs_fingerprint.is_empty() && r.ufs_fingerprint != st.fingerprint {
                Some((
                    Kind::ContentMismatch,
                    "changed in the UFS since Alluvium loaded it (fingerprint differs)".to_string(),
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Sends findings in pages with the running count of entries compared.
struct Sink {
    tx: mpsc::Sender<Result<CheckConsistencyResponse>>,
    items: Vec<Inconsistency>,
    checked: u64,
}

impl Sink {
    /// Returns false once the client went away.
    async fn push(&mut self, item: Inconsistency) -> bool {
        self.items.push(item);
        if self.items.len() >= PAGE {
            return self.flush().await;
        }
        true
    }

    async fn flush(&mut self) -> bool {
        let msg = CheckConsistencyResponse {
            items: std::mem::take(&mut self.items),
            checked: self.checked,
        };
        self.tx.send(Ok(msg)).await.is_ok()
    }
}

impl Namespace {
    /// Starts a consistency check of `p` (its direct children, or its whole tree when
    /// `recursive`); pages of findings arrive on the returned channel. Errors found before the
    /// walk starts (bad path, permission, missing everywhere) are returned directly.
    pub async fn check_consistency(
        self: &Arc<Self>,
        checker: &Checker,
        p: &str,
        recursive: bool,
        repair: bool,
    ) -> Result<mpsc::Receiver<Result<CheckConsistencyResponse>>> {
        let p = path::normalize(p)?;
        let w = walk(&*self.store, &p)?;
        check_traverse(checker, w.ancestors(), &p)?;
        if !w.found() {
            // Unknown to Alluvium: either only in the UFS (an inconsistency) or nowhere.
            let st = self.ufs_stat(&p).await?;
            if st.is_none() {
                return Err(Error::not_found(format!(
                    "{p}: does not exist in Alluvium or its UFS"
                )));
            }
        } else {
            checker.check(w.last(), &p, Access::Read)?;
        }
        let (tx, rx) = mpsc::channel(2);
        let ns = self.clone();
        let checker = checker.clone();
        tokio::spawn(async move {
            let mut sink = Sink {
                tx: tx.clone(),
                items: Vec::new(),
                checked: 0,
            };
            match ns
                .run_check(&checker, &p, recursive, repair, &mut sink)
                .await
            {
                Ok(()) => {
                    sink.flush().await;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Ok(rx)
    }

    async fn run_check(
        &self,
        checker: &Checker,
        p: &str,
        recursive: bool,
        repair: bool,
        sink: &mut Sink,
    ) -> Result<()> {
        // The target itself.
        let target = walk(&*self.store, p)?;
        let rec = target.found().then(|| target.last().clone());
        let st = self.ufs_stat(p).await?;
        sink.checked += 1;
        if let Some(finding) = compare(rec.as_ref(), st.as_ref()) {
            let item = self.finding(checker, p, finding, repair, recursive).await?;
            if !sink.push(item).await {
                return Ok(());
            }
        }
        let Some(rec) = rec.filter(|r| r.is_dir) else {
            return Ok(());
        };
        if st.as_ref().is_some_and(|s| !s.is_dir) && rec.mount_id == 0 {
            // A type mismatch at the top: the UFS has no directory to compare children with.
            return Ok(());
        }
        let mut queue = VecDeque::from([(p.to_string(), rec)]);
        while let Some((dp, d)) = queue.pop_front() {
            checker.check(&d, &dp, Access::Read)?;
            let subdirs = self
                .check_dir(checker, &dp, &d, repair, recursive, sink)
                .await?;
            let Some(subdirs) = subdirs else {
                return Ok(());
            };
            if recursive {
                queue.extend(subdirs);
            }
        }
        Ok(())
    }

    /// Compares the children of directory `d` at `dp` with its UFS listing. Returns the
    /// sub-directories to descend into (None when the client went away).
    async fn check_dir(
        &self,
        checker: &Checker,
        dp: &str,
        d: &InodeRecord,
        repair: bool,
        recursive: bool,
        sink: &mut Sink,
    ) -> Result<Option<Vec<(String, InodeRecord)>>> {
        let mut ufs = self.ufs_listing(dp).await?;
        let mut suspects: Vec<String> = Vec::new();
        let mut subdirs = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_children(d.id, after.as_deref(), CHILD_PAGE)?;
            let done = page.len() < CHILD_PAGE;
            after = page.last().map(|(n, _)| n.clone());
            for (name, id) in page {
                let Some(r) = self.store.get_inode(id)? else {
                    continue;
                };
                let st = ufs.remove(&name);
                sink.checked += 1;
                let child = path::join(dp, &name);
                if compare(Some(&r), st.as_ref()).is_some() {
                    suspects.push(child.clone());
                }
                // Descend where the UFS has a directory too, or into another mount's root.
                let ufs_dir = st.as_ref().is_none_or(|s| s.is_dir);
                if r.is_dir && (r.mount_id != 0 || ufs_dir) {
                    subdirs.push((child, r));
                }
            }
            if done {
                break;
            }
        }
        let mut only_in_ufs: Vec<String> = ufs
            .into_keys()
            .filter(|n| path::validate_name(n).is_ok())
            .map(|n| path::join(dp, &n))
            .collect();
        sink.checked += only_in_ufs.len() as u64;
        suspects.append(&mut only_in_ufs);
        suspects.sort();
        for child in suspects {
            // Confirmed against the namespace and the UFS as they are now.
            let w = walk(&*self.store, &child)?;
            let rec = w.found().then(|| w.last().clone());
            let st = self.ufs_stat(&child).await?;
            if let Some(finding) = compare(rec.as_ref(), st.as_ref()) {
                let item = self
                    .finding(checker, &child, finding, repair, recursive)
                    .await?;
                if !sink.push(item).await {
                    return Ok(None);
                }
            }
        }
        Ok(Some(subdirs))
    }

    /// Builds the report of one inconsistency, repairing it first when asked.
    async fn finding(
        &self,
        checker: &Checker,
        p: &str,
        (kind, detail): (Kind, String),
        repair: bool,
        recursive: bool,
    ) -> Result<Inconsistency> {
        let mut repaired = false;
        if repair {
            self.repair(checker, p, kind, recursive).await?;
            let w = walk(&*self.store, p)?;
            let rec = w.found().then(|| w.last().clone());
            let st = self.ufs_stat(p).await?;
            repaired = compare(rec.as_ref(), st.as_ref()).is_none();
        }
        Ok(Inconsistency {
            path: p.to_string(),
            kind: kind.as_str().to_string(),
            detail,
            repaired,
        })
    }

    /// Brings one entry in line with its UFS, which is the source of truth: a forced metadata
    /// sync removes what the UFS lost, replaces what changed and loads what is new.
    async fn repair(&self, checker: &Checker, p: &str, kind: Kind, recursive: bool) -> Result<()> {
        self.sync_path(p, true).await?;
        let w = walk(&*self.store, p)?;
        if kind != Kind::MissingInUfs && w.found() && w.last().is_dir && recursive {
            // A directory new to Alluvium: load what is below it too, as `loadMetadata -R`.
            self.load_metadata(checker, p, true).await?;
        }
        Ok(())
    }

    /// The UFS status of a namespace path (None when the UFS has nothing there).
    async fn ufs_stat(&self, p: &str) -> Result<Option<UfsStatus>> {
        let res = self.mounts.resolve(p)?;
        match res.mount.ufs.stat(&res.rel).await {
            Ok(st) => Ok(st),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(with_path(e, p)),
        }
    }

    /// The UFS entries of a directory by name (empty when the UFS has no such directory).
    async fn ufs_listing(&self, p: &str) -> Result<HashMap<String, UfsStatus>> {
        let res = self.mounts.resolve(p)?;
        res.mount
            .ufs
            .list_by_name(&res.rel)
            .await
            .map_err(|e| with_path(e, p))
    }
}

fn with_path(e: Error, p: &str) -> Error {
    e.context(format!("{p}: checking the UFS"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alluvium_proto::PersistenceState;

    fn file(len: u64, fp: &str, persisted: bool) -> InodeRecord {
        InodeRecord {
            length: len,
            completed: true,
            ufs_fingerprint: fp.into(),
            persistence_state: if persisted {
                PersistenceState::Persisted as i32
            } else {
                PersistenceState::NotPersisted as i32
            },
            ..Default::default()
        }
    }

    fn ufs(is_dir: bool, len: u64, fp: &str) -> UfsStatus {
        UfsStatus {
            name: "x".into(),
            rel_path: "x".into(),
            is_dir,
            length: len,
            mtime_ms: 0,
            fingerprint: fp.into(),
        }
    }

    #[test]
    fn comparisons() {
        assert_eq!(compare(None, None), None);
        assert_eq!(
            compare(None, Some(&ufs(false, 1, "a"))).unwrap().0,
            Kind::MissingInAlluvium
        );
        assert_eq!(
            compare(Some(&file(1, "a", true)), None).unwrap().0,
            Kind::MissingInUfs
        );
        // Not persisted: only in Alluvium by design.
        assert_eq!(compare(Some(&file(1, "a", false)), None), None);
        assert_eq!(
            compare(Some(&file(1, "a", true)), Some(&ufs(true, 0, "")))
                .unwrap()
                .0,
            Kind::TypeMismatch
        );
        let (k, d) = compare(Some(&file(1, "a", true)), Some(&ufs(false, 2, "a"))).unwrap();
        assert_eq!(k, Kind::ContentMismatch);
        assert!(d.contains("length 1 in Alluvium, 2 in the UFS"), "{d}");
        assert_eq!(
            compare(Some(&file(1, "a", true)), Some(&ufs(false, 1, "b")))
                .unwrap()
                .0,
            Kind::ContentMismatch
        );
        assert_eq!(
            compare(Some(&file(1, "a", true)), Some(&ufs(false, 1, "a"))),
            None
        );
        // No fingerprint recorded yet (written through Alluvium): the length decides.
        assert_eq!(
            compare(Some(&file(1, "", true)), Some(&ufs(false, 1, "z"))),
            None
        );
        let mount_point = InodeRecord {
            is_dir: true,
            mount_id: 7,
            persistence_state: PersistenceState::Persisted as i32,
            ..Default::default()
        };
        assert_eq!(compare(Some(&mount_point), None), None);
    }
}
