//! 4 KiB reads at random offsets of the cached sequential file (short-circuit), at 1 and 16
//! threads, beside pread(2) of the same offsets pattern on /dev/shm.

use std::sync::Arc;
use std::time::Instant;

use alluvium_client::OpenFileOptions;
use alluvium_common::{Error, Result};
use futures::future::try_join_all;

use super::{blocking, ensure_seq_file, shared_chunk, SEQ_FILE};
use crate::baseline::{self, Rng};
use crate::cluster::BenchCluster;
use crate::report::{Report, Stat};
use crate::Plan;

/// 4 KiB reads at random offsets of the cached sequential file, through short-circuit reads.
pub async fn run(c: &BenchCluster, report: &mut Report, plan: &Plan) -> Result<()> {
    let (size, runs) = (plan.size, plan.runs);
    ensure_seq_file(c, size).await?;
    let fs = c.client(true).await?;
    let shm_file = c.shm.path().join("random.bin");
    let chunk = Arc::new(shared_chunk());
    {
        let (p, d) = (shm_file.clone(), chunk.clone());
        blocking(move || baseline::file_write(&p, size, &d)).await?;
    }
    for threads in [1usize, 16] {
        let ops = if threads == 1 {
            plan.random_ops.0
        } else {
            plan.random_ops.1
        };
        let (mut ours, mut base) = (vec![], vec![]);
        for _ in 0..runs {
            let p = shm_file.clone();
            base.push(blocking(move || baseline::pread_random(&p, size, threads, ops)).await?);
            let start = Instant::now();
            let tasks = (0..threads).map(|t| {
                let fs = fs.clone();
                tokio::spawn(async move {
                    let mut input = fs.open_file(SEQ_FILE, OpenFileOptions::default()).await?;
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
