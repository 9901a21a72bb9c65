//! FUSE: fio sequential 1 MiB reads and 4 KiB random reads of the cached sequential file through
//! a FUSE mount of the bench cluster (mounted in this process), beside the same fio jobs on a
//! /dev/shm file of the same size. fio's page-cache invalidation runs before every job, so each
//! run reaches the FUSE daemon rather than the kernel's cache of the previous run.

use std::path::{Path, PathBuf};

use alluvium_common::{Error, Result};
use alluvium_fuse::{mount_background, FuseMountHandle, FuseOptions};

use super::{blocking, ensure_seq_file, shared_chunk, SEQ_FILE};
use crate::baseline;
use crate::cluster::BenchCluster;
use crate::fio::{self, FioJob, FioResult};
use crate::report::{Report, Stat};
use crate::Plan;

const SEQ_TARGET: &str = ">= 0.5x";
const RANDOM_TARGET_IOPS: f64 = 40_000.0;

fn names(plan: &Plan) -> (String, String) {
    (
        format!(
            "FUSE: fio sequential 1 MiB reads of {} MiB",
            plan.size >> 20
        ),
        format!(
            "FUSE: fio 4 KiB random reads, 1 job, {} s",
            plan.fio_runtime_s
        ),
    )
}

fn random_target() -> String {
    format!(">= {RANDOM_TARGET_IOPS:.0} IOPS")
}

pub async fn run(c: &BenchCluster, report: &mut Report, plan: &Plan) -> Result<()> {
    let (seq_name, rand_name) = names(plan);
    let Some(fio) = fio::find_fio() else {
        let why = "fio not found (apt-get install fio; scripts/setup.sh installs it)";
        report.skip(seq_name, SEQ_TARGET, why);
        report.skip(rand_name, &random_target(), why);
        return Ok(());
    };
    ensure_seq_file(c, plan.size).await?;
    let shm_file = c.shm.path().join("fio-baseline.bin");
    {
        let (p, size) = (shm_file.clone(), plan.size);
        let data = shared_chunk();
        blocking(move || baseline::file_write(&p, size, &data)).await?;
    }
    let mnt = tempfile::Builder::new()
        .prefix("alluvium-bench-fuse-")
        .tempdir()
        .map_err(|e| Error::from(e).context("creating the FUSE mount point"))?;
    let handle = mount(c, mnt.path(), FuseOptions::default()).await;
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            let why = format!("cannot mount FUSE here: {}", e.message);
            report.skip(seq_name, SEQ_TARGET, why.clone());
            report.skip(rand_name, &random_target(), why);
            let _ = std::fs::remove_file(&shm_file);
            return Ok(());
        }
    };
    let fuse_file = mnt.path().join(SEQ_FILE.trim_start_matches('/'));
    let measured = measure(&fio, &fuse_file, &shm_file, plan).await;
    let unmounted = unmount(handle).await;
    // The same sequential job on a direct_io mount: no page cache between fio and the daemon.
    let direct = match measured {
        Ok(_) => {
            let opts = FuseOptions {
                direct_io: true,
                ..FuseOptions::default()
            };
            let handle = mount(c, mnt.path(), opts).await?;
            let mut runs = Vec::with_capacity(plan.runs);
            let mut failed = None;
            for _ in 0..plan.runs {
                match run_job(&fio, seq_job(&fuse_file, plan)).await {
                    Ok(r) => runs.push(r.mib_per_s()),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            unmount(handle).await?;
            match failed {
                Some(e) => Err(e),
                None => Ok(runs),
            }
        }
        Err(_) => Ok(vec![]),
    };
    let _ = std::fs::remove_file(&shm_file);
    let runs = measured?;
    unmounted?;
    let direct = direct?;

    let seq_fuse: Vec<f64> = runs.iter().map(|r| r.seq_fuse.mib_per_s()).collect();
    let seq_shm: Vec<f64> = runs.iter().map(|r| r.seq_shm.mib_per_s()).collect();
    let rand_fuse: Vec<f64> = runs.iter().map(|r| r.rand_fuse.iops).collect();
    let rand_shm: Vec<f64> = runs.iter().map(|r| r.rand_shm.iops).collect();
    report.add(
        seq_name,
        "MiB/s",
        Stat::of(&seq_fuse),
        "the same fio job on /dev/shm",
        Some(Stat::of(&seq_shm)),
        Some(0.5),
    );
    report.note(
        "fio --ioengine=psync --invalidate=1 --numjobs=1 of the cached sequential file through \
         `alluvium fuse` (default options: kernel_cache, max_readahead=1MiB, threads=4), the FUSE \
         daemon in the bench process reading short-circuit",
    );
    report.add(
        format!(
            "FUSE -o direct_io: fio sequential 1 MiB reads of {} MiB",
            plan.size >> 20
        ),
        "MiB/s",
        Stat::of(&direct),
        "the same fio job on /dev/shm",
        Some(Stat::of(&seq_shm)),
        None,
    );
    report.note(
        "direct_io: the kernel hands each read to the daemon, which answers from the mapped \
         block straight into fio's buffer (one copy, no page cache)",
    );
    let rand = Stat::of(&rand_fuse);
    let met = rand.median >= RANDOM_TARGET_IOPS;
    report.add_absolute(
        rand_name,
        "IOPS",
        rand,
        "the same fio job on /dev/shm",
        Some(Stat::of(&rand_shm)),
        Some((random_target(), met)),
    );
    Ok(())
}

struct FioRun {
    seq_fuse: FioResult,
    seq_shm: FioResult,
    rand_fuse: FioResult,
    rand_shm: FioResult,
}

/// Every run: sequential then random, each on the mount and then on /dev/shm.
async fn measure(
    fio: &Path,
    fuse_file: &Path,
    shm_file: &Path,
    plan: &Plan,
) -> Result<Vec<FioRun>> {
    let job = |file: &Path, rw: &'static str, bs: u64, runtime_s: Option<u64>| FioJob {
        file: file.to_path_buf(),
        rw,
        bs,
        size: plan.size,
        runtime_s,
    };
    let mut runs = Vec::with_capacity(plan.runs);
    for _ in 0..plan.runs {
        let rt = Some(plan.fio_runtime_s);
        runs.push(FioRun {
            seq_fuse: run_job(fio, job(fuse_file, "read", 1 << 20, None)).await?,
            seq_shm: run_job(fio, job(shm_file, "read", 1 << 20, None)).await?,
            rand_fuse: run_job(fio, job(fuse_file, "randread", 4096, rt)).await?,
            rand_shm: run_job(fio, job(shm_file, "randread", 4096, rt)).await?,
        });
    }
    Ok(runs)
}

fn seq_job(file: &Path, plan: &Plan) -> FioJob {
    FioJob {
        file: file.to_path_buf(),
        rw: "read",
        bs: 1 << 20,
        size: plan.size,
        runtime_s: None,
    }
}

async fn mount(c: &BenchCluster, mnt: &Path, opts: FuseOptions) -> Result<FuseMountHandle> {
    let (config, mp) = (c.config.clone(), mnt.to_path_buf());
    blocking(move || mount_background(&config, "/", &mp, &opts)).await
}

async fn run_job(fio: &Path, job: FioJob) -> Result<FioResult> {
    let fio: PathBuf = fio.to_path_buf();
    blocking(move || fio::run(&fio, &job)).await
}

async fn unmount(handle: FuseMountHandle) -> Result<()> {
    blocking(move || handle.unmount())
        .await
        .map_err(|e| e.context("unmounting the bench's FUSE mount"))
}
