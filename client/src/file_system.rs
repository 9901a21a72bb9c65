//! The client's file-system API: metadata calls on the master, streams for data.

use std::sync::Arc;
use std::time::Duration;

use alluvium_common::ids::block_count;
use alluvium_common::path::normalize;
use alluvium_common::{Config, Error, ErrorCode, Reason, Result};
use alluvium_proto as pb;
use alluvium_proto::{FileInfo, MasterInfo, MountInfo, PersistenceState, WorkerInfo};
use futures::StreamExt;

use crate::config::options::{
    duration_ms, CreateDirectoryOptions, CreateFileOptions, DeleteOptions, MountOptions,
    OpenFileOptions, SetAttributeOptions,
};
use crate::context::{no_live_worker, ufs_source, with_path, Context};
use crate::locality;
use crate::metrics::ClientMetrics;
use crate::out_stream::FileOutStream;
use crate::read::FileInStream;

/// What `load` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadSummary {
    pub files: u64,
    /// Blocks a worker read from the UFS into its cache.
    pub blocks_loaded: u64,
    /// Blocks that were already cached.
    pub blocks_cached: u64,
    pub bytes_loaded: u64,
}

/// A handle on the cluster; cheap to clone and shared by every stream it opens.
#[derive(Clone)]
pub struct FileSystem {
    pub(crate) ctx: Arc<Context>,
}

fn norm(path: &str) -> Result<String> {
    normalize(path)
}

impl FileSystem {
    /// Builds the clients. No connection is made yet: the first call connects (retrying for
    /// `client.retry_duration` while the master is unreachable).
    pub async fn connect(config: &Config) -> Result<Self> {
        let ctx = Context::new(config)?;
        tracing::debug!(master = %config.master_address, host = %ctx.hostname, "client ready");
        Ok(Self { ctx: Arc::new(ctx) })
    }

    /// Whether `other` is a clone of this client (the same connections, caches and metrics).
    pub fn is_same_client(&self, other: &FileSystem) -> bool {
        Arc::ptr_eq(&self.ctx, &other.ctx)
    }

    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    pub fn metrics(&self) -> &ClientMetrics {
        &self.ctx.metrics
    }

    /// The status of a path, with its blocks and their locations.
    pub async fn get_status(&self, path: &str) -> Result<FileInfo> {
        self.ctx.status(path, true).await
    }

