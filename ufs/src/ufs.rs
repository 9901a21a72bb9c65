//! [`Ufs`]: one mounted under-storage, as an opendal `Operator` plus Alluvium's conventions.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;
use std::time::Duration;

use alluvium_common::{path, Error, ErrorCode, Result};
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, EntryMode, Operator};
use parking_lot::Mutex;

use crate::error::map_err;
use crate::uri::{Scheme, UfsUri};

/// One entry of a UFS: a file or a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfsStatus {
    /// Last path component.
    pub name: String,
    /// Path relative to the UFS root (no leading or trailing `/`).
    pub rel_path: String,
    pub is_dir: bool,
    pub length: u64,
    /// Last modification, when the UFS reports it (0 otherwise).
    pub mtime_ms: i64,
    /// Changes when the content changes: the ETag where the UFS has one, else length and mtime.
    pub fingerprint: String,
}

/// A mounted under-storage. Cheap to clone.
#[derive(Clone)]
pub struct Ufs {
    op: Operator,
    pub(crate) uri: UfsUri,
}

impl std::fmt::Debug for Ufs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ufs")
            .field("uri", &self.uri.to_string())
            .finish()
    }
}

/// `memory://name` stores are per process: every `Ufs` opened on the same name shares one.
fn memory_stores() -> &'static Mutex<HashMap<String, Operator>> {
    static STORES: OnceLock<Mutex<HashMap<String, Operator>>> = OnceLock::new();
    STORES.get_or_init(Default::default)
}

fn opt<'a>(options: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| options.get(*k))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

