//! Memory: resident set of a master holding many files, and of a worker idle and under 40
//! concurrent readers. Both run as their own processes (`alluvium master`, `alluvium worker`
//! with a generated config), so `/proc/<pid>/status` counts only them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_client::FileSystem;
use alluvium_common::config::TierConfig;
use alluvium_common::{ByteSize, Config, Error, Result};
use tempfile::TempDir;

use super::{client_read_all, client_write, create_opts, run_ops, shared_chunk};
use crate::cluster::{client_of, shm_tempdir, wait_for_worker};
use crate::process::{alluvium_exe, free_port, write_config, ServerProcess};
use crate::procfs::{self, mib, MemStatus};
use crate::report::{Report, Stat};
use crate::Plan;

const CONCURRENCY: usize = 40;
const READERS: usize = 40;
const FILES_PER_DIR: usize = 1000;
const TARGET_BYTES_PER_FILE: f64 = 300.0;

pub async fn run(report: &mut Report, plan: &Plan) -> Result<()> {
    let per_file_name = format!(
        "master RSS per file, {} files (separate process)",
        plan.master_files
    );
    let exe = match alluvium_exe() {
        Ok(e) => e,
        Err(e) => {
            report.skip(
                per_file_name,
                &format!("<= {TARGET_BYTES_PER_FILE:.0} B/file"),
                e.message,
            );
            return Ok(());
        }
    };
    let procs = Processes::start(&exe, plan).await?;
    let result = measure(&procs, report, plan).await;
    let stopped = procs.stop().await;
    result?;
    stopped
}

/// A master and a worker process and their temp dirs (removed on drop, after the processes).
struct Processes {
    master: ServerProcess,
    worker: ServerProcess,
    config: Config,
    _dir: TempDir,
    _shm: TempDir,
}

impl Processes {
    async fn start(exe: &std::path::Path, plan: &Plan) -> Result<Processes> {
        let dir = tempfile::Builder::new()
            .prefix("alluvium-bench-memory-")
            .tempdir()
            .map_err(|e| Error::from(e).context("creating the memory scenario's temp dir"))?;
        let shm = shm_tempdir("alluvium-bench-memory-")?;
        let mut c = Config::default();
        c.master.bind_host = "127.0.0.1".into();
        c.master.hostname = "127.0.0.1".into();
        c.master.rpc_port = free_port()?;
        c.master.web_port = free_port()?;
        c.master.metastore_dir = dir.path().join("master");
        c.master.root_ufs = format!("file://{}", dir.path().join("ufs").display());
        std::fs::create_dir_all(dir.path().join("ufs"))?;
        c.master_address = format!("127.0.0.1:{}", c.master.rpc_port);
        c.worker.bind_host = "127.0.0.1".into();
        c.worker.hostname = "127.0.0.1".into();
        c.worker.rpc_port = free_port()?;
        c.worker.web_port = free_port()?;
        c.worker.tiers = vec![TierConfig {
            alias: "MEM".into(),
            dirs: vec![shm.path().join("worker-mem")],
            quota: vec![ByteSize(
                plan.worker_file_bytes * READERS as u64 * 2 + (256 << 20),
            )],
            ..TierConfig::default()
        }];
        c.worker.high_watermark = 0.99;
        c.worker.low_watermark = 0.9;
        c.client.hostname = "127.0.0.1".into();
        let config_path = dir.path().join("alluvium.toml");
        write_config(&c, &config_path)?;

        let mut master =
            ServerProcess::spawn(exe, "master", &config_path, &dir.path().join("master.log"))?;
        wait_for_master(&c, &mut master).await?;
        let mut worker =
            ServerProcess::spawn(exe, "worker", &config_path, &dir.path().join("worker.log"))?;
        if let Err(e) = wait_for_worker(&c, Duration::from_secs(30)).await {
            worker.check_running()?;
            return Err(e);
        }
        Ok(Processes {
            master,
            worker,
            config: c,
            _dir: dir,
            _shm: shm,
        })
    }

    async fn stop(self) -> Result<()> {
        let Processes {
            master,
            worker,
            _dir,
            _shm,
            ..
        } = self;
        let stopped = tokio::task::spawn_blocking(move || {
            let w = worker.stop();
            let m = master.stop();
            w.and(m)
        })
        .await
        .map_err(|e| Error::internal(format!("stopping the memory scenario's servers: {e}")))?;
        stopped
    }
}

