//! Sequential write (MUST_CACHE, short-circuit and remote) and read (short-circuit mmap and remote
//! over loopback gRPC) of one file, beside write(2)/read(2) of /dev/shm and a raw TCP stream.

use std::sync::Arc;

use alluvium_client::DeleteOptions;
use alluvium_common::Result;

use super::{blocking, client_read, client_write, shared_chunk, SEQ_FILE};
use crate::baseline;
use crate::cluster::BenchCluster;
use crate::report::{Report, Stat};
use crate::Plan;

pub async fn run(c: &BenchCluster, report: &mut Report, plan: &Plan) -> Result<()> {
    let (size, runs) = (plan.size, plan.runs);
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
    if local.exists(SEQ_FILE).await? {
        local.delete(SEQ_FILE, DeleteOptions::default()).await?;
    }
    client_write(&local, SEQ_FILE, size, &chunk_bytes).await?;
    for _ in 0..runs {
        let p = shm_file.clone();
        shm_r.push(blocking(move || baseline::file_read(&p)).await?);
        sc_r.push(client_read(&local, SEQ_FILE).await?);
        remote_r.push(client_read(&remote, SEQ_FILE).await?);
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