impl Ufs {
    /// Opens the UFS at `uri` with mount `options`:
    /// - S3: `endpoint` (or `s3.endpoint`, `AWS_ENDPOINT_URL`), `region` (default `us-east-1`),
    ///   `access_key_id` / `secret_access_key` / `session_token` (else the AWS_* environment),
    ///   `virtual_host_style=true` to leave path-style addressing.
    /// - WebHDFS: `user` (the Hadoop user), `delegation` token.
    ///
    /// Opening does no I/O; the first call reaches the store.
    pub fn open(uri: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let parsed = UfsUri::parse(uri)?;
        let root = parsed.path.clone();
        let bad = |e: opendal::Error| map_err(e, &parsed.to_string());
        let op = match parsed.scheme {
            Scheme::File => Operator::new(services::Fs::default().root(&root)).map_err(bad)?,
            Scheme::Memory => {
                let mut stores = memory_stores().lock();
                let base = match stores.get(&parsed.authority) {
                    Some(op) => op.clone(),
                    None => {
                        let op = Operator::new(services::Memory::default()).map_err(bad)?;
                        stores.insert(parsed.authority.clone(), op.clone());
                        op
                    }
                };
                drop(stores);
                // Memory stores have no root option that shares data, so roots are applied by
                // prefixing paths (see `full`).
                base
            }
            Scheme::S3 => {
                let env_or = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let mut b = services::S3::default()
                    .bucket(&parsed.authority)
                    .root(&root)
                    .disable_ec2_metadata();
                let region = opt(options, &["region", "s3.region"])
                    .map(String::from)
                    .or_else(|| env_or("AWS_REGION"))
                    .or_else(|| env_or("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into());
                b = b.region(&region);
                if let Some(ep) = opt(options, &["endpoint", "s3.endpoint"])
                    .map(String::from)
                    .or_else(|| env_or("AWS_ENDPOINT_URL_S3"))
                    .or_else(|| env_or("AWS_ENDPOINT_URL"))
                {
                    b = b.endpoint(&ep);
                }
                if let Some(k) = opt(
                    options,
                    &["access_key_id", "aws.accessKeyId", "s3a.access.key"],
                ) {
                    b = b.access_key_id(k);
                }
                if let Some(s) = opt(
                    options,
                    &["secret_access_key", "aws.secretKey", "s3a.secret.key"],
                ) {
                    b = b.secret_access_key(s);
                }
                if let Some(t) = opt(options, &["session_token"]) {
                    b = b.session_token(t);
                }
                if opt(options, &["virtual_host_style"]) == Some("true") {
                    b = b.enable_virtual_host_style();
                }
                Operator::new(b).map_err(bad)?
            }
            Scheme::WebHdfs => {
                let mut b = services::Webhdfs::default()
                    .endpoint(&format!("http://{}", parsed.authority))
                    .root(&root);
                if let Some(u) = opt(options, &["user", "user.name", "webhdfs.user"]) {
                    b = b.user_name(u);
                }
                if let Some(d) = opt(options, &["delegation"]) {
                    b = b.delegation(d);
                }
                Operator::new(b).map_err(bad)?
            }
        };
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(60))
                    .with_io_timeout(Duration::from_secs(20)),
            )
            .layer(
                RetryLayer::new()
                    .with_max_times(2)
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(1))
                    .with_jitter(),
            );
        Ok(Ufs { op, uri: parsed })
    }

    /// The UFS root URI (never contains credentials).
    pub fn uri(&self) -> String {
        self.uri.to_string()
    }

    /// The URI of a path relative to the root.
    pub fn uri_of(&self, rel: &str) -> String {
        self.uri.join(rel)
    }

    pub fn scheme(&self) -> Scheme {
        self.uri.scheme
    }

    /// Checks that `rel` can be stored here: file systems (local, HDFS) take names of at most
    /// 255 bytes, S3 keys of at most 1024 bytes (the mount's prefix included). A name the UFS
    /// cannot hold must be refused when it is created, not found out by a persist that then
    /// fails forever.
    pub fn check_fits(&self, rel: &str) -> Result<()> {
        let rel = rel.trim_matches('/');
        match self.uri.scheme {
            Scheme::File | Scheme::WebHdfs => {
                if let Some(long) = rel.split('/').find(|c| c.len() > MAX_FS_NAME_BYTES) {
                    return Err(Error::invalid_argument(format!(
                        "{}: a name of {} bytes is longer than the {MAX_FS_NAME_BYTES} this UFS allows",
                        self.uri(),
                        long.len()
                    )));
                }
            }
            Scheme::S3 => {
                let prefix = self.uri.path.trim_matches('/');
                let key = prefix.len() + usize::from(!prefix.is_empty()) + rel.len();
                if key > MAX_S3_KEY_BYTES {
                    return Err(Error::invalid_argument(format!(
                        "{}: a key of {key} bytes is longer than the {MAX_S3_KEY_BYTES} S3 allows",
                        self.uri()
                    )));
                }
            }
            Scheme::Memory => {}
        }
        Ok(())
    }

    /// Whether renaming a directory is supported natively (object stores cannot).
    pub fn supports_dir_rename(&self) -> bool {
        matches!(self.uri.scheme, Scheme::File | Scheme::WebHdfs)
    }

    /// The opendal path of `rel`: relative to the operator root; directories end with `/`.
    fn full(&self, rel: &str, dir: bool) -> String {
        let rel = rel.trim_matches('/');
        let mut p = if self.uri.scheme == Scheme::Memory && self.uri.path != "/" {
            let base = self.uri.path.trim_matches('/');
            if rel.is_empty() {
                base.to_string()
            } else {
                format!("{base}/{rel}")
            }
        } else {
            rel.to_string()
        };
        if dir {
            if p.is_empty() {
                return "/".into();
            }
            p.push('/');
        }
        p
    }

    fn err(&self, rel: &str) -> impl Fn(opendal::Error) -> Error + '_ {
        let what = self.uri_of(rel);
        move |e| map_err(e, &what)
    }

    /// Checks that the store answers, with I/O: [`Ufs::check`] may be answered locally (object
    /// stores stat their root without a request), so the first entry of the root listing is
    /// fetched too.
    pub async fn probe(&self) -> Result<()> {
        self.check().await?;
        let s = self.list_stream("").await?;
        let mut s = std::pin::pin!(s);
        match s.next().await {
            Some(Err(e)) if e.code != ErrorCode::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Checks that the store answers (lists its root).
    pub async fn check(&self) -> Result<()> {
        let root = self.full("", true);
        match self.op.stat(&root).await {
            Ok(_) => Ok(()),
            // Object stores may have no marker for the root "directory": a listing decides.
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                match self.op.lister(&root).await {
                    Ok(mut l) => l.try_next().await.map(|_| ()).map_err(self.err("")),
                    Err(e) => Err(self.err("")(e)),
                }
            }
            Err(e) => Err(self.err("")(e)),
        }
    }

    /// Status of `rel`; `None` when it does not exist. Directories without a marker object in an
    /// object store are found by listing.
    pub async fn stat(&self, rel: &str) -> Result<Option<UfsStatus>> {
        let rel = rel.trim_matches('/');
        // Unfinished writes and staged persists are not part of the namespace (listings skip
        // them too), so a sync of such a path finds nothing.
        if crate::is_hidden_path(rel) {
            return Ok(None);
        }
        if rel.is_empty() {
            return Ok(Some(UfsStatus {
                name: String::new(),
                rel_path: String::new(),
                is_dir: true,
                length: 0,
                mtime_ms: 0,
                fingerprint: String::new(),
            }));
        }
        match self.op.stat(&self.full(rel, false)).await {
            Ok(m) => return Ok(Some(status_of(rel, &m))),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err(rel)(e)),
        }
        // A directory? (fs/webhdfs answer the plain stat; object stores need the slash form or a
        // listing of the prefix.)
        match self.op.stat(&self.full(rel, true)).await {
            Ok(m) if m.mode() == EntryMode::DIR => {
                return Ok(Some(status_of(rel, &m)));
            }
            Ok(_) => {}
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err(rel)(e)),
        }
        if self.uri.scheme == Scheme::S3 {
            let mut l = self
                .op
                .lister(&self.full(rel, true))
                .await
                .map_err(self.err(rel))?;
            if l.try_next().await.map_err(self.err(rel))?.is_some() {
                return Ok(Some(UfsStatus {
                    name: path::name(&format!("/{rel}")).to_string(),
                    rel_path: rel.to_string(),
                    is_dir: true,
                    length: 0,
                    mtime_ms: 0,
                    fingerprint: String::new(),
                }));
            }
        }
        Ok(None)
    }

    /// The direct children of directory `rel`, streamed (a huge directory is never one vector).
    /// Entries with names that cannot be namespace names are skipped with a warning.
    pub async fn list_stream(
        &self,
        rel: &str,
    ) -> Result<impl Stream<Item = Result<UfsStatus>> + Send + 'static> {
        let rel = rel.trim_matches('/').to_string();
        let dir = self.full(&rel, true);
        let lister = self.op.lister(&dir).await.map_err(self.err(&rel))?;
        let what = self.uri_of(&rel);
        let mem_prefix = if self.uri.scheme == Scheme::Memory && self.uri.path != "/" {
            format!("{}/", self.uri.path.trim_matches('/'))
        } else {
            String::new()
        };
        let op = self.op.clone();
        let stream = lister
            .map_err(move |e| map_err(e, &what))
            .filter_map(move |entry| {
                let op = op.clone();
                let dir = dir.clone();
                let mem_prefix = mem_prefix.clone();
                async move {
                    let entry = match entry {
                        Ok(e) => e,
                        Err(e) => return Some(Err(e)),
                    };
                    let p = entry.path();
                    // Listers may return the directory itself.
                    if p == dir || p.trim_end_matches('/') == dir.trim_end_matches('/') {
                        return None;
                    }
                    let p = p.strip_prefix(&mem_prefix).unwrap_or(p);
                    let rel_path = p.trim_matches('/').to_string();
                    let name = rel_path.rsplit('/').next().unwrap_or("").to_string();
                    if is_temporary_name(&name) {
                        return None;
                    }
                    if path::validate_name(&name).is_err() {
                        tracing::warn!(entry = %p, "skipping UFS entry with an invalid name");
                        return None;
                    }
                    let mut meta = entry.metadata().clone();
                    // Some listers omit sizes; ask once more for files.
                    if meta.mode() == EntryMode::FILE && meta.content_length() == 0 {
                        if let Ok(m) = op.stat(entry.path()).await {
                            meta = m;
                        }
                    }
                    Some(Ok(status_of(&rel_path, &meta)))
                }
            });
        Ok(stream)
    }

    /// The direct children of directory `rel` by name; empty when the directory does not exist
    /// (or vanishes while it is listed).
    pub async fn list_by_name(&self, rel: &str) -> Result<HashMap<String, UfsStatus>> {
        let mut out = HashMap::new();
        let stream = match self.list_stream(rel).await {
            Ok(s) => s,
            Err(e) if e.code == ErrorCode::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(st) => {
                    out.insert(st.name.clone(), st);
                }
                Err(e) if e.code == ErrorCode::NotFound => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// All direct children of directory `rel` (for small directories and tests).
    pub async fn list(&self, rel: &str) -> Result<Vec<UfsStatus>> {
        self.list_stream(rel).await?.try_collect().await
    }

    /// Reads `[offset, offset + len)` of file `rel` into memory.
    pub async fn read(&self, rel: &str, offset: u64, len: u64) -> Result<Bytes> {
        let buf = self
            .op
            .read_with(&self.full(rel, false))
            .range(offset..offset + len)
            .await
            .map_err(self.err(rel))?;
        Ok(buf.to_bytes())
    }

    /// Streams `[offset, offset + len)` of file `rel` in chunks of about `chunk` bytes.
    pub async fn read_stream(
        &self,
        rel: &str,
        offset: u64,
        len: u64,
        chunk: usize,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let what = self.uri_of(rel);
        let reader = self
            .op
            .reader_with(&self.full(rel, false))
            .chunk(chunk.max(64 * 1024))
            .await
            .map_err(self.err(rel))?;
        let stream = reader
            .into_bytes_stream(offset..offset + len)
            .await
            .map_err(self.err(rel))?;
        Ok(stream.map_err(move |e| Error::unavailable(format!("{what}: UFS read failed: {e}"))))
    }

    /// A writer for file `rel`, creating parent directories as needed. Nothing is visible in the
    /// UFS until [`UfsWriter::close`] returns successfully: object stores publish on completion,
    /// and file systems (local, WebHDFS) are written under a hidden temporary name beside the
    /// target and renamed into place.
    pub async fn writer(&self, rel: &str) -> Result<UfsWriter> {
        let full = self.full(rel, false);
        if let Some(parent) = path::parent(&format!("/{}", rel.trim_matches('/'))) {
            if parent != "/" && matches!(self.uri.scheme, Scheme::File | Scheme::WebHdfs) {
                self.create_dir(parent).await?;
            }
        }
        let tmp = matches!(self.uri.scheme, Scheme::File | Scheme::WebHdfs).then(|| {
            let (dir, name) = match full.rsplit_once('/') {
                Some((d, n)) => (format!("{d}/"), n),
                None => (String::new(), full.as_str()),
            };
            // Short enough for the file system even when the target's name is as long as it
            // allows: the random suffix makes it unique, the name only helps a human.
            let name = path::prefix(name, 64);
            format!("{dir}.{name}{TMP_MARKER}{:016x}", rand::random::<u64>())
        });
        let w = self
            .op
            .writer_with(tmp.as_deref().unwrap_or(&full))
            .chunk(8 * 1024 * 1024)
            .await
            .map_err(self.err(rel))?;
        let local_dir = (self.uri.scheme == Scheme::File).then(|| {
            let target = std::path::Path::new(&self.uri.path).join(&full);
            target
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default()
        });
        Ok(UfsWriter {
            inner: Some(w),
            op: self.op.clone(),
            target: full,
            tmp,
            local_dir,
            what: self.uri_of(rel),
            written: 0,
        })
    }

    /// Creates directory `rel` and its parents; succeeds if it exists.
    pub async fn create_dir(&self, rel: &str) -> Result<()> {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return Ok(());
        }
        self.op
            .create_dir(&self.full(rel, true))
            .await
            .map_err(self.err(rel))
    }

    /// Deletes file `rel`; succeeds if it does not exist.
    pub async fn delete_file(&self, rel: &str) -> Result<()> {
        self.op
            .delete(&self.full(rel, false))
            .await
            .map_err(self.err(rel))
    }

    /// Deletes directory `rel` and everything below it; succeeds if it does not exist.
    pub async fn delete_dir_all(&self, rel: &str) -> Result<()> {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return Err(Error::invalid_argument(format!(
                "{}: refusing to delete the root of a UFS",
                self.uri()
            )));
        }
        self.op
            .delete_with(&self.full(rel, true))
            .recursive(true)
            .await
            .map_err(self.err(rel))
    }

    /// Renames file or directory `from` to `to`. Stores without rename (S3) copy then delete
    /// files; directories there are refused.
    pub async fn rename(&self, from: &str, to: &str, is_dir: bool) -> Result<()> {
        if is_dir && self.uri.scheme == Scheme::File {
            return self.rename_local_dir(from, to).await;
        }
        if let Some(parent) = path::parent(&format!("/{}", to.trim_matches('/'))) {
            if parent != "/" && matches!(self.uri.scheme, Scheme::File | Scheme::WebHdfs) {
                self.create_dir(parent).await?;
            }
        }
        let cap = self.op.info().capability();
        if cap.rename {
            return self
                .op
                .rename(&self.full(from, is_dir), &self.full(to, is_dir))
                .await
                .map_err(self.err(from));
        }
        if is_dir {
            return Err(Error::failed_precondition(format!(
                "{}: renaming a directory is not supported by this UFS",
                self.uri_of(from)
            )));
        }
        self.op
            .copy(&self.full(from, false), &self.full(to, false))
            .await
            .map_err(self.err(from))?;
        self.delete_file(from).await
    }
}

