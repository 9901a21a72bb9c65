//! The scenarios, one file each, and what they share: writing and reading whole files through the
//! client, the sequential file several scenarios read, and running blocking baselines.

mod coldwarm;
mod fuse;
mod gateway;
mod memory;
mod metadata;
mod random;
mod sequential;

use std::sync::Arc;
use std::time::Instant;

use alluvium_client::{CreateFileOptions, FileSystem, OpenFileOptions, ReadType, WriteType};
use alluvium_common::{Error, Result};
use futures::future::try_join_all;

use crate::baseline::{self, CHUNK};
use crate::cluster::BenchCluster;
use crate::report::Report;
use crate::{Plan, Scenario};

/// The file `seq` leaves behind and `random`, `fuse` and `gateway` read.
pub const SEQ_FILE: &str = "/bench/seq";

/// Runs `chosen` in order. A scenario that fails is reported as a skipped row with its error and
/// the others still run; the bench then fails after the report is printed.
pub async fn run_all(
    c: &BenchCluster,
    report: &mut Report,
    plan: &Plan,
    chosen: &[Scenario],
) -> Result<()> {
    let mut failed = Vec::new();
    for &s in chosen {
        let start = Instant::now();
        eprintln!("bench: running {s:?}");
        let result = match s {
            Scenario::Seq => sequential::run(c, report, plan).await,
            Scenario::Random => random::run(c, report, plan).await,
            Scenario::Metadata => metadata::run(c, report, plan).await,
            Scenario::Fuse => fuse::run(c, report, plan).await,
            Scenario::Gateway => gateway::run(c, report, plan).await,
            Scenario::Coldwarm => coldwarm::run(c, report, plan).await,
            Scenario::Memory => memory::run(report, plan).await,
        };
        eprintln!(
            "bench: {s:?} done in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        if let Err(e) = result {
            eprintln!("bench: {s:?} failed: {}", e.message);
            report.skip(format!("{s:?}"), "", format!("FAILED: {}", e.message));
            failed.push(format!("{s:?}: {}", e.message));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{} scenario(s) failed: {}",
            failed.len(),
            failed.join("; ")
        )))
    }
}

/// One 4 MiB buffer of non-trivial bytes, shared by every writer.
pub fn shared_chunk() -> Vec<u8> {
    (0..CHUNK)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
        .collect()
}

/// Runs blocking work (a baseline, an external program) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("benchmark task: {e}")))?
}

pub fn create_opts() -> CreateFileOptions {
    CreateFileOptions {
        write_type: WriteType::MustCache,
        recursive: true,
        ..Default::default()
    }
}

/// MiB/s of writing `size` bytes as one file through the client.
pub async fn client_write(
    fs: &FileSystem,
    path: &str,
    size: u64,
    chunk: &bytes::Bytes,
) -> Result<f64> {
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

/// How a reader takes the bytes the client gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadInto {
    /// `read(&mut buf)`: copied into the caller's 4 MiB buffer, as read(2) does.
    Buffer,
    /// `read_bytes`: slices of the mapped block (short-circuit) or of the received message
    /// (remote), handed over without a copy: what the short-circuit mmap path exists for.
    ZeroCopy,
}

/// Reads a whole file sequentially through the client; returns the bytes read.
pub async fn client_read_all(fs: &FileSystem, path: &str) -> Result<u64> {
    client_read_all_into(fs, path, ReadInto::Buffer).await
}