/// Polls the master process until it answers, failing early (with its log) when it exited.
async fn wait_for_master(c: &Config, master: &mut ServerProcess) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        master.check_running()?;
        if let Ok(fs) = client_of(c, true).await {
            if fs.master_info().await.is_ok() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err(Error::unavailable(format!(
                "alluvium master did not answer at {} within 30 s",
                c.master_address
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn measure(p: &Processes, report: &mut Report, plan: &Plan) -> Result<()> {
    let fs = client_of(&p.config, true).await?;
    // Idle: registered, heartbeating, nothing stored yet. Give it a few heartbeats to settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let worker_idle = procfs::mem_status(p.worker.pid())?;

    // One file first, so the "before" figure already includes the namespace's fixed costs
    // (RocksDB column families, caches warmed by the first create).
    fs.create_file("/mem/warmup", create_opts())
        .await?
        .close()
        .await?;
    let master_before = procfs::mem_status(p.master.pid())?;
    let n = plan.master_files;
    let f = fs.clone();
    let (rate, _) = run_ops(n, CONCURRENCY, move |i| {
        let (f, path) = (f.clone(), format!("/mem/d{}/f{i}", i / FILES_PER_DIR));
        async move {
            f.create_file(&path, create_opts())
                .await?
                .close()
                .await
                .map(|_| ())
        }
    })
    .await
    .map_err(|e| e.context("creating the master's files"))?;
    let master_after = procfs::mem_status(p.master.pid())?;
    let per_file = master_after.vm_rss.saturating_sub(master_before.vm_rss) as f64 / n as f64;
    report.add_absolute(
        format!("master RSS per file, {n} files (separate process)"),
        "B/file",
        Stat::of(&[per_file]),
        "-",
        None,
        Some((
            format!("<= {TARGET_BYTES_PER_FILE:.0} B/file"),
            per_file <= TARGET_BYTES_PER_FILE,
        )),
    );
    report.note(format!(
        "(VmRSS after - VmRSS before) / files of the `alluvium master` process; empty files \
         created and completed at concurrency {CONCURRENCY} ({rate:.0}/s), {FILES_PER_DIR} per \
         directory; before: {}; after: {}",
        describe(&master_before),
        describe(&master_after)
    ));
    report.add_absolute(
        format!("master RSS with {n} files"),
        "MiB",
        Stat::of(&[mib(master_after.vm_rss)]),
        "master RSS before the files",
        Some(Stat::of(&[mib(master_before.vm_rss)])),
        None,
    );

    let (load, reads) = worker_under_readers(p, plan).await?;
    report.add_absolute(
        "worker RSS idle (separate process)",
        "MiB",
        Stat::of(&[mib(worker_idle.vm_rss)]),
        "-",
        None,
        None,
    );
    report.note(format!(
        "VmRSS of the `alluvium worker` process: {}. MEM-tier blocks live in /dev/shm (tmpfs): \
         they count only while the worker maps them (RssShmem); pages it read(2)s are page \
         cache, not RSS",
        describe(&worker_idle)
    ));
    let loaded = Stat::of(&load.iter().map(|m| mib(m.vm_rss)).collect::<Vec<_>>());
    report.add_absolute(
        format!("worker RSS under {READERS} concurrent readers"),
        "MiB",
        loaded,
        "worker RSS idle",
        Some(Stat::of(&[mib(worker_idle.vm_rss)])),
        None,
    );
    let peak = load
        .iter()
        .max_by_key(|m| m.vm_rss)
        .copied()
        .unwrap_or_default();
    report.note(format!(
        "{READERS} clients streaming their own cached {} MiB file remotely (block transfer, no short-circuit) \
         for {} s at {reads:.0} MiB/s in total; VmRSS sampled every 100 ms, median/min/max over \
         the samples; at the peak: {}",
        plan.worker_file_bytes >> 20,
        plan.worker_load_s,
        describe(&peak)
    ));
    let anon = Stat::of(&load.iter().map(|m| mib(m.rss_anon)).collect::<Vec<_>>());
    report.add_absolute(
        format!("worker anonymous memory (RssAnon) under {READERS} readers"),
        "MiB",
        anon,
        "worker RssAnon idle",
        Some(Stat::of(&[mib(worker_idle.rss_anon)])),
        None,
    );
    report.note(
        "heap and stacks only: the worker's own memory, without the mapped MEM-tier blocks \
         (RssShmem) that the VmRSS row above includes",
    );
    Ok(())
}

fn describe(m: &MemStatus) -> String {
    format!(
        "VmRSS {:.1} MiB = anon {:.1} + file {:.1} + shmem {:.1} MiB",
        mib(m.vm_rss),
        mib(m.rss_anon),
        mib(m.rss_file),
        mib(m.rss_shmem)
    )
}

/// Writes one file per reader through the worker, then has every reader stream its file again
/// and again for `worker_load_s` while the worker's memory is sampled. Returns the samples and
/// the readers' total MiB/s.
async fn worker_under_readers(p: &Processes, plan: &Plan) -> Result<(Vec<MemStatus>, f64)> {
    let fs: FileSystem = client_of(&p.config, false).await?;
    let chunk = bytes::Bytes::from(shared_chunk());
    for r in 0..READERS {
        client_write(
            &fs,
            &format!("/readers/f{r}"),
            plan.worker_file_bytes,
            &chunk,
        )
        .await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let readers: Vec<_> = (0..READERS)
        .map(|r| {
            let (fs, stop) = (fs.clone(), stop.clone());
            tokio::spawn(async move {
                let mut total = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    total += client_read_all(&fs, &format!("/readers/f{r}")).await?;
                }
                Ok::<_, Error>(total)
            })
        })
        .collect();
    let pid = p.worker.pid();
    let mut samples = Vec::new();
    let deadline = start + Duration::from_secs(plan.worker_load_s);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        samples.push(procfs::mem_status(pid)?);
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    for r in readers {
        total += r
            .await
            .map_err(|e| Error::internal(format!("reader task: {e}")))??;
    }
    let rate = total as f64 / (1u64 << 20) as f64 / start.elapsed().as_secs_f64();
    Ok((samples, rate))
}