fn status_of(rel: &str, m: &opendal::Metadata) -> UfsStatus {
    let rel = rel.trim_matches('/').to_string();
    let is_dir = m.mode() == EntryMode::DIR;
    let mtime_ms = m
        .last_modified()
        .map(|t| t.into_inner().as_millisecond())
        .unwrap_or(0);
    let length = if is_dir { 0 } else { m.content_length() };
    let fingerprint = match m.etag() {
        Some(etag) => format!("etag:{}", etag.trim_matches('"')),
        None => format!("len:{length},mtime:{mtime_ms}"),
    };
    UfsStatus {
        name: rel.rsplit('/').next().unwrap_or("").to_string(),
        rel_path: rel,
        is_dir,
        length,
        mtime_ms,
        fingerprint,
    }
}

/// The longest file name local file systems and HDFS take (NAME_MAX; HDFS's default
/// `dfs.namenode.fs-limits.max-component-length`).
const MAX_FS_NAME_BYTES: usize = 255;
/// The longest S3 object key.
const MAX_S3_KEY_BYTES: usize = 1024;

/// Marks a file being written under its temporary name (`.<name>.alluvium-ufs-tmp-<random>`);
/// listings skip such names.
const TMP_MARKER: &str = ".alluvium-ufs-tmp-";