async fn client_read_all_into(fs: &FileSystem, path: &str, into: ReadInto) -> Result<u64> {
    let mut input = fs
        .open_file(
            path,
            OpenFileOptions {
                read_type: ReadType::Cache,
            },
        )
        .await?;
    let mut total = 0u64;
    match into {
        ReadInto::Buffer => {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = input.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        ReadInto::ZeroCopy => loop {
            let chunk = input.read_bytes(CHUNK).await?;
            if chunk.is_empty() {
                break;
            }
            total += chunk.len() as u64;
        },
    }
    input.close().await?;
    Ok(total)
}

/// MiB/s of reading a whole file sequentially through the client, checking its length.
pub async fn client_read(fs: &FileSystem, path: &str) -> Result<f64> {
    client_read_into(fs, path, ReadInto::Buffer).await
}

/// [`client_read`], taking the bytes as `into` says.
pub async fn client_read_into(fs: &FileSystem, path: &str, into: ReadInto) -> Result<f64> {
    let start = Instant::now();
    let total = client_read_all_into(fs, path, into).await?;
    let rate = baseline::mib_per_s(total, start);
    let len = fs.get_status(path).await?.length;
    if total != len {
        return Err(Error::internal(format!(
            "{path}: short read of {total} of {len} bytes"
        )));
    }
    Ok(rate)
}

/// Bytes in the files under `dir`, recursively (0 when it does not exist).
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Waits (up to 10 s) until the worker's MEM tier holds at most `bytes`: a deleted file's blocks
/// leave the worker at its next heartbeat, and a write measured while they are still there gets
/// never-used memory from the kernel (and, in a VM, from the hypervisor), which costs several
/// times more than reusing freed pages, as the write(2) baseline does when it rewrites its file.
pub async fn wait_for_tier_at_most(c: &BenchCluster, bytes: u64) -> Result<()> {
    let dir = c.mem_tier_dir();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let used = dir_bytes(&dir);
        if used <= bytes {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::internal(format!(
                "the worker still holds {used} bytes in {} 10 s after a delete (expected at most {bytes})",
                dir.display()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Makes sure [`SEQ_FILE`] exists with `size` bytes (written by `seq`, or here when `seq` was not
/// chosen), fully cached.
pub async fn ensure_seq_file(c: &BenchCluster, size: u64) -> Result<()> {
    let fs = c.client(true).await?;
    match fs.get_status(SEQ_FILE).await {
        Ok(info) if info.length == size && info.in_memory_percentage == 100 => return Ok(()),
        Ok(_) => {
            fs.delete(SEQ_FILE, Default::default()).await?;
        }
        Err(e) if e.code == alluvium_common::ErrorCode::NotFound => {}
        Err(e) => return Err(e),
    }
    let chunk = bytes::Bytes::from(shared_chunk());
    client_write(&fs, SEQ_FILE, size, &chunk).await?;
    Ok(())
}

/// Runs `op(i)` for i in 0..n at `concurrency`; returns (ops/s, per-op latencies in µs).
pub async fn run_ops<F, Fut>(n: usize, concurrency: usize, op: F) -> Result<(f64, Vec<f64>)>
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterSpec;

    /// Every scenario end to end at toy sizes against a real in-process cluster: each leaves its
    /// rows in the report, with figures or with the reason it could not run here (FUSE without
    /// root, `memory` without the alluvium binary: set ALLUVIUM_BIN to include it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_scenario_reports_its_rows() {
        let plan = Plan {
            quick: true,
            runs: 1,
            size: 8 << 20,
            files: 100,
            random_ops: (200, 50),
            fio_runtime_s: 1,
            dataset_files: 4,
            dataset_bytes: 4 << 20,
            master_files: 500,
            worker_file_bytes: 1 << 20,
            worker_load_s: 1,
        };
        let c = BenchCluster::start(ClusterSpec::for_bench(plan.size))
            .await
            .unwrap();
        let mut report = Report::new(&plan);
        let result = run_all(&c, &mut report, &plan, &Scenario::ALL).await;
        c.shutdown().await.unwrap();
        let md = report.markdown();
        result.unwrap_or_else(|e| panic!("{}\n{md}", e.message));
        for row in [
            "sequential read, short-circuit",
            "4 KiB random reads of a cached file, 16 thread(s)",
            "metadata delete, concurrency 40",
            "FUSE: fio sequential 1 MiB reads",
            "FUSE: fio 4 KiB random reads",
            "S3 gateway GET",
            "WebHDFS gateway GET",
            "cold read from an S3 UFS",
            "warm read of the same dataset",
            "master RSS per file",
        ] {
            let f = report
                .figures
                .iter()
                .find(|f| f.scenario.starts_with(row) || f.scenario.contains(row))
                .unwrap_or_else(|| panic!("no row '{row}' in\n{md}"));
            assert!(
                f.value.as_ref().is_some_and(|v| v.median > 0.0) || f.skipped.is_some(),
                "row '{row}' has neither a figure nor a reason:\n{md}"
            );
        }
        let warm = report
            .figures
            .iter()
            .find(|f| f.scenario.starts_with("warm read"))
            .unwrap();
        assert!(warm.ratio.is_some(), "{md}");
        for gw in ["S3 gateway GET", "WebHDFS gateway GET"] {
            let f = report
                .figures
                .iter()
                .find(|f| f.scenario.starts_with(gw))
                .unwrap();
            assert!(f.value.is_some(), "{md}");
        }
    }
}
