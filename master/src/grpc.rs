//! The master's gRPC services: `FileSystemMaster` for clients, `BlockMaster` for workers.
//! Thin: each call reads the caller, delegates to the namespace / block master, and converts
//! errors with `?` (their stable code becomes the gRPC status code).

use std::pin::Pin;
use std::sync::Arc;

use alluvium_common::blocking::blocking;
use alluvium_common::identity::Caller;
use alluvium_common::{Error, Result};
use alluvium_proto::block_master_server::BlockMaster as BlockMasterRpc;
use alluvium_proto::file_system_master_server::FileSystemMaster as FileSystemMasterRpc;
use alluvium_proto::*;
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::permission::Checker;
use crate::server::Shared;

#[derive(Clone)]
pub struct FileSystemService {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Clone)]
pub struct BlockMasterService {
    pub(crate) shared: Arc<Shared>,
}

impl Shared {
    fn checker<T>(&self, req: &Request<T>) -> Result<Checker> {
        Ok(self.ns.checker(Caller::from_request(req)?))
    }

    /// Counts the call and turns the result into a tonic response.
    fn reply<T>(&self, method: &str, r: Result<T>) -> Result<Response<T>, Status> {
        match r {
            Ok(v) => {
                self.metrics.rpc(method, "OK");
                Ok(Response::new(v))
            }
            Err(e) => {
                self.metrics.rpc(method, e.code.as_str());
                tracing::debug!(method, code = %e.code, error = %e.message, "rpc failed");
                Err(e.into())
            }
        }
    }
}

type ListStream = Pin<Box<dyn Stream<Item = Result<ListStatusResponse, Status>> + Send>>;
type ConsistencyStream =
    Pin<Box<dyn Stream<Item = Result<CheckConsistencyResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FileSystemMasterRpc for FileSystemService {
    async fn get_status(
        &self,
        req: Request<GetStatusRequest>,
    ) -> Result<Response<FileInfo>, Status> {
        let s = &self.shared;
        let r = async {
            let c = s.checker(&req)?;
            let m = req.get_ref();
            s.ns.get_status(&c, &m.path, m.with_blocks).await
        }
        .await;
        s.reply("GetStatus", r)
    }

    type ListStatusStream = ListStream;

    async fn list_status(
        &self,
        req: Request<ListStatusRequest>,
    ) -> Result<Response<Self::ListStatusStream>, Status> {
        let s = &self.shared;
        let r = async {
            let c = s.checker(&req)?;
            let m = req.get_ref();
            let rx =
                s.ns.list_status(
                    &c,
                    &m.path,
                    m.recursive,
                    &m.start_after,
                    m.limit,
                    m.page_size,
                )
                .await?;
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| {
                    let out = item
                        .map(|items| ListStatusResponse { items })
                        .map_err(Status::from);
                    (out, rx)
                })
            });
            Ok(Box::pin(stream) as ListStream)
        }
        .await;
        s.reply("ListStatus", r)
    }

    async fn create_file(
        &self,
        req: Request<CreateFileRequest>,
    ) -> Result<Response<FileInfo>, Status> {
        let s = &self.shared;
        let r = async { s.ns.create_file(&s.checker(&req)?, req.get_ref()).await }.await;
        s.reply("CreateFile", r)
    }

    async fn complete_file(
        &self,
        req: Request<CompleteFileRequest>,
    ) -> Result<Response<FileInfo>, Status> {
        let s = &self.shared;
        let r = async { s.ns.complete_file(&s.checker(&req)?, req.get_ref()).await }.await;
        s.reply("CompleteFile", r)
    }

    async fn create_directory(
        &self,
        req: Request<CreateDirectoryRequest>,
    ) -> Result<Response<FileInfo>, Status> {
        let s = &self.shared;
        let r = async {
            s.ns.create_directory(&s.checker(&req)?, req.get_ref())
                .await
        }
        .await;
        s.reply("CreateDirectory", r)
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            let m = req.get_ref();
            s.ns.delete(&s.checker(&req)?, &m.path, m.recursive, m.alluvium_only)
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("Delete", r)
    }

    async fn rename(&self, req: Request<RenameRequest>) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            let m = req.get_ref();
            s.ns.rename(&s.checker(&req)?, &m.src, &m.dst)
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("Rename", r)
    }

    async fn set_attribute(
        &self,
        req: Request<SetAttributeRequest>,
    ) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            s.ns.set_attribute(&s.checker(&req)?, req.get_ref())
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("SetAttribute", r)
    }

    async fn free(&self, req: Request<FreeRequest>) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            let m = req.get_ref();
            s.ns.free(&s.checker(&req)?, &m.path, m.recursive, m.forced)
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("Free", r)
    }

    async fn schedule_async_persistence(
        &self,
        req: Request<ScheduleAsyncPersistenceRequest>,
    ) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            s.ns.schedule_async_persistence(&s.checker(&req)?, &req.get_ref().path)
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("ScheduleAsyncPersistence", r)
    }

    async fn mount(&self, req: Request<MountRequest>) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            s.ns.mount(&s.checker(&req)?, req.get_ref())
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("Mount", r)
    }

    async fn update_mount(&self, req: Request<MountRequest>) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            s.ns.update_mount(&s.checker(&req)?, req.get_ref())
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("UpdateMount", r)
    }

    async fn unmount(&self, req: Request<UnmountRequest>) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = async {
            s.ns.unmount(&s.checker(&req)?, &req.get_ref().path)
                .await
                .map(|_| Empty {})
        }
        .await;
        s.reply("Unmount", r)
    }

    async fn get_mount_table(
        &self,
        req: Request<Empty>,
    ) -> Result<Response<GetMountTableResponse>, Status> {
        let s = &self.shared;
        let r = s.checker(&req).map(|_| GetMountTableResponse {
            mounts: s.ns.mount_infos(),
        });
        s.reply("GetMountTable", r)
    }

    async fn get_master_info(&self, req: Request<Empty>) -> Result<Response<MasterInfo>, Status> {
        let s = &self.shared;
        let r = s.checker(&req).map(|_| s.master_info());
        s.reply("GetMasterInfo", r)
    }

    async fn load_metadata(
        &self,
        req: Request<LoadMetadataRequest>,
    ) -> Result<Response<LoadMetadataResponse>, Status> {
        let s = &self.shared;
        let r = async {
            let m = req.get_ref();
            s.ns.load_metadata(&s.checker(&req)?, &m.path, m.recursive)
                .await
        }
        .await;
        s.reply("LoadMetadata", r)
    }

    type CheckConsistencyStream = ConsistencyStream;

    async fn check_consistency(
        &self,
        req: Request<CheckConsistencyRequest>,
    ) -> Result<Response<Self::CheckConsistencyStream>, Status> {
        let s = &self.shared;
        let r = async {
            let m = req.get_ref();
            let rx =
                s.ns.check_consistency(&s.checker(&req)?, &m.path, m.recursive, m.repair)
                    .await?;
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item.map_err(Status::from), rx))
            });
            Ok(Box::pin(stream) as ConsistencyStream)
        }
        .await;
        s.reply("CheckConsistency", r)
    }

    async fn get_metrics(
        &self,
        req: Request<Empty>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let s = &self.shared;
        let r = s.checker(&req).map(|_| {
            s.refresh_gauges();
            GetMetricsResponse {
                prometheus_text: s.metrics.encode(),
            }
        });
        s.reply("GetMetrics", r)
    }
}