    /// The status of a path without its block list: cheaper for the master when only the
    /// attributes are wanted (a `stat`).
    pub async fn get_attributes(&self, path: &str) -> Result<FileInfo> {
        self.ctx.status(path, false).await
    }

    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.get_status(path).await {
            Ok(_) => Ok(true),
            Err(e) if e.code == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The entries of a directory (all descendants when `recursive`), or the file itself.
    pub async fn list_status(&self, path: &str, recursive: bool) -> Result<Vec<FileInfo>> {
        let mut out = Vec::new();
        self.list_status_each(path, recursive, |f| out.push(f))
            .await?;
        Ok(out)
    }

    /// Streams a listing page by page into `each`, so a huge directory is never held at once by
    /// this call.
    pub async fn list_status_each(
        &self,
        path: &str,
        recursive: bool,
        each: impl FnMut(FileInfo),
    ) -> Result<()> {
        let req = pb::ListStatusRequest {
            path: norm(path)?,
            recursive,
            ..Default::default()
        };
        self.list(req, each).await
    }

    /// One page of a directory: at most `limit` entries, in name order, after `start_after`
    /// (empty: from the start). A page shorter than `limit` is the last.
    pub async fn list_page(
        &self,
        path: &str,
        start_after: &str,
        limit: u32,
    ) -> Result<Vec<FileInfo>> {
        let req = pb::ListStatusRequest {
            path: norm(path)?,
            recursive: false,
            start_after: start_after.to_string(),
            limit: u64::from(limit),
            page_size: limit,
        };
        let mut out = Vec::new();
        self.list(req, |item| out.push(item)).await?;
        Ok(out)
    }

    /// Runs a ListStatus (retried while the master is unavailable) and hands over its entries.
    async fn list(&self, req: pb::ListStatusRequest, mut each: impl FnMut(FileInfo)) -> Result<()> {
        let timeout = self.ctx.config.client.rpc_timeout;
        let mut stream =
            crate::master_client::retry_unavailable(self.ctx.config.client.retry_duration, || {
                let mut c = self.ctx.master.fs_client();
                let req = req.clone();
                async move {
                    match tokio::time::timeout(timeout, c.list_status(req.clone())).await {
                        Ok(r) => r.map(|r| r.into_inner()).map_err(Error::from),
                        Err(_) => Err(Error::new(
                            ErrorCode::DeadlineExceeded,
                            format!("ListStatus {}: the master did not answer in time", req.path),
                        )),
                    }
                }
            })
            .await?;
        while let Some(page) = stream.next().await {
            for item in page.map_err(Error::from)?.items {
                each(item);
            }
        }
        Ok(())
    }

    pub async fn create_directory(&self, path: &str, opts: CreateDirectoryOptions) -> Result<()> {
        let path = norm(path)?;
        self.ctx
            .master
            .fs("CreateDirectory", |mut c| {
                let req = pb::CreateDirectoryRequest {
                    path: path.clone(),
                    recursive: opts.recursive,
                    mode: Some(opts.mode),
                    allow_exists: opts.allow_exists,
                    write_type: 0,
                };
                async move { c.create_directory(req).await }
            })
            .await?;
        Ok(())
    }

    /// Creates a file and returns the stream that writes it. The file becomes visible as complete
    /// only when the stream is closed.
    pub async fn create_file(&self, path: &str, opts: CreateFileOptions) -> Result<FileOutStream> {
        let path = norm(path)?;
        let write_type = match opts.write_type {
            pb::WriteType::Unspecified => {
                alluvium_common::config::parse_write_type(&self.ctx.config.client.write_type)?
            }
            w => w,
        };
        let info = self
            .ctx
            .master
            .fs("CreateFile", |mut c| {
                let req = pb::CreateFileRequest {
                    path: path.clone(),
                    block_size: if opts.block_size == 0 {
                        self.ctx.config.client.block_size.0
                    } else {
                        opts.block_size
                    },
                    mode: Some(opts.mode),
                    write_type: write_type as i32,
                    recursive: opts.recursive,
                    overwrite: opts.overwrite,
                    ttl_ms: opts.ttl.map(duration_ms),
                    ttl_action: opts.ttl_action as i32,
                    pinned: opts.pinned,
                };
                async move { c.create_file(req).await }
            })
            .await?;
        FileOutStream::start(self.ctx.clone(), info, write_type, opts).await
    }

    /// Opens a complete file for reading.
    pub async fn open_file(&self, path: &str, opts: OpenFileOptions) -> Result<FileInStream> {
        let info = self.get_status(path).await?;
        if info.is_folder {
            return Err(
                Error::invalid_argument(format!("{}: is a directory", info.path))
                    .with_reason(Reason::IsADirectory),
            );
        }
        if !info.completed {
            return Err(Error::failed_precondition(format!(
                "{}: file is still being written (not complete)",
                info.path
            ))
            .with_reason(Reason::Busy));
        }
        let read_type = match opts.read_type {
            pb::ReadType::Unspecified => {
                alluvium_common::config::parse_read_type(&self.ctx.config.client.read_type)?
            }
            r => r,
        };
        Ok(FileInStream::new(self.ctx.clone(), info, read_type))
    }

    pub async fn delete(&self, path: &str, opts: DeleteOptions) -> Result<()> {
        self.ctx
            .delete(path, opts.recursive, opts.alluvium_only)
            .await
    }

    pub async fn rename(&self, src: &str, dst: &str) -> Result<()> {
        let (src, dst) = (norm(src)?, norm(dst)?);
        self.ctx
            .master
            .fs("Rename", |mut c| {
                let req = pb::RenameRequest {
                    src: src.clone(),
                    dst: dst.clone(),
                };
                async move { c.rename(req).await }
            })
            .await?;
        Ok(())
    }

    pub async fn set_attribute(&self, path: &str, opts: SetAttributeOptions) -> Result<()> {
        let path = norm(path)?;
        self.ctx
            .master
            .fs("SetAttribute", |mut c| {
                let req = pb::SetAttributeRequest {
                    path: path.clone(),
                    mode: opts.mode,
                    owner: opts.owner.clone(),
                    group: opts.group.clone(),
                    pinned: opts.pinned,
                    ttl_ms: opts.ttl.map(duration_ms),
                    ttl_action: opts.ttl_action.unwrap_or(pb::TtlAction::Delete) as i32,
                    unset_ttl: opts.unset_ttl,
                    recursive: opts.recursive,
                    pinned_media: Vec::new(),
                    mtime_ms: opts.mtime_ms,
                    atime_ms: opts.atime_ms,
                };
                async move { c.set_attribute(req).await }
            })
            .await?;
        Ok(())
    }

    pub async fn free(&self, path: &str, recursive: bool, forced: bool) -> Result<()> {
        let path = norm(path)?;
        self.ctx
            .master
            .fs("Free", |mut c| {
                let req = pb::FreeRequest {
                    path: path.clone(),
                    recursive,
                    forced,
                };
                async move { c.free(req).await }
            })
            .await?;
        Ok(())
    }

    /// Schedules persistence of a file (every not-yet-persisted file under a directory) and waits
    /// until the master reports it PERSISTED.
    pub async fn persist(&self, path: &str) -> Result<()> {
        self.persist_with_progress(path, |_| {}).await
    }

    /// As [`FileSystem::persist`], calling `done` with each file once it is persisted.
    pub async fn persist_with_progress(
        &self,
        path: &str,
        mut done: impl FnMut(&FileInfo),
    ) -> Result<()> {
        let info = self.get_status(path).await?;
        let files: Vec<FileInfo> = if info.is_folder {
            self.list_status(&info.path, true)
                .await?
                .into_iter()
                .filter(|f| !f.is_folder && !f.persisted)
                .collect()
        } else if info.persisted {
            Vec::new()
        } else {
            vec![info]
        };
        for f in &files {
            if !f.completed {
                return Err(Error::failed_precondition(format!(
                    "{}: file is still being written; persist it once it is complete",
                    f.path
                ))
                .with_reason(Reason::Busy));
            }
            let p = f.path.clone();
            self.ctx
                .master
                .fs("ScheduleAsyncPersistence", |mut c| {
                    let req = pb::ScheduleAsyncPersistenceRequest { path: p.clone() };
                    async move { c.schedule_async_persistence(req).await }
                })
                .await?;
        }
        for f in &files {
            let mut wait = Duration::from_millis(20);
            loop {
                let s = self.get_status(&f.path).await?;
                if s.persisted || s.persistence_state == PersistenceState::Persisted as i32 {
                    done(&s);
                    break;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
        Ok(())
    }

    /// Caches every block of a file (every file under a directory) that no worker holds, by asking
    /// a worker to read it from the UFS (`CacheBlock`).
    pub async fn load(&self, path: &str, recursive: bool) -> Result<LoadSummary> {
        self.load_with_progress(path, recursive, |_| {}).await
    }

    /// As [`FileSystem::load`], calling `progress` with the bytes of each block handled.
    pub async fn load_with_progress(
        &self,
        path: &str,
        recursive: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<LoadSummary> {
        let info = self.get_status(path).await?;
        let paths: Vec<String> = if info.is_folder {
            self.list_status(&info.path, recursive)
                .await?
                .into_iter()
                .filter(|f| !f.is_folder)
                .map(|f| f.path)
                .collect()
        } else {
            vec![info.path.clone()]
        };
        let mut summary = LoadSummary::default();
        let mut workers: Option<Vec<WorkerInfo>> = None;
        for p in paths {
            let f = self.get_status(&p).await?;
            summary.files += 1;
            for b in &f.blocks {
                if !b.locations.is_empty() {
                    summary.blocks_cached += 1;
                    progress(b.length);
                    continue;
                }
                if !f.persisted {
                    return Err(Error::unavailable(format!(
                        "{}: block {} is lost (no worker holds it and the file is not persisted)",
                        f.path, b.block_id
                    )));
                }
                if workers.is_none() {
                    workers = Some(self.ctx.live_workers_cached().await?);
                }
                let ws = workers.as_deref().unwrap_or_default();
                let w = locality::choose_write_worker(ws, &self.ctx.hostname, &[])
                    .ok_or_else(|| no_live_worker(&f.path))?;
                let mut client = self.ctx.workers.get(w.address.as_ref())?;
                let req = pb::CacheBlockRequest {
                    block_id: b.block_id,
                    ufs: Some(ufs_source(&f, b)),
                    pinned: f.pinned,
                };
                let resp = client
                    .cache_block(req)
                    .await
                    .map_err(|s| with_path(Error::from(s), &f.path))?
                    .into_inner();
                if resp.loaded {
                    summary.blocks_loaded += 1;
                    summary.bytes_loaded += b.length;
                } else {
                    summary.blocks_cached += 1;
                }
                progress(b.length);
            }
        }
        Ok(summary)
    }

    pub async fn mount(&self, path: &str, ufs_uri: &str, opts: MountOptions) -> Result<()> {
        let path = norm(path)?;
        self.ctx
            .master
            .fs("Mount", |mut c| {
                let req = pb::MountRequest {
                    path: path.clone(),
                    ufs_uri: ufs_uri.to_string(),
                    read_only: opts.read_only,
                    options: opts.options.clone().into_iter().collect(),
                    shared: opts.shared,
                };
                async move { c.mount(req).await }
            })
            .await?;
        Ok(())
    }

    pub async fn unmount(&self, path: &str) -> Result<()> {
        let path = norm(path)?;
        self.ctx
            .master
            .fs("Unmount", |mut c| {
                let req = pb::UnmountRequest { path: path.clone() };
                async move { c.unmount(req).await }
            })
            .await?;
        Ok(())
    }

    pub async fn mount_table(&self) -> Result<Vec<MountInfo>> {
        let r = self
            .ctx
            .master
            .fs("GetMountTable", |mut c| async move {
                c.get_mount_table(pb::Empty {}).await
            })
            .await?;
        Ok(r.mounts)
    }

    pub async fn master_info(&self) -> Result<MasterInfo> {
        self.ctx
            .master
            .fs("GetMasterInfo", |mut c| async move {
                c.get_master_info(pb::Empty {}).await
            })
            .await
    }

    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.ctx.workers().await
    }

    /// Re-reads UFS metadata under a path now.
    pub async fn load_metadata(
        &self,
        path: &str,
        recursive: bool,
    ) -> Result<pb::LoadMetadataResponse> {
        let path = norm(path)?;
        self.ctx
            .master
            .fs("LoadMetadata", |mut c| {
                let req = pb::LoadMetadataRequest {
                    path: path.clone(),
                    recursive,
                };
                async move { c.load_metadata(req).await }
            })
            .await
    }

    /// The master's metrics in the Prometheus text format.
    pub async fn master_metrics_text(&self) -> Result<String> {
        let resp = self
            .ctx
            .master
            .fs("GetMetrics", |mut c| async move {
                c.get_metrics(pb::Empty {}).await
            })
            .await?;
        Ok(resp.prometheus_text)
    }

    /// Starts a consistency check of `path` against its UFS (its children, or its whole tree
    /// when `recursive`; `repair` fixes what it finds); the findings arrive in pages.
    pub async fn check_consistency(
        &self,
        path: &str,
        recursive: bool,
        repair: bool,
    ) -> Result<tonic::Streaming<pb::CheckConsistencyResponse>> {
        let req = pb::CheckConsistencyRequest {
            path: norm(path)?,
            recursive,
            repair,
        };
        self.ctx
            .master
            .fs("CheckConsistency", |mut c| {
                let req = req.clone();
                async move { c.check_consistency(req).await }
            })
            .await
    }
}

impl FileSystem {
    /// Asks worker `w` to read block `b` of file `f` from the UFS into its cache (a load).
    /// True when it was read, false when the worker had it cached already.
    pub async fn cache_block_on(
        &self,
        w: &pb::WorkerInfo,
        f: &FileInfo,
        b: &pb::BlockInfo,
    ) -> Result<bool> {
        let mut client = self.ctx.workers.get(w.address.as_ref())?;
        let req = pb::CacheBlockRequest {
            block_id: b.block_id,
            ufs: Some(ufs_source(f, b)),
            pinned: f.pinned,
        };
        let resp = client.cache_block(req).await.map_err(Error::from)?;
        Ok(resp.into_inner().loaded)
    }
}

/// Number of blocks a file of this status has (from its length, not the block list).
pub fn blocks_of(info: &FileInfo) -> u64 {
    block_count(info.length, info.block_size)
}
