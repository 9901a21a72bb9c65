//! The scenarios: sequential write and read (short-circuit and remote), 4 KiB random reads, and
//! metadata operations at concurrency 1 and 40, each beside its baseline.

use std::sync::Arc;
use std::time::Instant;

use alluvium_client::{
    CreateFileOptions, DeleteOptions, FileSystem, OpenFileOptions, ReadType, WriteType,
};
use alluvium_common::{Error, Result};
use futures::future::try_join_all;

use crate::baseline::{self, percentile, Rng, CHUNK};
use crate::cluster::BenchCluster;
use crate::report::{Report, Stat};

/// One 4 MiB buffer of non-trivial bytes, shared by every writer.
fn shared_chunk() -> Vec<u8> {
    (0..CHUNK)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("benchmark task: {e}")))?
}

fn create_opts() -> CreateFileOptions {
    CreateFileOptions {
        write_type: WriteType::MustCache,
        recursive: true,
        ..Default::default()
    }
}

/// MiB/s of writing `size` bytes as one file through the client.
async fn client_write(fs: &FileSystem, path: &str, size: u64, chunk: &bytes::Bytes) -> Result<f64> {
    let start = Instant::now();
    let mut out = fs.create_file(path, create_opts()).await?;
    let mut left = size as usize;
    while left > 0 {
        let n = left.min(chunk.len());
        out.write_bytes(chunk.slice(..n)).await?;
        left -= n;
    }
    out.close().await?;
    Ok(baseline::mib_per_s(size, start))
}

/// MiB/s of reading a whole file sequentially through the client.
async fn client_read(fs: &FileSystem, path: &str) -> Result<f64> {
    let start = Instant::now();
    let mut input = fs
        .open_file(
            path,
            OpenFileOptions {
                read_type: ReadType::Cache,
            },
        )
        .await?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    input.close().await?;
    if total != input_len(fs, path).await? {
        return Err(Error::internal(format!(
            "{path}: short read of {total} bytes"
        )));
    }
    Ok(baseline::mib_per_s(total, start))
}

async fn input_len(fs: &FileSystem, path: &str) -> Result<u64> {
    Ok(fs.get_status(path).await?.length)
}

pub async fn sequential(
    c: &BenchCluster,
    report: &mut Report,
    size: u64,
    runs: usize,
) -> Result<()> {
    let chunk = shared_chunk();
    let chunk_bytes = bytes::Bytes::from(chunk.clone());
    let chunk = Arc::new(chunk);
    let local = c.client(true).await?;
    let remote = c.client(false).await?;
    let shm_file = c.shm.path().join("baseline.bin");

    let (mut shm_w, mut sc_w, mut remote_w) = (vec![], vec![], vec![]);
    let (mut shm_r, mut sc_r, mut remote_r, mut tcp) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let (p, d) = (shm_file.clone(), chunk.clone());
        shm_w.push(blocking(move || baseline::file_write(&p, size, &d)).await?);
        sc_w.push(client_write(&local, &format!("/bench/w-sc-{run}"), size, &chunk_bytes).await?);
        local
            .delete(&format!("/bench/w-sc-{run}"), DeleteOptions::default())
            .await?;
        remote_w.push(
            client_write(
                &remote,
                &format!("/bench/w-remote-{run}"),
                size,
                &chunk_bytes,
            )
            .await?,
        );
        remote
            .delete(&format!("/bench/w-remote-{run}"), DeleteOptions::default())
            .await?;
    }
    client_write(&local, "/bench/seq", size, &chunk_bytes).await?;
    for _ in 0..runs {
        let p = shm_file.clone();
        shm_r.push(blocking(move || baseline::file_read(&p)).await?);
        sc_r.push(client_read(&local, "/bench/seq").await?);
        remote_r.push(client_read(&remote, "/bench/seq").await?);
        let d = chunk.clone();
        tcp.push(blocking(move || baseline::tcp_stream(size, &d)).await?);
    }
    let _ = std::fs::remove_file(&shm_file);

    let mib = format!("{} MiB", size >> 20);
    report.add(
        format!("{mib} sequential read, short-circuit (mmap)"),
        "MiB/s",
        Stat::of(&sc_r),
        "read(2) of a /dev/shm file",
        Some(Stat::of(&shm_r)),
        Some(1.2),
    );
    report.add(
        format!("{mib} sequential read, remote worker over loopback gRPC"),
        "MiB/s",
        Stat::of(&remote_r),
        "raw loopback TCP stream",
        Some(Stat::of(&tcp)),
        Some(0.8),
    );
    report.add(
        format!("{mib} sequential write MUST_CACHE, short-circuit"),
        "MiB/s",
        Stat::of(&sc_w),
        "write(2) to a /dev/shm file",
        Some(Stat::of(&shm_w)),
        Some(0.8),
    );
    report.add(
        format!("{mib} sequential write MUST_CACHE, remote worker over gRPC"),
        "MiB/s",
        Stat::of(&remote_w),
        "write(2) to a /dev/shm file",
        Some(Stat::of(&shm_w)),
        None,
    );
    report.add(
        format!("{mib} sequential read, remote (vs /dev/shm)"),
        "MiB/s",
        Stat::of(&remote_r),
        "read(2) of a /dev/shm file",
        Some(Stat::of(&shm_r)),
        None,
    );
    Ok(())
}

