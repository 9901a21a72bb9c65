//! Cold vs warm: a dataset of many files in an S3 under-storage that adds 20 ms to every request,
//! read once from the UFS (cold) and then again from Alluvium's cache (warm).
//!
//! The "remote object store" is a second in-process Alluvium (its own master and worker, a
//! `file://` root UFS on disk holding the dataset, `NO_CACHE` reads so it serves from disk like a
//! plain store) behind its S3 gateway, with a [`DelayProxy`] in front. The bench cluster mounts
//! that as `s3://dataset/` with endpoint and credentials options, as any S3 UFS. Each run mounts at
//! a fresh path, so its cold read finds neither metadata nor blocks cached.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_client::{FileSystem, MountOptions};
use alluvium_common::{Error, Result};
use futures::future::try_join_all;

use super::{blocking, client_read_all, shared_chunk};
use crate::baseline;
use crate::cluster::{gateway_addrs, BenchCluster, ClusterSpec, S3_KEY, S3_REGION, S3_SECRET};
use crate::delay_proxy::DelayProxy;
use crate::report::{Report, Stat};
use crate::Plan;

const BUCKET: &str = "dataset";
const DELAY: Duration = Duration::from_millis(20);
/// Files read at a time, as one data-loading client does.
const READERS: usize = 1;
const TARGET: f64 = 30.0;

pub async fn run(c: &BenchCluster, report: &mut Report, plan: &Plan) -> Result<()> {
    let remote = BenchCluster::start(ClusterSpec {
        mem_quota: 256 << 20,
        read_type: "NO_CACHE".into(),
        label: "remote-store",
    })
    .await
    .map_err(|e| e.context("starting the remote object store's cluster"))?;
    let result = with_remote(c, &remote, report, plan).await;
    let stopped = remote.shutdown().await;
    result?;
    stopped
}

async fn with_remote(
    c: &BenchCluster,
    remote: &BenchCluster,
    report: &mut Report,
    plan: &Plan,
) -> Result<()> {
    let per_file = plan.dataset_bytes / plan.dataset_files.max(1) as u64;
    {
        let (dir, files) = (remote.ufs_dir().join(BUCKET), plan.dataset_files);
        blocking(move || write_dataset(&dir, files, per_file)).await?;
    }
    let gateway = remote.start_gateways().await?;
    let (s3_addr, _) = gateway_addrs(&gateway)?;
    let proxy = DelayProxy::start(&format!("http://{s3_addr}"), DELAY).await?;
    let measured = measure(c, &proxy, plan).await;
    let p = proxy.shutdown().await;
    let g = gateway.shutdown().await;
    let runs = measured?;
    p?;
    g?;

    let cold: Vec<f64> = runs.iter().map(|r| r.cold).collect();
    let warm: Vec<f64> = runs.iter().map(|r| r.warm).collect();
    let requests = runs.iter().map(|r| r.cold_requests).max().unwrap_or(0);
    let label = format!(
        "{} files / {} MiB, {READERS} reader",
        plan.dataset_files,
        plan.dataset_bytes >> 20
    );
    report.add_absolute(
        format!("cold read from an S3 UFS adding 20 ms per request ({label})"),
        "MiB/s",
        Stat::of(&cold),
        "-",
        None,
        None,
    );
    report.note(format!(
        "the S3 UFS is a second in-process Alluvium's S3 gateway behind a reverse proxy that \
         waits 20 ms per request; a cold run (list + read every file, caching it) made up to \
         {requests} UFS requests; each run mounts the bucket at a fresh path"
    ));
    report.add(
        format!("warm read of the same dataset from cache ({label})"),
        "MiB/s",
        Stat::of(&warm),
        "the cold run",
        Some(Stat::of(&cold)),
        Some(TARGET),
    );
    Ok(())
}

/// Files `f-00000`.. of `bytes` each, in the remote store's UFS directory (bucket).
fn write_dataset(dir: &std::path::Path, files: usize, bytes: u64) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::from(e).context(format!("creating {}", dir.display())))?;
    let data = shared_chunk();
    for i in 0..files {
        baseline::file_write(&dir.join(file_name(i)), bytes, &data)?;
    }
    Ok(())
}

fn file_name(i: usize) -> String {
    format!("f-{i:05}")
}

struct Run {
    cold: f64,
    warm: f64,
    cold_requests: u64,
}

async fn measure(c: &BenchCluster, proxy: &DelayProxy, plan: &Plan) -> Result<Vec<Run>> {
    let fs = c.client(true).await?;
    let mut options = BTreeMap::new();
    options.insert("endpoint".to_string(), proxy.url());
    options.insert("region".to_string(), S3_REGION.to_string());
    options.insert("access_key_id".to_string(), S3_KEY.to_string());
    options.insert("secret_access_key".to_string(), S3_SECRET.to_string());
    let mut runs = Vec::with_capacity(plan.runs);
    for run in 0..plan.runs {
        let path = format!("/coldwarm-{run}");
        fs.mount(
            &path,
            &format!("s3://{BUCKET}/"),
            MountOptions {
                read_only: true,
                options: options.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.context(format!("mounting the slow S3 store at {path}")))?;
        let result = cold_then_warm(&fs, proxy, &path, plan).await;
        let unmounted = fs.unmount(&path).await;
        runs.push(result?);
        unmounted?;
    }
    Ok(runs)
}

async fn cold_then_warm(
    fs: &FileSystem,
    proxy: &DelayProxy,
    path: &str,
    plan: &Plan,
) -> Result<Run> {
    let before = proxy.requests();
    let cold = read_dataset(fs, path, plan).await?;
    let cold_requests = proxy.requests() - before;
    let warm = read_dataset(fs, path, plan).await?;
    Ok(Run {
        cold,
        warm,
        cold_requests,
    })
}

/// MiB/s of listing `dir` and reading every file in it, [`READERS`] files at a time.
async fn read_dataset(fs: &FileSystem, dir: &str, plan: &Plan) -> Result<f64> {
    let start = Instant::now();
    let files: Vec<String> = fs
        .list_status(dir, false)
        .await?
        .into_iter()
        .filter(|f| !f.is_folder)
        .map(|f| f.path)
        .collect();
    if files.len() != plan.dataset_files {
        return Err(Error::internal(format!(
            "{dir}: the slow S3 store lists {} files, expected {}",
            files.len(),
            plan.dataset_files
        )));
    }
    let files = Arc::new(files);
    let tasks = (0..READERS).map(|r| {
        let (fs, files) = (fs.clone(), files.clone());
        tokio::spawn(async move {
            let mut total = 0u64;
            for f in files.iter().skip(r).step_by(READERS) {
                total += client_read_all(&fs, f).await?;
            }
            Ok::<_, Error>(total)
        })
    });
    let mut total = 0u64;
    for t in try_join_all(tasks)
        .await
        .map_err(|e| Error::internal(format!("dataset reader: {e}")))?
    {
        total += t?;
    }
    let expected =
        plan.dataset_bytes / plan.dataset_files.max(1) as u64 * plan.dataset_files as u64;
    if total != expected {
        return Err(Error::internal(format!(
            "{dir}: read {total} of {expected} bytes"
        )));
    }
    Ok(baseline::mib_per_s(total, start))
}
