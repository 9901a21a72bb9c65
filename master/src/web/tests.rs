//! HTTP tests of every page and JSON endpoint against a real master (gRPC and HTTP on loopback).
//! Reads that need a worker's data (file previews) are tested with real workers in
//! `cli/tests/web_ui.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alluvium_common::identity::{Caller, IdentityInterceptor};
use alluvium_common::Config;
use alluvium_proto::block_master_client::BlockMasterClient;
use alluvium_proto::file_system_master_client::FileSystemMasterClient;
use alluvium_proto::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::MasterServer;

type Fs = FileSystemMasterClient<InterceptedService<Channel, IdentityInterceptor>>;

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.master.bind_host = "127.0.0.1".into();
    c.master.rpc_port = 0;
    c.master.web_port = 0;
    c.master.metastore_dir = dir.join("meta");
    c.master.root_ufs = dir.join("ufs").display().to_string();
    c
}

async fn channel(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn fs(addr: SocketAddr) -> Fs {
    FileSystemMasterClient::with_interceptor(
        channel(addr).await,
        IdentityInterceptor::new(&Caller::current_process(), None).unwrap(),
    )
}

/// (status, content type, body) of a GET.
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    // Chunked bodies: keep it simple by asking for Connection: close and de-chunking.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, ctype, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

async fn page(addr: SocketAddr, path: &str) -> String {
    let (code, ctype, body) = get(addr, path).await;
    assert_eq!(code, 200, "{path}: {body}");
    assert!(ctype.starts_with("text/html"), "{path}: {ctype}");
    assert!(body.contains("<nav>"), "{path}: no navigation bar");
    body
}

async fn json(addr: SocketAddr, path: &str) -> Value {
    let (code, ctype, body) = get(addr, path).await;
    assert_eq!(code, 200, "{path}: {body}");
    assert_eq!(ctype, "application/json", "{path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

async fn mkdir(fs: &mut Fs, path: &str, mode: u32) {
    fs.create_directory(CreateDirectoryRequest {
        path: path.into(),
        mode: Some(mode),
        recursive: true,
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn touch(fs: &mut Fs, path: &str) {
    let f = fs
        .create_file(CreateFileRequest {
            path: path.into(),
            write_type: WriteType::MustCache as i32,
            recursive: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    fs.complete_file(CompleteFileRequest {
        path: path.into(),
        file_id: f.file_id,
        length: 0,
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn every_page_and_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let server = MasterServer::start(config(dir.path())).await.unwrap();
    let web = server.web_addr();
    let mut fs = fs(server.rpc_addr()).await;

    // A worker with two tiers (registered over gRPC; its HTTP port answers nothing).
    let mut bm = BlockMasterClient::with_interceptor(
        channel(server.rpc_addr()).await,
        IdentityInterceptor::new(&Caller::current_process(), None).unwrap(),
    );
    bm.register_worker(RegisterWorkerRequest {
        address: Some(WorkerNetAddress {
            host: "127.0.0.1".into(),
            rpc_port: 1,
            http_port: 1,
        }),
        tiers: vec![
            TierUsage {
                alias: "MEM".into(),
                ordinal: 0,
                capacity_bytes: 1 << 30,
                used_bytes: 1 << 28,
                block_count: 0,
            },
            TierUsage {
                alias: "SSD".into(),
                ordinal: 1,
                capacity_bytes: 4 << 30,
                used_bytes: 0,
                block_count: 0,
            },
        ],
        ..Default::default()
    })
    .await
    .unwrap();

    mkdir(&mut fs, "/data/nested", 0o755).await;
    for i in 0..5 {
        touch(&mut fs, &format!("/data/f{i}")).await;
    }
    touch(&mut fs, "/data/nested/empty.txt").await;
    mkdir(&mut fs, "/private", 0o700).await;
    touch(&mut fs, "/private/secret.txt").await;

    // Overview.
    let o = page(web, "/").await;
    assert!(o.contains("Overview"), "{o}");
    assert!(o.contains(alluvium_common::VERSION), "{o}");
    assert!(o.contains("MEM") && o.contains("SSD"), "{o}");
    assert!(o.contains("<svg"), "usage bars: {o}");
    let m = json(web, "/api/v1/master").await;
    assert_eq!(m["liveWorkers"], 1);
    assert_eq!(m["fileCount"], 7);
    assert_eq!(m["tiers"][0]["alias"], "MEM");
    assert_eq!(m["tiers"][1]["capacityBytes"], 4u64 << 30);
    assert_eq!(m["ufs"][0]["mountPath"], "/");
    // A local root UFS reports its file system's capacity.
    assert!(m["ufs"][0]["capacityBytes"].as_u64().unwrap() > 0, "{m}");
    for key in [
        "version",
        "rpcAddress",
        "uptimeMs",
        "directoryCount",
        "blockCount",
        "rootUfs",
    ] {
        assert!(m.get(key).is_some(), "{key} missing in {m}");
    }

    // Browse: root, a directory, pages, a file, errors.
    let b = page(web, "/browse").await;
    assert!(b.contains("/browse?path=/data"), "{b}");
    let d = page(web, "/browse?path=/data").await;
    assert!(d.contains("f0") && d.contains("nested/"), "{d}");
    let p1 = json(web, "/api/v1/browse?path=/data&limit=2").await;
    let names: Vec<&str> = p1["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["f0", "f1"]);
    assert_eq!(p1["nextAfter"], "f1");
    assert_eq!(p1["entry"]["childCount"], 6);
    assert_eq!(p1["entry"]["isFolder"], true);
    let p3 = json(web, "/api/v1/browse?path=/data&limit=2&after=f3").await;
    let names: Vec<&str> = p3["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["f4", "nested"]);
    assert!(p3["nextAfter"].is_null(), "{p3}");
    let html_page = page(web, "/browse?path=/data&limit=2").await;
    assert!(
        html_page.contains("/browse?path=/data&amp;after=f1&amp;limit=2"),
        "next page link: {html_page}"
    );
    let f = json(web, "/api/v1/browse?path=/data/nested/empty.txt").await;
    assert_eq!(f["entry"]["isFolder"], false);
    assert_eq!(f["entry"]["modeString"], "-rw-r--r--");
    assert_eq!(f["entry"]["persisted"], false);
    assert_eq!(f["blocks"].as_array().unwrap().len(), 0);
    assert_eq!(f["preview"]["text"], "");
    let fp = page(web, "/browse?path=/data/nested/empty.txt").await;
    assert!(fp.contains("Empty file."), "{fp}");
    assert!(
        fp.contains("Block size") && fp.contains("In memory"),
        "{fp}"
    );

    let (code, ctype, body) = get(web, "/browse?path=/data/missing").await;
    assert_eq!(code, 404, "{body}");
    assert!(ctype.starts_with("text/html"));
    assert!(body.contains("/data/missing"), "{body}");
    let (code, _, body) = get(web, "/api/v1/browse?path=/nope").await;
    assert_eq!(code, 404);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "NOT_FOUND", "{body}");
    // The UI reads as an unprivileged user: a 0700 directory stays closed.
    let (code, _, body) = get(web, "/api/v1/browse?path=/private").await;
    assert_eq!(code, 403, "{body}");
    let (code, _, _) = get(web, "/api/v1/browse?path=/a/../../etc").await;
    assert_eq!(code, 400);

    // Workers.
    let w = page(web, "/workers").await;
    assert!(w.contains("127.0.0.1:1") && w.contains("LIVE"), "{w}");
    let wj = json(web, "/api/v1/workers").await;
    assert_eq!(wj[0]["state"], "LIVE");
    assert_eq!(wj[0]["tiers"].as_array().unwrap().len(), 2);
    assert!(wj[0]["lastHeartbeatMs"].as_i64().unwrap() > 0);

    // Mounts: credentials in options and in the URI's query are never shown.
    let ufs2 = dir.path().join("other-ufs");
    std::fs::create_dir_all(&ufs2).unwrap();
    fs.mount(MountRequest {
        path: "/lake".into(),
        ufs_uri: ufs2.display().to_string(),
        read_only: true,
        options: HashMap::from([
            ("access_key_id".to_string(), "AKIAEXAMPLEKEY".to_string()),
            (
                "secret_access_key".to_string(),
                "hunter2-secret".to_string(),
            ),
            ("session_token".to_string(), "tok-secret-123".to_string()),
        ]),
        shared: false,
    })
    .await
    .unwrap();
    let mp = page(web, "/mounts").await;
    let mj = get(web, "/api/v1/mounts").await.2;
    for text in [
        &mp,
        &mj,
        &page(web, "/").await,
        &get(web, "/api/v1/master").await.2,
    ] {
        assert!(!text.contains("hunter2-secret"), "secret shown: {text}");
        assert!(!text.contains("tok-secret-123"), "token shown: {text}");
    }
    assert!(mp.contains("/lake") && mp.contains("read-only"), "{mp}");
    assert!(mp.contains("secret_access_key=******"), "{mp}");
    let mj: Value = serde_json::from_str(&mj).unwrap();
    let lake = mj
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "/lake")
        .unwrap();
    assert_eq!(lake["readOnly"], true);
    assert_eq!(lake["options"]["secret_access_key"], "******");
    assert_eq!(lake["options"]["access_key_id"], "AKIAEXAMPLEKEY");
    // Listing the mount point syncs it.
    json(web, "/api/v1/browse?path=/lake").await;
    let mj = json(web, "/api/v1/mounts").await;
    let lake = mj
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "/lake")
        .unwrap();
    assert!(lake["lastSyncMs"].as_i64().unwrap() > 0, "{lake}");

    // Prometheus: per-operation latency and per-tier gauges, names with units.
    let (code, _, prom) = get(web, "/metrics").await;
    assert_eq!(code, 200);
    for needle in [
        "alluvium_master_operation_duration_seconds_count{operation=\"CreateDirectory\"} 2",
        "alluvium_master_operation_duration_seconds_bucket{le=\"0.001\",operation=\"CreateFile\"}",
        "alluvium_master_tier_capacity_bytes{tier=\"SSD\"} 4294967296",
        "alluvium_master_tier_used_bytes{tier=\"MEM\"} 268435456",
        "alluvium_master_rpc_total{method=\"Mount\",code=\"OK\"} 1",
        "alluvium_master_uptime_seconds",
    ] {
        assert!(prom.contains(needle), "{needle} missing in\n{prom}");
    }

    // Metrics page: the sampler's first sample is taken at start; the next ones see the calls.
    // Rate charts need three samples for two points (a line): with two, they show one dot.
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let v = json(web, "/api/v1/metrics").await;
        let has_ops = v["operations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["operation"] == "CreateFile" && o["component"] == "master");
        if has_ops && v["samples"].as_u64().unwrap() >= 3 {
            break v;
        }
        assert!(Instant::now() < deadline, "no third sample: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let op = v["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == "CreateFile")
        .unwrap();
    assert_eq!(op["total"], 7.0);
    // The fake worker's HTTP port answers nothing: counted, not fatal.
    assert_eq!(v["summary"]["workersFailed"], 1);
    let ids: Vec<&str> = v["charts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in [
        "master-ops",
        "master-latency",
        "bytes-read",
        "hit-ratio",
        "evictions",
        "tier-used",
    ] {
        assert!(ids.contains(&id), "{id} missing: {ids:?}");
    }
    let s = page(web, "/stats").await;
    assert!(
        s.contains("Cache hit ratio") && s.contains("<polyline"),
        "{s}"
    );
    assert!(s.contains("CreateFile"), "{s}");

    // Unknown paths.
    let (code, ctype, _) = get(web, "/nope").await;
    assert_eq!((code, ctype.starts_with("text/html")), (404, true));
    let (code, ctype, _) = get(web, "/api/v1/nope").await;
    assert_eq!((code, ctype.as_str()), (404, "application/json"));
    assert_eq!(get(web, "/healthz").await.0, 200);

    drop((fs, bm));
    server.shutdown().await.unwrap();
}

#[test]
fn uris_lose_their_credentials() {
    use super::mounts::sanitize_uri;
    assert_eq!(sanitize_uri("s3://bucket/x"), "s3://bucket/x");
    assert_eq!(
        sanitize_uri("webhdfs://alice:pw@namenode:9870/data"),
        "webhdfs://******@namenode:9870/data"
    );
    assert_eq!(
        sanitize_uri("s3://b/p?region=eu&secret_access_key=abc&x=1"),
        "s3://b/p?region=eu&secret_access_key=******&x=1"
    );
    assert_eq!(sanitize_uri("file:///tmp/ufs"), "file:///tmp/ufs");
    assert_eq!(sanitize_uri("/tmp/plain"), "/tmp/plain");
}
