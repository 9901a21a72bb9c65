//! Sequential write (MUST_CACHE, short-circuit and remote) and read (short-circuit mmap and remote
//! over loopback gRPC) of one file, beside write(2)/read(2) of /dev/shm and a raw TCP stream.

use std::sync::Arc;

use alluvium_client::DeleteOptions;
use alluvium_common::Result;

use super::{
    blocking, client_read_into, client_write, dir_bytes, shared_chunk, wait_for_tier_at_most,
    ReadInto, SEQ_FILE,
};
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
    let remote_grpc = {
        let mut config = c.config.clone();
        config.client.block_transfer = false;
        crate::cluster::client_of(&config, false).await?
    };
    let shm_file = c.shm.path().join("baseline.bin");

    let (mut shm_w, mut sc_w, mut remote_w) = (vec![], vec![], vec![]);
    let (mut shm_r, mut sc_r, mut remote_r, mut tcp) = (vec![], vec![], vec![], vec![]);
    let (mut sc_r_buf, mut remote_r_buf, mut tcp_file) = (vec![], vec![], vec![]);
    let mut remote_r_grpc = vec![];
    // Each write starts once the previous run's blocks are really gone (see wait_for_tier_at_most).
    let resident = dir_bytes(&c.mem_tier_dir());
    for run in 0..runs {
        let (p, d) = (shm_file.clone(), chunk.clone());
        shm_w.push(blocking(move || baseline::file_write(&p, size, &d)).await?);
        sc_w.push(client_write(&local, &format!("/bench/w-sc-{run}"), size, &chunk_bytes).await?);
        local
            .delete(&format!("/bench/w-sc-{run}"), DeleteOptions::default())
            .await?;
        wait_for_tier_at_most(c, resident).await?;
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
        wait_for_tier_at_most(c, resident).await?;
    }
    if local.exists(SEQ_FILE).await? {
        local.delete(SEQ_FILE, DeleteOptions::default()).await?;
    }
    client_write(&local, SEQ_FILE, size, &chunk_bytes).await?;
    for _ in 0..runs {
        let p = shm_file.clone();
        shm_r.push(blocking(move || baseline::file_read(&p)).await?);
        sc_r.push(client_read_into(&local, SEQ_FILE, ReadInto::ZeroCopy).await?);
        sc_r_buf.push(client_read_into(&local, SEQ_FILE, ReadInto::Buffer).await?);
        remote_r.push(client_read_into(&remote, SEQ_FILE, ReadInto::ZeroCopy).await?);
        remote_r_buf.push(client_read_into(&remote, SEQ_FILE, ReadInto::Buffer).await?);
        remote_r_grpc.push(client_read_into(&remote_grpc, SEQ_FILE, ReadInto::ZeroCopy).await?);
        let d = chunk.clone();
        tcp.push(blocking(move || baseline::tcp_stream(size, &d)).await?);
        let p = shm_file.clone();
        tcp_file.push(blocking(move || baseline::tcp_stream_file(&p)).await?);
    }
    let _ = std::fs::remove_file(&shm_file);

    let mib = format!("{} MiB", size >> 20);
    report.add(
        format!("{mib} sequential read, short-circuit (mmap, zero-copy read_bytes)"),
        "MiB/s",
        Stat::of(&sc_r),
        "read(2) of a /dev/shm file",
        Some(Stat::of(&shm_r)),
        Some(1.2),
    );
    report.note(
        "read_bytes hands out slices of the mapped block file (MAP_POPULATE); read(2) copies the \
         same bytes into a 4 MiB buffer. The next row copies into a buffer too.",
    );
    report.add(
        format!("{mib} sequential read, short-circuit into a caller buffer (read)"),
        "MiB/s",
        Stat::of(&sc_r_buf),
        "read(2) of a /dev/shm file",
        Some(Stat::of(&shm_r)),
        None,
    );
    report.add(
        format!("{mib} sequential read, remote worker over loopback (zero-copy read_bytes)"),
        "MiB/s",
        Stat::of(&remote_r),
        "raw loopback TCP stream",
        Some(Stat::of(&tcp)),
        Some(0.8),
    );
    report.add(
        format!("{mib} sequential read, remote worker over loopback (zero-copy read_bytes)"),
        "MiB/s",
        Stat::of(&remote_r),
        "loopback TCP stream of a /dev/shm file's bytes",
        Some(Stat::of(&tcp_file)),
        None,
    );
    report.note(
        "the same read against a second baseline: a TCP stream written from a mapping of a \
         /dev/shm file of the same size, so each byte comes from memory once (the first \
         baseline resends one 4 MiB buffer that stays in the CPU caches)",
    );
    report.add(
        format!("{mib} sequential read, remote worker into a caller buffer (read)"),
        "MiB/s",
        Stat::of(&remote_r_buf),
        "raw loopback TCP stream",
        Some(Stat::of(&tcp)),
        None,
    );
    report.add(
        format!("{mib} sequential read, remote worker as a ReadBlock gRPC stream"),
        "MiB/s",
        Stat::of(&remote_r_grpc),
        "raw loopback TCP stream",
        Some(Stat::of(&tcp)),
        None,
    );
    report.note(
        "client.block_transfer = false: the gRPC path that remote reads fall back to (and take \
         for CACHE_PROMOTE and UFS read-through)",
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