/// Whether a UFS entry name is an unfinished write of a [`UfsWriter`].
pub fn is_temporary_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TMP_MARKER)
}

/// Writes one UFS file. Dropping it without [`UfsWriter::close`] aborts the write.
pub struct UfsWriter {
    /// `None` once closed or aborted.
    inner: Option<opendal::Writer>,
    op: Operator,
    target: String,
    /// The temporary name written before the rename into `target` (file systems only).
    tmp: Option<String>,
    /// The local directory holding `target` (file:// only), synced after the rename.
    local_dir: Option<std::path::PathBuf>,
    what: String,
    written: u64,
}

impl UfsWriter {
    pub async fn write(&mut self, data: Bytes) -> Result<()> {
        self.written += data.len() as u64;
        let what = &self.what;
        let Some(w) = self.inner.as_mut() else {
            return Err(Error::internal(format!("{what}: write after close")));
        };
        w.write(data).await.map_err(|e| map_err(e, what))
    }

    /// Completes the file; when this returns, the data is durable in the UFS (for local files:
    /// the data is synced, renamed into place, and the rename itself synced).
    pub async fn close(mut self) -> Result<u64> {
        let what = self.what.clone();
        let Some(mut w) = self.inner.take() else {
            return Err(Error::internal(format!("{what}: closed twice")));
        };
        if let Err(e) = w.close().await {
            self.remove_tmp().await;
            return Err(map_err(e, &what));
        }
        if let Some(tmp) = self.tmp.clone() {
            if let Err(e) = self.op.rename(&tmp, &self.target).await {
                self.remove_tmp().await;
                return Err(map_err(e, &what));
            }
            self.tmp = None;
        }
        if let Some(dir) = self.local_dir.take() {
            tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
                .await
                .map_err(|e| Error::internal(format!("{what}: sync task failed: {e}")))?
                .map_err(|e| Error::from(e).context(format!("{what}: syncing its directory")))?;
        }
        Ok(self.written)
    }

