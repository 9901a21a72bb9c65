//! The client's data paths against a small in-memory cluster that speaks the proto contract
//! (a real tonic master and worker on 127.0.0.1:0). It checks what the client sends and reads:
//! block splitting, short-circuit files, write types, read fallbacks. The real master and worker
//! are exercised together with this client by the end-to-end tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_client::{
    CreateFileOptions, DeleteOptions, FileSystem, OpenFileOptions, ReadType, WriteType,
};
use alluvium_common::ids::{block_count, block_id, block_length};
use alluvium_common::{Config, ErrorCode};
use alluvium_proto as pb;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use parking_lot::Mutex;
use tonic::{Request, Response, Status, Streaming};

const BLOCK: u64 = 10_000;

#[derive(Default)]
struct State {
    files: BTreeMap<String, pb::FileInfo>,
    next_id: u64,
    blocks: HashMap<u64, Bytes>,
    ufs: HashMap<String, Bytes>,
    tmp: HashMap<(u64, u64), PathBuf>,
    opens: u32,
    closes: u32,
    persist_calls: u32,
}

#[derive(Clone)]
struct Cluster {
    state: Arc<Mutex<State>>,
    dir: Arc<tempfile::TempDir>,
    worker: SocketAddr,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl Cluster {
    fn status(&self, path: &str) -> Option<pb::FileInfo> {
        let st = self.state.lock();
        let mut f = st.files.get(path)?.clone();
        f.blocks = (0..block_count(f.length, f.block_size))
            .map(|i| {
                let id = block_id(f.file_id, i);
                pb::BlockInfo {
                    block_id: id,
                    length: block_length(f.length, f.block_size, i),
                    offset: i * f.block_size,
                    locations: if st.blocks.contains_key(&id) {
                        vec![pb::BlockLocation {
                            worker_id: 1,
                            address: Some(self.worker_address()),
                            tier: "MEM".into(),
                        }]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();
        Some(f)
    }

    fn worker_address(&self) -> pb::WorkerNetAddress {
        pb::WorkerNetAddress {
            host: self.worker.ip().to_string(),
            rpc_port: u32::from(self.worker.port()),
            http_port: 0,
        }
    }
}

#[tonic::async_trait]
impl pb::file_system_master_server::FileSystemMaster for Cluster {
    async fn get_status(
        &self,
        r: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::FileInfo>, Status> {
        let p = r.into_inner().path;
        self.status(&p)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("{p}: no such file or directory")))
    }
    type ListStatusStream = BoxStream<pb::ListStatusResponse>;
    async fn list_status(
        &self,
        r: Request<pb::ListStatusRequest>,
    ) -> Result<Response<Self::ListStatusStream>, Status> {
        let p = r.into_inner().path;
        let prefix = if p == "/" {
            "/".to_string()
        } else {
            format!("{p}/")
        };
        let names: Vec<String> = self
            .state
            .lock()
            .files
            .keys()
            .filter(|k| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .cloned()
            .collect();
        let items = names.iter().filter_map(|n| self.status(n)).collect();
        let page = pb::ListStatusResponse { items };
        Ok(Response::new(Box::pin(futures::stream::iter(vec![Ok(
            page,
        )]))))
    }
    async fn create_file(
        &self,
        r: Request<pb::CreateFileRequest>,
    ) -> Result<Response<pb::FileInfo>, Status> {
        let r = r.into_inner();
        let mut st = self.state.lock();
        if st.files.contains_key(&r.path) && !r.overwrite {
            return Err(Status::already_exists(format!(
                "{}: already exists",
                r.path
            )));
        }
        st.next_id += 1;
        let info = pb::FileInfo {
            file_id: st.next_id,
            name: alluvium_common::path::name(&r.path).into(),
            path: r.path.clone(),
            block_size: if r.block_size == 0 {
                BLOCK
            } else {
                r.block_size
            },
            mode: r.mode.unwrap_or(0o644),
            ufs: Some(pb::UfsLocation {
                mount_id: 1,
                ufs_path: r.path.trim_start_matches('/').into(),
            }),
            ..Default::default()
        };
        st.files.insert(r.path, info.clone());
        Ok(Response::new(info))
    }
    async fn complete_file(
        &self,
        r: Request<pb::CompleteFileRequest>,
    ) -> Result<Response<pb::FileInfo>, Status> {
        let r = r.into_inner();
        {
            let mut st = self.state.lock();
            let f = st
                .files
                .get_mut(&r.path)
                .filter(|f| f.file_id == r.file_id)
                .ok_or_else(|| Status::not_found("no such file"))?;
            f.length = r.length;
            f.completed = true;
            f.persisted = r.persisted;
            f.block_ids = (0..block_count(r.length, f.block_size))
                .map(|i| block_id(f.file_id, i))
                .collect();
            f.persistence_state = if r.persisted {
                pb::PersistenceState::Persisted as i32
            } else if r.async_persist {
                pb::PersistenceState::ToBePersisted as i32
            } else {
                pb::PersistenceState::NotPersisted as i32
            };
        }
        Ok(Response::new(self.status(&r.path).unwrap_or_default()))
    }
    async fn create_directory(
        &self,
        _: Request<pb::CreateDirectoryRequest>,
    ) -> Result<Response<pb::FileInfo>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn delete(&self, r: Request<pb::DeleteRequest>) -> Result<Response<pb::Empty>, Status> {
        let p = r.into_inner().path;
        self.state
            .lock()
            .files
            .remove(&p)
            .ok_or_else(|| Status::not_found(format!("{p}: no such file")))?;
        Ok(Response::new(pb::Empty {}))
    }
    async fn rename(&self, _: Request<pb::RenameRequest>) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn set_attribute(
        &self,
        _: Request<pb::SetAttributeRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn free(&self, r: Request<pb::FreeRequest>) -> Result<Response<pb::Empty>, Status> {
        let f = self
            .status(&r.into_inner().path)
            .ok_or_else(|| Status::not_found("no such file"))?;
        let mut st = self.state.lock();
        for b in f.blocks {
            st.blocks.remove(&b.block_id);
        }
        Ok(Response::new(pb::Empty {}))
    }
    async fn schedule_async_persistence(
        &self,
        _: Request<pb::ScheduleAsyncPersistenceRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn mount(&self, _: Request<pb::MountRequest>) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn unmount(&self, _: Request<pb::UnmountRequest>) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn update_mount(
        &self,
        _: Request<pb::MountRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn get_mount_table(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::GetMountTableResponse>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn get_master_info(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::MasterInfo>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn load_metadata(
        &self,
        _: Request<pb::LoadMetadataRequest>,
    ) -> Result<Response<pb::LoadMetadataResponse>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    type CheckConsistencyStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::CheckConsistencyResponse, Status>> + Send>,
    >;
    async fn check_consistency(
        &self,
        _: Request<pb::CheckConsistencyRequest>,
    ) -> Result<Response<Self::CheckConsistencyStream>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn get_metrics(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        Err(Status::unimplemented("fixture"))
    }
}

#[tonic::async_trait]
impl pb::block_master_server::BlockMaster for Cluster {
    async fn register_worker(
        &self,
        _: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerResponse>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn worker_heartbeat(
        &self,
        _: Request<pb::WorkerHeartbeatRequest>,
    ) -> Result<Response<pb::WorkerHeartbeatResponse>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn commit_block(
        &self,
        _: Request<pb::CommitBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn get_workers(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::GetWorkersResponse>, Status> {
        Ok(Response::new(pb::GetWorkersResponse {
            workers: vec![pb::WorkerInfo {
                id: 1,
                address: Some(self.worker_address()),
                state: "LIVE".into(),
                capacity_bytes: 1 << 30,
                ..Default::default()
            }],
        }))
    }
    async fn get_ufs_mount(
        &self,
        _: Request<pb::GetUfsMountRequest>,
    ) -> Result<Response<pb::MountInfo>, Status> {
        Err(Status::unimplemented("fixture"))
    }
    async fn persist_done(
        &self,
        _: Request<pb::PersistDoneRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::unimplemented("fixture"))
    }
}

fn ufs_bytes(st: &State, src: &pb::UfsBlockSource) -> Option<Bytes> {
    let data = st.ufs.get(&src.ufs.as_ref()?.ufs_path)?;
    let start = src.offset_in_file as usize;
    let end = (start + src.block_length as usize).min(data.len());
    Some(data.slice(start.min(end)..end))
}

#[tonic::async_trait]
impl pb::block_worker_server::BlockWorker for Cluster {
    type ReadBlockStream = BoxStream<pb::ReadBlockResponse>;
    async fn read_block(
        &self,
        r: Request<pb::ReadBlockRequest>,
    ) -> Result<Response<Self::ReadBlockStream>, Status> {
        let r = r.into_inner();
        let data = {
            let mut st = self.state.lock();
            match st.blocks.get(&r.block_id).cloned() {
                Some(d) => d,
                None => {
                    let src = r
                        .ufs
                        .as_ref()
                        .ok_or_else(|| Status::not_found("no block"))?;
                    let d = ufs_bytes(&st, src).ok_or_else(|| Status::not_found("no ufs file"))?;
                    if r.read_type != ReadType::NoCache as i32 {
                        st.blocks.insert(r.block_id, d.clone());
                    }
                    d
                }
            }
        };
        let start = (r.offset as usize).min(data.len());
        let end = if r.length == 0 {
            data.len()
        } else {
            (start + r.length as usize).min(data.len())
        };
        let chunk = if r.chunk_size == 0 {
            1 << 20
        } else {
            r.chunk_size as usize
        };
        let msgs: Vec<Result<pb::ReadBlockResponse, Status>> = (start..end)
            .step_by(chunk)
            .map(|s| {
                Ok(pb::ReadBlockResponse {
                    data: data.slice(s..(s + chunk).min(end)),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(msgs))))
    }
    async fn write_block(
        &self,
        r: Request<Streaming<pb::WriteBlockRequest>>,
    ) -> Result<Response<pb::WriteBlockResponse>, Status> {
        let mut s = r.into_inner();
        let mut id = None;
        let mut data = Vec::new();
        while let Some(m) = s.next().await {
            match m?.value {
                Some(pb::write_block_request::Value::Header(h)) => id = Some(h.block_id),
                Some(pb::write_block_request::Value::Chunk(c)) => data.extend_from_slice(&c),
                None => {}
            }
        }
        let id = id.ok_or_else(|| Status::invalid_argument("no header"))?;
        let length = data.len() as u64;
        self.state.lock().blocks.insert(id, data.into());
        Ok(Response::new(pb::WriteBlockResponse {
            length,
            tier: "MEM".into(),
        }))
    }
    async fn write_ufs_file(
        &self,
        r: Request<Streaming<pb::WriteUfsFileRequest>>,
    ) -> Result<Response<pb::WriteUfsFileResponse>, Status> {
        let mut s = r.into_inner();
        let mut path = None;
        let mut data = Vec::new();
        while let Some(m) = s.next().await {
            match m?.value {
                Some(pb::write_ufs_file_request::Value::Header(h)) => {
                    path = h.ufs.map(|u| u.ufs_path)
                }
                Some(pb::write_ufs_file_request::Value::Chunk(c)) => data.extend_from_slice(&c),
                None => {}
            }
        }
        let path = path.ok_or_else(|| Status::invalid_argument("no header"))?;
        let length = data.len() as u64;
        self.state.lock().ufs.insert(path, data.into());
        Ok(Response::new(pb::WriteUfsFileResponse { length }))
    }
    async fn persist_file(
        &self,
        r: Request<pb::PersistFileRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        let mut st = self.state.lock();
        let mut data = Vec::new();
        for b in &r.blocks {
            let d = st
                .blocks
                .get(&b.block_id)
                .ok_or_else(|| Status::not_found("block to persist missing"))?;
            data.extend_from_slice(d);
        }
        if data.len() as u64 != r.length {
            return Err(Status::internal("length mismatch"));
        }
        let path = r.ufs.map(|u| u.ufs_path).unwrap_or_default();
        st.ufs.insert(path, data.into());
        st.persist_calls += 1;
        Ok(Response::new(pb::Empty {}))
    }
    async fn cache_block(
        &self,
        r: Request<pb::CacheBlockRequest>,
    ) -> Result<Response<pb::CacheBlockResponse>, Status> {
        let r = r.into_inner();
        let mut st = self.state.lock();
        if st.blocks.contains_key(&r.block_id) {
            return Ok(Response::new(pb::CacheBlockResponse {
                loaded: false,
                tier: "MEM".into(),
            }));
        }
        let src = r
            .ufs
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no ufs"))?;
        let d = ufs_bytes(&st, src).ok_or_else(|| Status::not_found("no ufs file"))?;
        st.blocks.insert(r.block_id, d);
        Ok(Response::new(pb::CacheBlockResponse {
            loaded: true,
            tier: "MEM".into(),
        }))
    }
    async fn open_local_block(
        &self,
        r: Request<pb::OpenLocalBlockRequest>,
    ) -> Result<Response<pb::OpenLocalBlockResponse>, Status> {
        let r = r.into_inner();
        let mut st = self.state.lock();
        let data = st
            .blocks
            .get(&r.block_id)
            .cloned()
            .ok_or_else(|| Status::not_found("no block"))?;
        let path = self.dir.path().join(format!("block-{}", r.block_id));
        std::fs::write(&path, &data).map_err(|e| Status::internal(e.to_string()))?;
        st.opens += 1;
        Ok(Response::new(pb::OpenLocalBlockResponse {
            path: path.to_string_lossy().into(),
            length: data.len() as u64,
            tier: "MEM".into(),
            lease_ms: 1000,
        }))
    }
    async fn close_local_block(
        &self,
        _: Request<pb::CloseLocalBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.state.lock().closes += 1;
        Ok(Response::new(pb::Empty {}))
    }
    async fn create_local_block(
        &self,
        r: Request<pb::CreateLocalBlockRequest>,
    ) -> Result<Response<pb::CreateLocalBlockResponse>, Status> {
        let r = r.into_inner();
        let path = self
            .dir
            .path()
            .join(format!("tmp-{}-{}", r.session_id, r.block_id));
        self.state
            .lock()
            .tmp
            .insert((r.session_id, r.block_id), path.clone());
        Ok(Response::new(pb::CreateLocalBlockResponse {
            path: path.to_string_lossy().into(),
            tier: "MEM".into(),
            // As a worker that reserves the whole block up front.
            reserved_bytes: 0,
        }))
    }
    async fn grow_local_block(
        &self,
        _: Request<pb::GrowLocalBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        Err(Status::failed_precondition(
            "nothing to grow: this worker reserves whole blocks",
        ))
    }
    async fn commit_local_block(
        &self,
        r: Request<pb::CommitLocalBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        let mut st = self.state.lock();
        let path = st
            .tmp
            .remove(&(r.session_id, r.block_id))
            .ok_or_else(|| Status::not_found("no tmp block"))?;
        let data = std::fs::read(&path).map_err(|e| Status::internal(e.to_string()))?;
        let _ = std::fs::remove_file(&path);
        if data.len() as u64 != r.length {
            return Err(Status::invalid_argument("length mismatch"));
        }
        st.blocks.insert(r.block_id, data.into());
        Ok(Response::new(pb::Empty {}))
    }
    async fn abort_local_block(
        &self,
        r: Request<pb::AbortLocalBlockRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        if let Some(p) = self.state.lock().tmp.remove(&(r.session_id, r.block_id)) {
            let _ = std::fs::remove_file(p);
        }
        Ok(Response::new(pb::Empty {}))
    }
    async fn get_worker_status(
        &self,
        _: Request<pb::Empty>,
    ) -> Result<Response<pb::WorkerStatus>, Status> {
        Err(Status::unimplemented("fixture"))
    }
}

/// Starts the fixture; `local` makes the client see the worker as on its host.
async fn start(local: bool) -> (Cluster, Config) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cluster = Cluster {
        state: Arc::default(),
        dir: Arc::new(tempfile::tempdir().unwrap()),
        worker: addr,
    };
    let svc = cluster.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(pb::file_system_master_server::FileSystemMasterServer::new(
                svc.clone(),
            ))
            .add_service(pb::block_master_server::BlockMasterServer::new(svc.clone()))
            .add_service(pb::block_worker_server::BlockWorkerServer::new(svc))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let mut config = Config {
        master_address: addr.to_string(),
        ..Default::default()
    };
    config.client.user = "tester".into();
    config.client.chunk_size = alluvium_common::ByteSize(4096);
    config.client.hostname = if local {
        "127.0.0.1".into()
    } else {
        "elsewhere".into()
    };
    (cluster, config)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn opts(write_type: WriteType) -> CreateFileOptions {
    CreateFileOptions {
        write_type,
        ..Default::default()
    }
}

async fn read_all(fs: &FileSystem, path: &str, buf_size: usize) -> Vec<u8> {
    let mut input = fs
        .open_file(path, OpenFileOptions::default())
        .await
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_size];
    loop {
        let n = input.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    input.close().await.unwrap();
    out
}

#[tokio::test]
async fn remote_write_and_read_across_blocks() {
    let (cluster, config) = start(false).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let data = pattern(25_000);
    let mut out = fs
        .create_file("/a", opts(WriteType::MustCache))
        .await
        .unwrap();
    out.write(&data[..3]).await.unwrap();
    out.write_bytes(Bytes::copy_from_slice(&data[3..20_000]))
        .await
        .unwrap();
    out.write(&data[20_000..]).await.unwrap();
    let info = out.close().await.unwrap();
    assert_eq!(info.length, 25_000);
    assert!(info.completed && !info.persisted);
    assert_eq!(cluster.state.lock().blocks.len(), 3);

    assert_eq!(read_all(&fs, "/a", 777).await, data);
    let m = fs.metrics().snapshot();
    assert_eq!(m.bytes_read_remote, 25_000);
    assert_eq!(m.bytes_read_short_circuit, 0);
    assert_eq!(m.bytes_written_remote, 25_000);

    let mut input = fs
        .open_file("/a", OpenFileOptions::default())
        .await
        .unwrap();
    let mut buf = [0u8; 40];
    // Across the first block boundary, without moving the position.
    assert_eq!(input.read_at(9_980, &mut buf).await.unwrap(), 40);
    assert_eq!(&buf[..], &data[9_980..10_020]);
    assert_eq!(input.position(), 0);
    input.seek(24_990).await.unwrap();
    let n = input.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], &data[24_990..]);
    assert_eq!(input.read(&mut buf).await.unwrap(), 0);
    assert_eq!(input.read_at(24_995, &mut buf).await.unwrap(), 5);
    assert!(input.seek(25_001).await.is_err());
}

#[tokio::test]
async fn short_circuit_write_and_read() {
    let (cluster, config) = start(true).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let data = pattern(21_000);
    let mut out = fs
        .create_file("/sc", opts(WriteType::MustCache))
        .await
        .unwrap();
    out.write(&data).await.unwrap();
    out.close().await.unwrap();
    let m = fs.metrics().snapshot();
    assert_eq!(m.bytes_written_short_circuit, 21_000);
    assert_eq!(m.bytes_written_remote, 0);
    assert!(cluster.state.lock().tmp.is_empty());

    assert_eq!(read_all(&fs, "/sc", 3000).await, data);
    let m = fs.metrics().snapshot();
    assert_eq!(m.bytes_read_short_circuit, 21_000);
    assert_eq!(m.bytes_read_remote, 0);
    let st = cluster.state.lock();
    assert_eq!(st.opens, 3);
    assert_eq!(st.closes, 3, "every locked block is released");
}

#[tokio::test]
async fn short_circuit_lease_is_renewed() {
    let (cluster, config) = start(true).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let mut out = fs
        .create_file("/l", opts(WriteType::MustCache))
        .await
        .unwrap();
    out.write(&pattern(100)).await.unwrap();
    out.close().await.unwrap();
    let mut input = fs
        .open_file("/l", OpenFileOptions::default())
        .await
        .unwrap();
    let mut buf = [0u8; 10];
    input.read(&mut buf).await.unwrap();
    assert_eq!(cluster.state.lock().opens, 1);
    // The fixture's lease is 1s: past half of it, the next read renews.
    tokio::time::sleep(Duration::from_millis(550)).await;
    input.read(&mut buf).await.unwrap();
    assert_eq!(cluster.state.lock().opens, 2);
    input.close().await.unwrap();
}

#[tokio::test]
async fn cache_through_persists_before_close_returns() {
    let (cluster, config) = start(false).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let data = pattern(12_345);
    let mut out = fs
        .create_file("/ct", opts(WriteType::CacheThrough))
        .await
        .unwrap();
    out.write(&data).await.unwrap();
    let info = out.close().await.unwrap();
    assert!(info.persisted);
    let st = cluster.state.lock();
    assert_eq!(st.persist_calls, 1);
    assert_eq!(st.ufs["ct"].as_ref(), &data[..]);
}

#[tokio::test]
async fn through_writes_only_the_ufs_and_reads_back_through_a_worker() {
    let (cluster, config) = start(false).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let data = pattern(15_000);
    let mut out = fs
        .create_file("/t", opts(WriteType::Through))
        .await
        .unwrap();
    out.write(&data).await.unwrap();
    let info = out.close().await.unwrap();
    assert!(info.persisted);
    assert!(cluster.state.lock().blocks.is_empty());
    assert_eq!(cluster.state.lock().ufs["t"].as_ref(), &data[..]);
    assert_eq!(read_all(&fs, "/t", 5000).await, data);
    assert_eq!(fs.metrics().snapshot().bytes_read_ufs, 15_000);
    // The read cached the blocks: the next read is served from the cache.
    assert_eq!(cluster.state.lock().blocks.len(), 2);
    assert_eq!(read_all(&fs, "/t", 5000).await, data);
    assert_eq!(fs.metrics().snapshot().bytes_read_remote, 15_000);
}

#[tokio::test]
async fn lost_blocks_are_unavailable_and_load_caches() {
    let (cluster, config) = start(false).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let mut out = fs
        .create_file("/lost", opts(WriteType::MustCache))
        .await
        .unwrap();
    out.write(&pattern(100)).await.unwrap();
    out.close().await.unwrap();
    cluster.state.lock().blocks.clear();
    let mut input = fs
        .open_file("/lost", OpenFileOptions::default())
        .await
        .unwrap();
    let err = input.read(&mut [0u8; 10]).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(
        err.message.contains("/lost") && err.message.contains("lost"),
        "{err}"
    );

    let mut out = fs
        .create_file("/p", opts(WriteType::Through))
        .await
        .unwrap();
    out.write(&pattern(25_000)).await.unwrap();
    out.close().await.unwrap();
    let s = fs.load("/p", false).await.unwrap();
    assert_eq!((s.files, s.blocks_loaded, s.bytes_loaded), (1, 3, 25_000));
    let s = fs.load("/p", false).await.unwrap();
    assert_eq!((s.blocks_loaded, s.blocks_cached), (0, 3));
}

#[tokio::test]
async fn cancelled_and_dropped_streams_leave_no_file() {
    let (cluster, config) = start(false).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    let mut out = fs
        .create_file("/c", opts(WriteType::MustCache))
        .await
        .unwrap();
    out.write(&pattern(15_000)).await.unwrap();
    out.cancel().await.unwrap();
    assert!(!fs.exists("/c").await.unwrap());
    // The partial second block was reset, not completed short.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(cluster
        .state
        .lock()
        .blocks
        .values()
        .all(|b| b.len() == BLOCK as usize));

    let mut out = fs
        .create_file("/d", opts(WriteType::MustCache))
        .await
        .unwrap();
    out.write(&pattern(100)).await.unwrap();
    drop(out);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs.exists("/d").await.unwrap() {
        assert!(Instant::now() < deadline, "dropped stream left its file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = fs.delete("/d", DeleteOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(cluster.state.lock().files.is_empty());
}

#[test]
fn blocking_api_reads_writes_and_seeks() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_cluster, config) = rt.block_on(start(false));
    let fs = alluvium_client::blocking::FileSystem::connect(&config).unwrap();
    let data = pattern(12_000);
    let mut out = fs.create_file("/b", opts(WriteType::MustCache)).unwrap();
    out.write_all(&data).unwrap();
    assert_eq!(out.close().unwrap().length, 12_000);
    let mut input = fs.open_file("/b", OpenFileOptions::default()).unwrap();
    let mut all = Vec::new();
    input.read_to_end(&mut all).unwrap();
    assert_eq!(all, data);
    input.seek(SeekFrom::End(-10)).unwrap();
    let mut tail = Vec::new();
    input.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[11_990..]);
    assert!(input.seek(SeekFrom::Current(-20_000)).is_err());
    assert_eq!(fs.get_status("/b").unwrap().length, 12_000);
}

#[tokio::test]
async fn shell_copies_round_trip() {
    use alluvium_shell::{run_fs, FsCommand, WriteArgs};
    let (cluster, config) = start(false).await;
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("in.bin");
    let data = pattern(30_000);
    std::fs::write(&src, &data).unwrap();
    let w = WriteArgs {
        write_type: Some("CACHE_THROUGH".into()),
        block_size: None,
    };
    run_fs(
        &config,
        FsCommand::CopyFromLocal {
            write: w.clone(),
            src: src.display().to_string(),
            dst: "/in.bin".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(cluster.state.lock().ufs["in.bin"].as_ref(), &data[..]);
    // An existing target is refused with its path named.
    let e = run_fs(
        &config,
        FsCommand::Cp {
            recursive: false,
            write: w,
            src: format!("file://{}", src.display()),
            dst: "/in.bin".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::AlreadyExists);
    assert!(e.message.contains("/in.bin"), "{e}");

    let out = local.path().join("out.bin");
    run_fs(
        &config,
        FsCommand::CopyToLocal {
            src: "/in.bin".into(),
            dst: out.display().to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), data);

    let e = run_fs(
        &config,
        FsCommand::CopyToLocal {
            src: "/missing".into(),
            dst: out.display().to_string(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("/missing"), "{e}");

    let e = run_fs(
        &config,
        FsCommand::Test {
            dir: false,
            exists: true,
            file: false,
            nonempty: false,
            zero: false,
            path: "/missing".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code.exit_code(), 1);
    run_fs(
        &config,
        FsCommand::Test {
            dir: false,
            exists: false,
            file: true,
            nonempty: false,
            zero: false,
            path: "/in.bin".into(),
        },
    )
    .await
    .unwrap();
    let e = run_fs(
        &config,
        FsCommand::CopyFromLocal {
            write: WriteArgs::default(),
            src: local.path().join("nope").display().to_string(),
            dst: "/x".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(
        e.message.ends_with("nope: no such file or directory"),
        "{e}"
    );
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<FileSystem>();
    send_sync::<alluvium_client::blocking::FileSystem>();
    send::<alluvium_client::FileOutStream>();
    send::<alluvium_client::FileInStream>();
}

#[tokio::test]
async fn wildcards_expand_against_the_namespace() {
    use alluvium_shell::glob::expand;
    let (_cluster, config) = start(false).await;
    let fs = FileSystem::connect(&config).await.unwrap();
    for p in ["/g/a1", "/g/a2", "/g/b1"] {
        let out = fs.create_file(p, opts(WriteType::MustCache)).await.unwrap();
        out.close().await.unwrap();
    }
    assert_eq!(expand(&fs, "/g/a*").await.unwrap(), vec!["/g/a1", "/g/a2"]);
    assert_eq!(expand(&fs, "/g/?1").await.unwrap(), vec!["/g/a1", "/g/b1"]);
    assert_eq!(expand(&fs, "/g/b1").await.unwrap(), vec!["/g/b1"]);
    let e = expand(&fs, "/g/z*").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert!(e.message.contains("/g/z*"), "{e}");
}