#[tonic::async_trait]
impl BlockMasterRpc for BlockMasterService {
    async fn register_worker(
        &self,
        req: Request<RegisterWorkerRequest>,
    ) -> Result<Response<RegisterWorkerResponse>, Status> {
        let s = &self.shared;
        // One metastore read per file the worker reports.
        let r = blocking(|| s.blocks.register(req.into_inner()));
        s.reply("RegisterWorker", r)
    }

    async fn worker_heartbeat(
        &self,
        req: Request<WorkerHeartbeatRequest>,
    ) -> Result<Response<WorkerHeartbeatResponse>, Status> {
        let s = &self.shared;
        let r = blocking(|| s.blocks.heartbeat(req.into_inner()));
        s.reply("WorkerHeartbeat", r)
    }

    async fn commit_block(
        &self,
        req: Request<CommitBlockRequest>,
    ) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let r = s.blocks.commit_block(req.get_ref()).map(|_| Empty {});
        s.reply("CommitBlock", r)
    }

    async fn get_workers(
        &self,
        _req: Request<Empty>,
    ) -> Result<Response<GetWorkersResponse>, Status> {
        let s = &self.shared;
        s.reply(
            "GetWorkers",
            Ok(GetWorkersResponse {
                workers: s.blocks.workers(),
            }),
        )
    }

    async fn get_ufs_mount(
        &self,
        req: Request<GetUfsMountRequest>,
    ) -> Result<Response<MountInfo>, Status> {
        let s = &self.shared;
        let r = (|| {
            let holds_secret = s.secret.holds_secret(req.metadata());
            let superuser = Caller::from_request(&req)
                .map(|c| s.ns.checker(c).superuser)
                .unwrap_or(false);
            if !holds_secret && !superuser {
                return Err(Error::permission_denied(format!(
                    "GetUfsMount {}: only the cluster (cluster secret) or a superuser may read mount credentials",
                    req.get_ref().mount_id
                )));
            }
            s.ns.ufs_mount(req.get_ref().mount_id)
        })();
        s.reply("GetUfsMount", r)
    }

    async fn persist_done(
        &self,
        req: Request<PersistDoneRequest>,
    ) -> Result<Response<Empty>, Status> {
        let s = &self.shared;
        let m = req.get_ref();
        let r = s
            .persist
            .done(m.worker_id, m.file_id, &m.error, m.written.as_ref())
            .await
            .map(|_| Empty {});
        s.reply("PersistDone", r)
    }
}