    /// Abandons the write; nothing of it stays in the UFS.
    pub async fn abort(mut self) -> Result<()> {
        let what = self.what.clone();
        let result = match self.inner.take() {
            // Written under a temporary name: dropping the writer and removing the file is the
            // abort (opendal's fs cannot abort a plain write).
            Some(_) if self.tmp.is_some() => Ok(()),
            Some(mut w) => w.abort().await.map_err(|e| map_err(e, &what)),
            None => Ok(()),
        };
        self.remove_tmp().await;
        result
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    async fn remove_tmp(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            if let Err(e) = self.op.delete(&tmp).await {
                tracing::warn!(file = %tmp, error = %e, "could not remove an unfinished UFS write");
            }
        }
    }
}

impl Drop for UfsWriter {
    fn drop(&mut self) {
        // Dropped mid-write (the client went away): remove the temporary file in the background.
        let Some(tmp) = self.tmp.take() else { return };
        if self.inner.is_none() {
            return;
        }
        let op = self.op.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = op.delete(&tmp).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_opts() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[tokio::test]
    async fn local_fs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let ufs = Ufs::open(dir.path().to_str().unwrap(), &no_opts()).unwrap();
        ufs.check().await.unwrap();
        let mut w = ufs.writer("a/b/file.txt").await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.close().await.unwrap(), 11);
        assert_eq!(
            std::fs::read(dir.path().join("a/b/file.txt")).unwrap(),
            b"hello world"
        );
        let st = ufs.stat("a/b/file.txt").await.unwrap().unwrap();
        assert_eq!(
            (st.is_dir, st.length, st.name.as_str()),
            (false, 11, "file.txt")
        );
        assert!(ufs.stat("a").await.unwrap().unwrap().is_dir);
        assert!(ufs.stat("nope").await.unwrap().is_none());
        assert_eq!(ufs.read("a/b/file.txt", 6, 5).await.unwrap(), "world");
        let chunks: Vec<Bytes> = ufs
            .read_stream("a/b/file.txt", 0, 11, 4)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(chunks.concat(), b"hello world");
        let names: Vec<String> = ufs
            .list("a/b")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec!["file.txt"]);
        ufs.rename("a/b/file.txt", "c/moved.txt", false)
            .await
            .unwrap();
        assert!(ufs.stat("c/moved.txt").await.unwrap().is_some());
        ufs.delete_file("c/moved.txt").await.unwrap();
        ufs.delete_file("c/moved.txt").await.unwrap(); // idempotent
        ufs.delete_dir_all("a").await.unwrap();
        assert!(ufs.stat("a").await.unwrap().is_none());
        assert!(ufs.delete_dir_all("").await.is_err());
    }

    #[tokio::test]
    async fn local_writes_appear_only_when_closed_and_aborts_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ufs = Ufs::open(dir.path().to_str().unwrap(), &no_opts()).unwrap();
        let names = |ufs: &Ufs| {
            let ufs = ufs.clone();
            async move {
                let mut n: Vec<String> = ufs
                    .list("d")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| s.name)
                    .collect();
                n.sort();
                n
            }
        };
        // In flight: not listed, not at the target path.
        let mut w = ufs.writer("d/a.bin").await.unwrap();
        w.write(Bytes::from_static(b"hello")).await.unwrap();
        assert!(names(&ufs).await.is_empty());
        assert!(!dir.path().join("d/a.bin").exists());
        assert_eq!(w.close().await.unwrap(), 5);
        assert_eq!(names(&ufs).await, ["a.bin"]);
        assert_eq!(std::fs::read(dir.path().join("d/a.bin")).unwrap(), b"hello");
        // Aborted: the earlier file is untouched and no temporary file remains.
        let mut w = ufs.writer("d/a.bin").await.unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        w.abort().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/a.bin")).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(dir.path().join("d")).unwrap().count(), 1);
        // Dropped mid-write: the temporary file is removed in the background.
        let mut w = ufs.writer("d/b.bin").await.unwrap();
        w.write(Bytes::from_static(b"x")).await.unwrap();
        drop(w);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_dir(dir.path().join("d")).unwrap().count() > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "temporary file left behind"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn memory_store_is_shared_in_process() {
        let a = Ufs::open("memory://shared-test/x", &no_opts()).unwrap();
        let b = Ufs::open("memory://shared-test/x", &no_opts()).unwrap();
        let mut w = a.writer("f").await.unwrap();
        w.write(Bytes::from_static(b"1")).await.unwrap();
        w.close().await.unwrap();
        assert_eq!(b.read("f", 0, 1).await.unwrap(), "1");
        let names: Vec<String> = b
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, vec!["f"]);
    }

    #[tokio::test]
    async fn unreachable_s3_is_unavailable() {
        let mut o = no_opts();
        o.insert("endpoint".into(), "http://127.0.0.1:1".into());
        o.insert("access_key_id".into(), "a".into());
        o.insert("secret_access_key".into(), "b".into());
        let ufs = Ufs::open("s3://bucket/p", &o).unwrap();
        let e = ufs.stat("x").await.unwrap_err();
        assert_eq!(e.code, alluvium_common::ErrorCode::Unavailable, "{e}");
        assert!(
            e.message.starts_with("s3://bucket/p/x: UFS unavailable"),
            "{e}"
        );
    }

    #[test]
    fn names_must_fit_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let local = Ufs::open(dir.path().to_str().unwrap(), &no_opts()).unwrap();
        local.check_fits(&format!("a/{}", "n".repeat(255))).unwrap();
        let e = local
            .check_fits(&format!("a/{}/b", "n".repeat(256)))
            .unwrap_err();
        assert!(e.message.contains("a name of 256 bytes"), "{e}");
        let mut o = no_opts();
        o.insert("endpoint".into(), "http://127.0.0.1:1".into());
        o.insert("access_key_id".into(), "a".into());
        o.insert("secret_access_key".into(), "b".into());
        // Key = "p/" + rel: 1024 bytes at most.
        let s3 = Ufs::open("s3://bucket/p", &o).unwrap();
        s3.check_fits(&format!("{}/{}", "n".repeat(600), "m".repeat(421)))
            .unwrap();
        let e = s3
            .check_fits(&format!("{}/{}", "n".repeat(600), "m".repeat(422)))
            .unwrap_err();
        assert!(e.message.contains("a key of 1025 bytes"), "{e}");
    }
}
