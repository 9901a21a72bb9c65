//! BlockWorker over a real tonic server on 127.0.0.1:0, against a fake BlockMaster.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::ids::block_id;
use alluvium_proto::block_worker_client::BlockWorkerClient;
use alluvium_proto::*;
use bytes::Bytes;
use tonic::transport::Channel;
use tonic::Code;

use crate::test_support::{data, eventually, start, start_with, Harness, MOUNT_ID};

fn checksum(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

async fn write(
    client: &mut BlockWorkerClient<Channel>,
    id: u64,
    bytes: &[u8],
    chunk: usize,
    reserve: u64,
) -> Result<WriteBlockResponse, tonic::Status> {
    let mut msgs = vec![WriteBlockRequest {
        value: Some(write_block_request::Value::Header(WriteBlockHeader {
            block_id: id,
            reserve_bytes: reserve,
            ..Default::default()
        })),
    }];
    for c in bytes.chunks(chunk) {
        msgs.push(WriteBlockRequest {
            value: Some(write_block_request::Value::Chunk(Bytes::copy_from_slice(c))),
        });
    }
    client
        .write_block(tokio_stream::iter(msgs))
        .await
        .map(|r| r.into_inner())
}

fn read_req(id: u64, offset: u64, length: u64) -> ReadBlockRequest {
    ReadBlockRequest {
        block_id: id,
        offset,
        length,
        ..Default::default()
    }
}

/// All bytes of a ReadBlock and the number of messages.
async fn read(
    client: &mut BlockWorkerClient<Channel>,
    req: ReadBlockRequest,
) -> Result<(Vec<u8>, usize), tonic::Status> {
    let mut stream = client.read_block(req).await?.into_inner();
    let (mut out, mut n) = (Vec::new(), 0);
    while let Some(m) = stream.message().await? {
        out.extend_from_slice(&m.data);
        n += 1;
    }
    Ok((out, n))
}

fn source(path: &str, offset_in_file: u64, block_length: u64) -> UfsBlockSource {
    UfsBlockSource {
        ufs: Some(UfsLocation {
            mount_id: MOUNT_ID,
            ufs_path: path.into(),
        }),
        offset_in_file,
        block_length,
        durable: true,
    }
}

#[tokio::test]
async fn write_then_read_a_multi_chunk_block() {
    let mut h = start().await;
    let payload = data(3 * (1 << 20) + (1 << 19), 7);
    let id = block_id(3, 0);
    // No reservation up front: the write grows it.
    let resp = write(&mut h.client, id, &payload, 1 << 20, 0)
        .await
        .unwrap();
    assert_eq!(
        (resp.length, resp.tier.as_str()),
        (payload.len() as u64, "MEM")
    );
    let mut req = read_req(id, 0, 0);
    req.chunk_size = 256 << 10;
    let (got, messages) = read(&mut h.client, req).await.unwrap();
    assert_eq!(checksum(&got), checksum(&payload));
    assert_eq!(messages, 14);
    // Committed to the master right away.
    let commits = h.master.commits.lock().clone();
    assert_eq!(commits.len(), 1);
    assert_eq!(
        (
            commits[0].block_id,
            commits[0].length,
            commits[0].tier.as_str(),
            commits[0].worker_id
        ),
        (id, payload.len() as u64, "MEM", 1)
    );
    // Written with a reservation that is larger than the data.
    let small = data(1000, 1);
    write(&mut h.client, id + 1, &small, 300, 8 << 20)
        .await
        .unwrap();
    assert_eq!(
        read(&mut h.client, read_req(id + 1, 0, 0)).await.unwrap().0,
        small
    );
    let status = h
        .client
        .get_worker_status(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.block_count, 2);
    assert_eq!(status.worker_id, 1);
    assert_eq!(status.tiers[0].used_bytes, payload.len() as u64 + 1000);
    // Heartbeats carry the usage; non-durable blocks are listed.
    eventually("a heartbeat listing both blocks", || {
        h.master
            .heartbeats
            .lock()
            .last()
            .is_some_and(|hb| hb.non_durable_block_ids == vec![id, id + 1])
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn ranged_reads_and_errors() {
    let mut h = start().await;
    let payload = data(1000, 3);
    write(&mut h.client, 77, &payload, 100, 1000).await.unwrap();
    let c = &mut h.client;
    assert_eq!(
        read(c, read_req(77, 100, 200)).await.unwrap().0,
        &payload[100..300]
    );
    assert_eq!(
        read(c, read_req(77, 900, 0)).await.unwrap().0,
        &payload[900..]
    );
    assert_eq!(
        read(c, read_req(77, 1000, 0)).await.unwrap().0,
        Vec::<u8>::new()
    );
    for (off, len) in [(999, 2), (2000, 0), (u64::MAX, 2)] {
        let e = read(c, read_req(77, off, len)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{off},{len}: {e:?}");
        assert!(e.message().contains("block 77"), "{}", e.message());
    }
    let e = read(c, read_req(78, 0, 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(
        e.message().contains("block 78 is not cached"),
        "{}",
        e.message()
    );
    // Bad range against a UFS source is refused before any UFS I/O.
    let mut req = read_req(79, 10, 100);
    req.ufs = Some(source("nope", 0, 50));
    assert_eq!(
        read(c, req).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    // Writes: a duplicate block, and a stream without a header.
    let e = write(c, 77, &payload, 100, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    let e = c
        .write_block(tokio_stream::iter(vec![WriteBlockRequest {
            value: Some(write_block_request::Value::Chunk(Bytes::from_static(b"x"))),
        }]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // An unknown tier.
    let e = c
        .create_local_block(CreateLocalBlockRequest {
            block_id: 5,
            tier: "TAPE".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    h.shutdown().await;
}

#[tokio::test]
async fn reads_through_from_the_ufs_and_caches_once() {
    let mut h = start().await;
    let file = data(3000, 9);
    std::fs::create_dir_all(h.ufs_root().join("dir")).unwrap();
    std::fs::write(h.ufs_root().join("dir/f"), &file).unwrap();
    let b1 = block_id(9, 1);
    let mut req = read_req(b1, 100, 500);
    req.ufs = Some(source("dir/f", 1000, 1500));
    let (got, _) = read(&mut h.client, req).await.unwrap();
    assert_eq!(got, &file[1100..1600]);
    eventually("the cached block's commit", || {
        h.master.commits.lock().iter().any(|c| c.block_id == b1)
    })
    .await;
    // Now cached: readable without a UFS source, and durable (not in non-durable lists).
    assert_eq!(
        read(&mut h.client, read_req(b1, 0, 0)).await.unwrap().0,
        &file[1000..2500]
    );
    let hb_before = h.master.heartbeats.lock().len();
    eventually("a heartbeat after caching", || {
        h.master.heartbeats.lock().len() > hb_before + 1
    })
    .await;
    assert!(h
        .master
        .heartbeats
        .lock()
        .last()
        .unwrap()
        .non_durable_block_ids
        .is_empty());

    // NO_CACHE streams without caching.
    let b0 = block_id(9, 0);
    let mut req = read_req(b0, 0, 0);
    req.ufs = Some(source("dir/f", 0, 1000));
    req.read_type = ReadType::NoCache as i32;
    assert_eq!(read(&mut h.client, req).await.unwrap().0, &file[..1000]);
    assert_eq!(
        read(&mut h.client, read_req(b0, 0, 0))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Concurrent read-throughs of one block: all get the data, the block is cached once.
    let b2 = block_id(9, 2);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = h.client.clone();
        let mut req = read_req(b2, 0, 0);
        req.ufs = Some(source("dir/f", 2500, 500));
        req.chunk_size = 64;
        tasks.push(tokio::spawn(
            async move { read(&mut c, req).await.unwrap().0 },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), &file[2500..]);
    }
    eventually("b2 cached", || {
        h.master.commits.lock().iter().any(|c| c.block_id == b2)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.master
            .commits
            .lock()
            .iter()
            .filter(|c| c.block_id == b2)
            .count(),
        1
    );

    // CacheBlock loads once.
    let cache = |src| CacheBlockRequest {
        block_id: b0,
        ufs: Some(src),
        pinned: false,
    };
    let r = h
        .client
        .cache_block(cache(source("dir/f", 0, 1000)))
        .await
        .unwrap()
        .into_inner();
    assert!(r.loaded);
    assert_eq!(r.tier, "MEM");
    let r = h
        .client
        .cache_block(cache(source("dir/f", 0, 1000)))
        .await
        .unwrap()
        .into_inner();
    assert!(!r.loaded);
    assert_eq!(
        read(&mut h.client, read_req(b0, 0, 0)).await.unwrap().0,
        &file[..1000]
    );
    // A source longer than the UFS file: the file changed.
    let e = h
        .client
        .cache_block(CacheBlockRequest {
            block_id: block_id(9, 5),
            ufs: Some(source("dir/f", 2000, 2000)),
            pinned: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("changed"), "{}", e.message());
    let status = h
        .client
        .get_worker_status(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.block_count, 3);
    // A missing UFS file.
    let mut req = read_req(block_id(10, 0), 0, 0);
    req.ufs = Some(source("missing", 0, 10));
    assert_eq!(
        read(&mut h.client, req).await.unwrap_err().code(),
        Code::NotFound
    );
    h.shutdown().await;
}

#[tokio::test]
async fn short_circuit_lease_expires_unless_renewed() {
    let mut h = start().await; // lease: 1 s
    let payload = data(4096, 5);
    write(&mut h.client, 11, &payload, 1024, 0).await.unwrap();
    let open = OpenLocalBlockRequest {
        block_id: 11,
        session_id: 42,
        promote: false,
    };
    let r = h.client.open_local_block(open).await.unwrap().into_inner();
    assert_eq!((r.length, r.tier.as_str(), r.lease_ms), (4096, "MEM", 1000));
    assert_eq!(std::fs::read(&r.path).unwrap(), payload);
    // The master frees the block while the lease holds it: the file stays until the lease ends.
    h.master.next.lock().remove_block_ids = vec![11];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while read(&mut h.client, read_req(11, 0, 0)).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "block never removed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(std::path::Path::new(&r.path).exists());
    // Not renewed: it expires and the file goes.
    eventually("lease expiry", || !std::path::Path::new(&r.path).exists()).await;
    // Renewal and open of an unknown block.
    assert_eq!(
        h.client.open_local_block(open).await.unwrap_err().code(),
        Code::NotFound
    );
    h.shutdown().await;
}

#[tokio::test]
async fn short_circuit_close_releases_the_block() {
    let mut h = start_with(|c| c.worker.short_circuit_lease = Duration::from_secs(60)).await;
    write(&mut h.client, 12, &data(100, 1), 100, 0)
        .await
        .unwrap();
    let open = OpenLocalBlockRequest {
        block_id: 12,
        session_id: 1,
        promote: true,
    };
    let r = h.client.open_local_block(open).await.unwrap().into_inner();
    // Re-opening renews the same lease.
    let r2 = h.client.open_local_block(open).await.unwrap().into_inner();
    assert_eq!(r.path, r2.path);
    h.master.next.lock().remove_block_ids = vec![12];
    eventually("the remove command", || {
        h.master.next.lock().remove_block_ids.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(std::path::Path::new(&r.path).exists());
    h.client
        .close_local_block(CloseLocalBlockRequest {
            block_id: 12,
            session_id: 1,
        })
        .await
        .unwrap();
    assert!(!std::path::Path::new(&r.path).exists());
    h.shutdown().await;
}

#[tokio::test]
async fn create_and_commit_local_blocks() {
    let mut h = start().await;
    let create = |id| CreateLocalBlockRequest {
        block_id: id,
        session_id: 5,
        reserve_bytes: 100,
        tier: "ssd".into(),
        pinned: false,
        durable: false,
        grows: false,
    };
    let r = h
        .client
        .create_local_block(create(21))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.tier, "SSD");
    assert!(r.path.contains("/tmp/5-21"), "{}", r.path);
    let payload = data(150, 2);
    std::fs::write(&r.path, &payload).unwrap();
    let commit = |length| CommitLocalBlockRequest {
        block_id: 21,
        session_id: 5,
        length,
    };
    let e = h.client.commit_local_block(commit(100)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().contains("holds 150 bytes, not 100"),
        "{}",
        e.message()
    );
    h.client.commit_local_block(commit(150)).await.unwrap();
    assert_eq!(
        read(&mut h.client, read_req(21, 0, 0)).await.unwrap().0,
        payload
    );
    assert!(h
        .master
        .commits
        .lock()
        .iter()
        .any(|c| c.block_id == 21 && c.tier == "SSD"));
    // The same block again is refused; an aborted one leaves nothing.
    assert_eq!(
        h.client
            .create_local_block(create(21))
            .await
            .unwrap_err()
            .code(),
        Code::AlreadyExists
    );
    let r = h
        .client
        .create_local_block(create(22))
        .await
        .unwrap()
        .into_inner();
    std::fs::write(&r.path, b"junk").unwrap();
    h.client
        .abort_local_block(AbortLocalBlockRequest {
            block_id: 22,
            session_id: 5,
        })
        .await
        .unwrap();
    assert!(!std::path::Path::new(&r.path).exists());
    assert_eq!(
        read(&mut h.client, read_req(22, 0, 0))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let status = h
        .client
        .get_worker_status(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.tiers[1].used_bytes, 150);
    h.shutdown().await;
}

fn block_info(id: u64, offset: u64, length: u64, peer: Option<&WorkerNetAddress>) -> BlockInfo {
    BlockInfo {
        block_id: id,
        length,
        offset,
        locations: peer
            .map(|a| {
                vec![BlockLocation {
                    worker_id: 2,
                    address: Some(a.clone()),
                    tier: "MEM".into(),
                }]
            })
            .unwrap_or_default(),
    }
}

#[tokio::test]
async fn persists_files_from_local_and_peer_blocks() {
    let mut h = start().await;
    let mut peer = start().await;
    let (a, b) = (data(1000, 1), data(500, 2));
    let (b0, b1) = (block_id(7, 0), block_id(7, 1));
    write(&mut h.client, b0, &a, 256, 0).await.unwrap();
    write(&mut peer.client, b1, &b, 256, 0).await.unwrap();
    let peer_addr = WorkerNetAddress {
        host: "127.0.0.1".into(),
        rpc_port: peer.worker.rpc_addr().port() as u32,
        http_port: 0,
    };
    let req = PersistFileRequest {
        file_id: 7,
        ufs: Some(UfsLocation {
            mount_id: MOUNT_ID,
            ufs_path: "out/f.bin".into(),
        }),
        length: 1500,
        blocks: vec![
            block_info(b0, 0, 1000, None),
            block_info(b1, 1000, 500, Some(&peer_addr)),
        ],
    };
    h.client.persist_file(req.clone()).await.unwrap();
    let written = std::fs::read(h.ufs_root().join("out/f.bin")).unwrap();
    assert_eq!(written, [a.clone(), b.clone()].concat());
    // The local block is durable now.
    let n = h.master.heartbeats.lock().len();
    eventually("a heartbeat after persisting", || {
        h.master.heartbeats.lock().len() > n + 1
    })
    .await;
    assert!(h
        .master
        .heartbeats
        .lock()
        .last()
        .unwrap()
        .non_durable_block_ids
        .is_empty());

    // A block nobody holds.
    let mut missing = req.clone();
    missing.blocks[1].locations.clear();
    missing.ufs.as_mut().unwrap().ufs_path = "out/g.bin".into();
    let e = h.client.persist_file(missing).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        e.message().contains(&format!("block {b1}")),
        "{}",
        e.message()
    );
    assert!(!h.ufs_root().join("out/g.bin").exists());
    // Lengths that do not add up.
    let mut bad = req.clone();
    bad.length = 10;
    assert_eq!(
        h.client.persist_file(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // The same through a heartbeat command: PersistDone reports success.
    h.master.next.lock().persist = vec![PersistCommand {
        file_id: 7,
        path: "/f".into(),
        ufs: Some(UfsLocation {
            mount_id: MOUNT_ID,
            ufs_path: "cmd/f.bin".into(),
        }),
        length: 1500,
        blocks: req.blocks.clone(),
    }];
    eventually("PersistDone", || !h.master.persist_done.lock().is_empty()).await;
    let done = h.master.persist_done.lock()[0].clone();
    assert_eq!((done.file_id, done.error.as_str()), (7, ""));
    assert_eq!(
        std::fs::read(h.ufs_root().join("cmd/f.bin")).unwrap().len(),
        1500
    );
    peer.shutdown().await;
    h.shutdown().await;
}

#[tokio::test]
async fn writes_files_through_to_the_ufs() {
    let mut h = start().await;
    let payload = data(10_000, 4);
    let msgs = |overwrite: bool| {
        let mut v = vec![WriteUfsFileRequest {
            value: Some(write_ufs_file_request::Value::Header(WriteUfsFileHeader {
                ufs: Some(UfsLocation {
                    mount_id: MOUNT_ID,
                    ufs_path: "through/x".into(),
                }),
                overwrite,
            })),
        }];
        for c in payload.chunks(3000) {
            v.push(WriteUfsFileRequest {
                value: Some(write_ufs_file_request::Value::Chunk(
                    Bytes::copy_from_slice(c),
                )),
            });
        }
        tokio_stream::iter(v)
    };
    let r = h
        .client
        .write_ufs_file(msgs(false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.length, 10_000);
    assert_eq!(
        std::fs::read(h.ufs_root().join("through/x")).unwrap(),
        payload
    );
    let e = h.client.write_ufs_file(msgs(false)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    h.client.write_ufs_file(msgs(true)).await.unwrap();
    h.shutdown().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf[9..12].parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn http_status_metrics_and_health() {
    let mut h = start().await;
    write(&mut h.client, 31, &data(2048, 1), 1024, 0)
        .await
        .unwrap();
    read(&mut h.client, read_req(31, 0, 0)).await.unwrap();
    let web = h.worker.web_addr();
    assert_eq!(http_get(web, "/healthz").await, (200, "ok\n".into()));
    let (code, metrics) = http_get(web, "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "alluvium_worker_bytes_read_total{source=\"cache\"} 2048",
        "alluvium_worker_bytes_written_total{tier=\"MEM\"} 2048",
        "alluvium_worker_used_bytes{tier=\"MEM\"} 2048",
        "alluvium_worker_blocks{tier=\"MEM\"} 1",
        "alluvium_worker_capacity_bytes{tier=\"SSD\"} 268435456",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let (code, body) = http_get(web, "/api/v1/worker").await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["worker_id"], 1);
    assert_eq!(v["block_count"], 1);
    assert_eq!(v["tiers"][0]["alias"], "MEM");
    assert_eq!(v["tiers"][0]["used_bytes"], 2048);
    assert_eq!(v["tiers"][1]["dirs"][0]["capacity_bytes"], 268435456u64);
    assert!(v["recent_evictions"].as_array().unwrap().is_empty());
    h.shutdown().await;
}

#[tokio::test]
async fn starts_without_a_master_and_registers_later() {
    let dir = tempfile::tempdir().unwrap();
    // A port with nothing listening (bound, then released).
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let config = crate::test_support::worker_config(dir.path(), addr, &[("MEM", 1 << 20)]);
    let w = crate::WorkerServer::start(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.worker_id(), None);
    // The master comes up on that address: the worker's retries find it.
    let master = Arc::new(crate::test_support::FakeMaster::default());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _serving = crate::test_support::serve_fake_master(master.clone(), listener);
    eventually("registration once the master is up", || {
        w.worker_id().is_some()
    })
    .await;
    assert_eq!(master.registrations.load(Ordering::SeqCst), 1);
    w.shutdown().await.unwrap();
}

#[tokio::test]
async fn cluster_secret_is_checked_and_sent() {
    let mut h = start_with(|c| c.security.cluster_secret = "s3cret".into()).await;
    let (secret, user) = h.master.register_metadata.lock()[0].clone();
    assert_eq!(secret.as_deref(), Some("s3cret"));
    assert!(user.is_some_and(|u| !u.is_empty()));
    let e = h.client.get_worker_status(Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let caller = alluvium_common::identity::Caller::named("alice");
    let identity =
        alluvium_common::identity::IdentityInterceptor::new(&caller, Some("s3cret")).unwrap();
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", h.worker.rpc_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut c = BlockWorkerClient::with_interceptor(channel, identity);
    let status = c.get_worker_status(Empty {}).await.unwrap().into_inner();
    assert_eq!(status.address.unwrap().host, "localhost");
    h.shutdown().await;
}

#[tokio::test]
async fn heartbeat_protocol_and_restart() {
    let mut h = start().await;
    // A failed CommitBlock is reported in the next heartbeat instead.
    h.master.fail_commits.store(true, Ordering::SeqCst);
    write(&mut h.client, 51, &data(10, 1), 10, 0).await.unwrap();
    eventually("the block in a heartbeat", || {
        h.master.heartbeats.lock().iter().any(|hb| {
            hb.added_blocks
                .iter()
                .any(|b| b.block_id == 51 && b.tier == "MEM" && b.length == 10)
        })
    })
    .await;
    h.master.fail_commits.store(false, Ordering::SeqCst);
    // Durable ids from the master end the non-durable listing.
    h.master.next.lock().durable_block_ids = vec![51];
    eventually("durable", || {
        h.master
            .heartbeats
            .lock()
            .last()
            .is_some_and(|hb| hb.worker_id == 1 && hb.non_durable_block_ids.is_empty())
    })
    .await;
    // Told to register again: a full report, a new id.
    h.master.next.lock().register = true;
    eventually("re-registration", || h.worker.worker_id() == Some(2)).await;
    let reg = h.master.register_requests.lock()[1].clone();
    assert_eq!(reg.blocks[0].tier, "MEM");
    assert_eq!(reg.blocks[0].block_ids, vec![51]);
    assert!(reg.non_durable_block_ids.is_empty());
    let addr = reg.address.unwrap();
    assert_eq!(
        (addr.host.as_str(), addr.rpc_port),
        ("localhost", h.worker.rpc_addr().port() as u32)
    );
    assert_eq!(addr.http_port, h.worker.web_addr().port() as u32);

    // A restarted worker finds its blocks again (not known durable until the master says so).
    write(&mut h.client, 52, &data(20, 2), 10, 0).await.unwrap();
    let config = h.config.clone();
    let Harness {
        worker,
        master,
        dir: _dir,
        stop_master: _stop_master,
        ..
    } = h;
    worker.shutdown().await.unwrap();
    let worker = crate::WorkerServer::start(config).await.unwrap();
    eventually("registration after restart", || {
        master.register_requests.lock().len() == 3
    })
    .await;
    let reg = master.register_requests.lock()[2].clone();
    assert_eq!(reg.blocks[0].block_ids, vec![51, 52]);
    assert_eq!(reg.non_durable_block_ids, vec![51, 52]);
    assert_eq!(reg.tiers[0].used_bytes, 30);
    worker.shutdown().await.unwrap();
}

#[tokio::test]
async fn eviction_and_promotion_through_the_service() {
    let mut h = start_with(|c| {
        c.worker.tiers[0].quota = vec![alluvium_common::ByteSize(3000)];
    })
    .await;
    for id in 61..=63 {
        write(&mut h.client, id, &data(1400, id as u8), 700, 1400)
            .await
            .unwrap();
    }
    let status = h
        .client
        .get_worker_status(Empty {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (status.tiers[0].block_count, status.tiers[1].block_count),
        (2, 1)
    );
    // The oldest moved down; a CACHE_PROMOTE read brings it back (moving another down).
    let mut req = read_req(61, 0, 0);
    req.read_type = ReadType::CachePromote as i32;
    assert_eq!(read(&mut h.client, req).await.unwrap().0, data(1400, 61));
    let open = OpenLocalBlockRequest {
        block_id: 61,
        session_id: 3,
        promote: false,
    };
    let r = h.client.open_local_block(open).await.unwrap().into_inner();
    assert_eq!(r.tier, "MEM");
    let (_, metrics) = http_get(h.worker.web_addr(), "/metrics").await;
    for line in [
        "alluvium_worker_blocks_moved_total{from=\"MEM\",to=\"SSD\"} 2",
        "alluvium_worker_blocks_promoted_total 1",
        "alluvium_worker_short_circuit_opens_total 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let (_, body) = http_get(h.worker.web_addr(), "/api/v1/worker").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ev = v["recent_evictions"].as_array().unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(
        (ev[0]["block_id"].as_u64(), ev[0]["to"].as_str()),
        (Some(61), Some("SSD"))
    );
    // Moves are reported to the master with the new tier.
    eventually("the moves in heartbeats", || {
        h.master
            .heartbeats
            .lock()
            .iter()
            .flat_map(|hb| hb.added_blocks.clone())
            .any(|b| b.block_id == 61 && b.tier == "MEM")
    })
    .await;
    h.shutdown().await;
}

/// A hand-written block transfer client: hello, then one request; the reply's bytes or error.
mod transfer {
    use alluvium_proto::block_transfer::{self as wire, ReadRequest, STATUS_OK};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Connects and says hello: the connection once the worker acknowledged it, or its refusal.
    pub async fn connect(
        addr: std::net::SocketAddr,
        secret: &str,
    ) -> (TcpStream, Result<(), (tonic::Code, String)>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&wire::encode_hello(secret.as_bytes()).unwrap())
            .await
            .unwrap();
        let mut ack = [0u8; 5];
        s.read_exact(&mut ack[..1]).await.unwrap();
        if ack[0] == wire::STATUS_ERROR {
            let refused = error(&mut s).await;
            return (s, Err(refused));
        }
        s.read_exact(&mut ack[1..]).await.unwrap();
        assert_eq!(ack, wire::HELLO_ACK);
        (s, Ok(()))
    }

    async fn error(s: &mut TcpStream) -> (tonic::Code, String) {
        let mut fixed = [0u8; 8];
        s.read_exact(&mut fixed).await.unwrap();
        let (code, len) = wire::decode_error_fixed(&fixed).unwrap();
        let mut msg = vec![0u8; len];
        s.read_exact(&mut msg).await.unwrap();
        (code, String::from_utf8(msg).unwrap())
    }

    pub async fn read(
        s: &mut TcpStream,
        block_id: u64,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, (tonic::Code, String)> {
        let req = ReadRequest {
            block_id,
            offset,
            length,
        };
        s.write_all(&req.encode()).await.unwrap();
        if s.read_u8().await.unwrap() == STATUS_OK {
            let n = s.read_u64().await.unwrap();
            let mut buf = vec![0u8; n as usize];
            s.read_exact(&mut buf).await.unwrap();
            return Ok(buf);
        }
        Err(error(s).await)
    }
}

#[tokio::test]
async fn block_transfer_shares_the_grpc_port() {
    let mut h = start().await;
    let payload = data(3 * (1 << 20) + 123, 9);
    let id = block_id(11, 0);
    write(&mut h.client, id, &payload, 1 << 20, 0)
        .await
        .unwrap();
    let addr = h.worker.rpc_addr();
    let (mut s, hello) = transfer::connect(addr, "").await;
    hello.unwrap();
    // Whole block, a range, and the end: several requests on one connection.
    assert_eq!(
        checksum(&transfer::read(&mut s, id, 0, 0).await.unwrap()),
        checksum(&payload)
    );
    let range = transfer::read(&mut s, id, 4096, 1 << 20).await.unwrap();
    assert_eq!(range, payload[4096..4096 + (1 << 20)]);
    let tail = transfer::read(&mut s, id, payload.len() as u64 - 10, 0)
        .await
        .unwrap();
    assert_eq!(tail, payload[payload.len() - 10..]);
    // Refused reads leave the connection usable.
    let (code, msg) = transfer::read(&mut s, id + 1, 0, 0).await.unwrap_err();
    assert_eq!(code, Code::NotFound, "{msg}");
    assert!(msg.contains("not cached"), "{msg}");
    let (code, msg) = transfer::read(&mut s, id, payload.len() as u64, 1)
        .await
        .unwrap_err();
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert_eq!(
        transfer::read(&mut s, id, 0, 5).await.unwrap(),
        payload[..5]
    );
    // gRPC still answers on the same port, and counts the bytes the same way.
    let (got, _) = read(&mut h.client, read_req(id, 0, 0)).await.unwrap();
    assert_eq!(got.len(), payload.len());
    h.shutdown().await;
}

#[tokio::test]
async fn block_transfer_checks_the_cluster_secret() {
    let h = start_with(|c| c.security.cluster_secret = "s3cret".into()).await;
    let addr = h.worker.rpc_addr();
    for wrong in ["", "wrong"] {
        let (mut s, hello) = transfer::connect(addr, wrong).await;
        let (code, msg) = hello.unwrap_err();
        assert_eq!(code, Code::Unauthenticated, "{msg}");
        // ... and the worker closes the connection.
        let mut rest = Vec::new();
        use tokio::io::AsyncReadExt;
        assert_eq!(s.read_to_end(&mut rest).await.unwrap_or(0), 0);
    }
    let (mut s, hello) = transfer::connect(addr, "s3cret").await;
    hello.unwrap();
    let (code, _) = transfer::read(&mut s, 1, 0, 0).await.unwrap_err();
    assert_eq!(code, Code::NotFound);
    // Not a hello at all: an unknown version is refused with a reason.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"ALVD\x09\x00\x00").await.unwrap();
    assert_eq!(
        s.read_u8().await.unwrap(),
        alluvium_proto::block_transfer::STATUS_ERROR
    );
    h.shutdown().await;
}

/// The worker's used bytes over all tiers, as its next heartbeat reports them.
async fn used_bytes(h: &Harness) -> u64 {
    let before = h.master.heartbeats.lock().len();
    eventually("a fresh heartbeat", || {
        h.master.heartbeats.lock().len() > before + 1
    })
    .await;
    let hbs = h.master.heartbeats.lock();
    hbs.last().unwrap().tiers.iter().map(|t| t.used_bytes).sum()
}

/// Sizes from the wire past anything a tier holds: a reservation of 2^63 bytes used to wrap to
/// a negative need that every dir satisfied, and the tier's used bytes overflowed (a panic in
/// a debug build; in a release build every later write failed). Now it is capped to what a dir
/// holds, and the tier's accounting stays exact.
#[tokio::test]
async fn absurd_reservations_are_capped_and_leave_the_accounting_exact() {
    let mut h = start().await;
    for (id, reserve) in [(31, 1u64 << 63), (32, u64::MAX)] {
        let created = h
            .client
            .create_local_block(CreateLocalBlockRequest {
                block_id: id,
                session_id: 7,
                reserve_bytes: reserve,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        std::fs::write(&created.path, data(10, 3)).unwrap();
        h.client
            .commit_local_block(CommitLocalBlockRequest {
                block_id: id,
                session_id: 7,
                length: 10,
            })
            .await
            .unwrap();
    }
    assert_eq!(
        used_bytes(&h).await,
        20,
        "only what the blocks hold stays reserved"
    );
    // Writes go on as before.
    write(&mut h.client, 33, &data(100, 4), 64, 100)
        .await
        .unwrap();
    assert_eq!(used_bytes(&h).await, 120);
    h.shutdown().await;
}

/// A read-through source whose end lies past any file used to overflow `offset + length` and
/// panic the reading task, which the client saw as a successful read of no bytes.
#[tokio::test]
async fn read_through_sources_beyond_any_file_are_refused() {
    let mut h = start().await;
    std::fs::write(h.ufs_root().join("f"), data(100, 1)).unwrap();
    for (offset_in_file, block_length) in [(u64::MAX - 10, 100), (0, 1 << 63), (1 << 63, 1)] {
        for read_type in [ReadType::NoCache, ReadType::Cache] {
            let mut req = read_req(block_id(11, 0), 0, 0);
            req.ufs = Some(source("f", offset_in_file, block_length));
            req.read_type = read_type as i32;
            let e = read(&mut h.client, req).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
            assert!(e.message().contains("beyond any file"), "{}", e.message());
        }
    }
    assert_eq!(
        used_bytes(&h).await,
        0,
        "a refused read-through leaks no reservation"
    );
    h.shutdown().await;
}