/// 4 KiB reads at random offsets of the cached sequential file, through short-circuit reads.
pub async fn random_reads(
    c: &BenchCluster,
    report: &mut Report,
    size: u64,
    runs: usize,
) -> Result<()> {
    let fs = c.client(true).await?;
    let shm_file = c.shm.path().join("random.bin");
    let chunk = Arc::new(shared_chunk());
    {
        let (p, d) = (shm_file.clone(), chunk.clone());
        blocking(move || baseline::file_write(&p, size, &d)).await?;
    }
    for threads in [1usize, 16] {
        let ops = if threads == 1 { 50_000 } else { 10_000 };
        let (mut ours, mut base) = (vec![], vec![]);
        for _ in 0..runs {
            let p = shm_file.clone();
            base.push(blocking(move || baseline::pread_random(&p, size, threads, ops)).await?);
            let start = Instant::now();
            let tasks = (0..threads).map(|t| {
                let fs = fs.clone();
                tokio::spawn(async move {
                    let mut input = fs
                        .open_file("/bench/seq", OpenFileOptions::default())
                        .await?;
                    let mut rng = Rng::new(t as u64 + 11);
                    let mut buf = [0u8; 4096];
                    for _ in 0..ops {
                        let off = rng.below(size / 4096) * 4096;
                        input.read_at(off, &mut buf).await?;
                    }
                    input.close().await
                })
            });
            for r in try_join_all(tasks)
                .await
                .map_err(|e| Error::internal(format!("random read task: {e}")))?
            {
                r?;
            }
            ours.push((threads * ops) as f64 / start.elapsed().as_secs_f64());
        }
        report.add(
            format!("4 KiB random reads of a cached file, {threads} thread(s)"),
            "IOPS",
            Stat::of(&ours),
            "pread(2) on /dev/shm",
            Some(Stat::of(&base)),
            None,
        );
    }
    let _ = std::fs::remove_file(&shm_file);
    Ok(())
}

/// Runs `op(i)` for i in 0..n at `concurrency`; returns (ops/s, per-op latencies in µs).
async fn run_ops<F, Fut>(n: usize, concurrency: usize, op: F) -> Result<(f64, Vec<f64>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let tasks = (0..concurrency).map(|w| {
        let op = op.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n / concurrency + 1);
            let mut i = w;
            while i < n {
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
                i += concurrency;
            }
            Ok::<_, Error>(lat)
        })
    });
    let mut all = Vec::with_capacity(n);
    for r in try_join_all(tasks)
        .await
        .map_err(|e| Error::internal(format!("metadata task: {e}")))?
    {
        all.extend(r?);
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), all))
}

pub async fn metadata(c: &BenchCluster, report: &mut Report, files: usize) -> Result<()> {
    let rtt = blocking(|| baseline::tcp_round_trips(10_000)).await?;
    let rtt_p50 = percentile(&rtt, 50.0);
    let rtt_qps = 1e6 / rtt_p50.max(1e-3);
    report.add_absolute(
        "loopback TCP round trip (baseline)",
        "µs p50",
        Stat::of(&[rtt_p50]),
        format!("p99 {:.1} µs", percentile(&rtt, 99.0)),
        None,
        None,
    );
    let fs = c.client(true).await?;
    for concurrency in [1usize, 40] {
        let dir = format!("/meta-c{concurrency}");
        // 100 files per directory.
        let path = {
            let dir = dir.clone();
            move |i: usize| format!("{dir}/d{}/f{i}", i / 100)
        };
        let mut rows: Vec<(&str, f64, Vec<f64>)> = Vec::new();

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, p) = (f.clone(), p(i));
            async move {
                f.create_file(&p, create_opts())
                    .await?
                    .close()
                    .await
                    .map(|_| ())
            }
        })
        .await?;
        rows.push(("create", qps, lat));

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, p) = (f.clone(), p(i));
            async move { f.get_status(&p).await.map(|_| ()) }
        })
        .await?;
        rows.push(("get status", qps, lat));

        let (f, d) = (fs.clone(), dir.clone());
        let dirs = files.div_ceil(100);
        let (qps, lat) = run_ops(dirs.max(1) * 10, concurrency, move |i| {
            let (f, p) = (f.clone(), format!("{d}/d{}", i % dirs.max(1)));
            async move { f.list_status(&p, false).await.map(|_| ()) }
        })
        .await?;
        rows.push(("list (100 entries)", qps, lat));

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, from) = (f.clone(), p(i));
            async move { f.rename(&from, &format!("{from}.r")).await }
        })
        .await?;
        rows.push(("rename", qps, lat));

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, p) = (f.clone(), format!("{}.r", p(i)));
            async move { f.delete(&p, DeleteOptions::default()).await }
        })
        .await?;
        rows.push(("delete", qps, lat));

        for (name, qps, lat) in rows {
            let p50 = percentile(&lat, 50.0);
            let p99 = percentile(&lat, 99.0);
            let target = match (concurrency, name) {
                (1, _) => Some(("p50 <= 5x RTT".to_string(), p50 <= 5.0 * rtt_p50)),
                (40, "create") => Some((">= 10000/s".to_string(), qps >= 10_000.0)),
                (40, "get status") => Some((">= 30000/s".to_string(), qps >= 30_000.0)),
                _ => None,
            };
            report.add_absolute(
                format!(
                    "metadata {name}, concurrency {concurrency} (p50 {p50:.0} µs, p99 {p99:.0} µs)"
                ),
                "ops/s",
                Stat::of(&[qps]),
                "loopback round trips/s at concurrency 1",
                Some(Stat::of(&[rtt_qps])),
                target,
            );
        }
        fs.delete(
            &dir,
            DeleteOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}
