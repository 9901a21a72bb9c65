//! End-to-end tests of the core: a real master and real workers as separate processes on
//! loopback, driven by the client library and by `alluvium fs`.

mod support;

use std::time::Duration;

use alluvium_client::{
    CreateDirectoryOptions, CreateFileOptions, FileSystem, OpenFileOptions, ReadType,
    SetAttributeOptions, WriteType,
};
use alluvium_common::ErrorCode;
use alluvium_testkit::eventually;
use support::*;

const MIB: usize = 1 << 20;

async fn write(fs: &FileSystem, path: &str, bytes: &[u8], opts: CreateFileOptions) {
    let mut out = fs
        .create_file(path, opts)
        .await
        .unwrap_or_else(|e| panic!("create {path}: {e}"));
    // Uneven pieces, so chunk and block boundaries fall mid-write.
    for piece in bytes.chunks(300_001) {
        out.write(piece)
            .await
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    out.close()
        .await
        .unwrap_or_else(|e| panic!("close {path}: {e}"));
}

/// Writes `bytes` to a new file at `path` in 64 KiB pieces, expecting the write to be refused
/// (at create, at a write or at close); returns why. A stream refused mid-write is cancelled,
/// so the incomplete file is deleted before this returns.
async fn write_refused(
    fs: &FileSystem,
    path: &str,
    bytes: &[u8],
    opts: CreateFileOptions,
) -> alluvium_common::Error {
    let mut out = match fs.create_file(path, opts).await {
        Ok(out) => out,
        Err(e) => return e,
    };
    for piece in bytes.chunks(64 * 1024) {
        if let Err(e) = out.write(piece).await {
            out.cancel().await.unwrap();
            return e;
        }
    }
    out.close()
        .await
        .expect_err(&format!("{path}: the write was not refused"))
}

async fn read(fs: &FileSystem, path: &str, read_type: ReadType) -> Vec<u8> {
    let mut input = fs
        .open_file(path, OpenFileOptions { read_type })
        .await
        .unwrap_or_else(|e| panic!("open {path}: {e}"));
    let mut out = Vec::with_capacity(input.len() as usize);
    let mut buf = vec![0u8; 256 * 1024 + 7];
    loop {
        let n = input
            .read(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("read {path}: {e}"));
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn opts(write_type: WriteType) -> CreateFileOptions {
    CreateFileOptions {
        write_type,
        recursive: true,
        ..Default::default()
    }
}

async fn wait_persisted(fs: &FileSystem, path: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = fs.get_status(path).await.unwrap();
        if st.persisted {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} was not persisted in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn every_write_type_and_read_type_round_trips() {
    let cluster = Cluster::start(ClusterOptions {
        workers: 2,
        ..Default::default()
    });
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        let mut seed = 1;
        for wt in [
            WriteType::MustCache,
            WriteType::CacheThrough,
            WriteType::Through,
            WriteType::AsyncThrough,
        ] {
            // Empty, smaller than a chunk, and three blocks (block size 1 MiB) with a ragged end.
            for size in [0, 4099, 2 * MIB + 12_345] {
                let path = format!("/rt/{}/f{size}", wt.as_str_name());
                let bytes = data(size, seed);
                seed += 1;
                write(&fs, &path, &bytes, opts(wt)).await;
                let st = fs.get_status(&path).await.unwrap();
                assert_eq!(st.length, size as u64, "{path}");
                assert!(st.completed, "{path}");
                match wt {
                    WriteType::CacheThrough | WriteType::Through => {
                        assert!(st.persisted, "{path} must be durable when close returns")
                    }
                    WriteType::AsyncThrough => wait_persisted(&fs, &path).await,
                    _ => assert!(!st.persisted, "{path}"),
                }
                if wt != WriteType::MustCache {
                    let ufs_copy = std::fs::read(cluster.ufs_dir.join(&path[1..])).unwrap();
                    assert_eq!(md5_hex(&ufs_copy), md5_hex(&bytes), "UFS copy of {path}");
                }
                for read_type in [ReadType::NoCache, ReadType::Cache, ReadType::CachePromote] {
                    let got = read(&fs, &path, read_type).await;
                    assert_eq!(got.len(), bytes.len(), "{path} {read_type:?}");
                    assert_eq!(md5_hex(&got), md5_hex(&bytes), "{path} {read_type:?}");
                }
            }
        }

        // A THROUGH file is cached by a CACHE read (read-through), not by a NO_CACHE read.
        let path = "/rt/through-then-cache";
        let bytes = data(2 * MIB, 99);
        write(&fs, path, &bytes, opts(WriteType::Through)).await;
        read(&fs, path, ReadType::NoCache).await;
        assert_eq!(fs.get_status(path).await.unwrap().in_alluvium_percentage, 0);
        read(&fs, path, ReadType::Cache).await;
        eventually(
            "read-through caches the file",
            Duration::from_secs(10),
            || async { fs.get_status(path).await.unwrap().in_alluvium_percentage == 100 },
        )
        .await;

        // Positioned reads and seeks across block boundaries.
        let path = format!(
            "/rt/{}/f{}",
            WriteType::MustCache.as_str_name(),
            2 * MIB + 12_345
        );
        let bytes = data(2 * MIB + 12_345, 1 + 2);
        let mut input = fs
            .open_file(&path, OpenFileOptions::default())
            .await
            .unwrap();
        let mut buf = vec![0u8; 100_000];
        for offset in [0usize, MIB - 50_000, 2 * MIB - 1, 2 * MIB + 12_345 - 10] {
            let n = input.read_at(offset as u64, &mut buf).await.unwrap();
            let want = &bytes[offset..(offset + buf.len()).min(bytes.len())];
            assert_eq!(&buf[..n], &want[..n], "read_at {offset}");
            assert!(n > 0);
        }
        input.seek(MIB as u64 + 3).await.unwrap();
        let n = input.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &bytes[MIB + 3..MIB + 3 + n]);
    });
}

async fn tiers_of(fs: &FileSystem, path: &str) -> Vec<String> {
    let st = fs.get_status(path).await.unwrap();
    st.blocks
        .iter()
        .flat_map(|b| b.locations.iter().map(|l| l.tier.clone()))
        .collect()
}

type Entry = (String, u64, u32, String, bool, bool);

async fn snapshot(fs: &FileSystem) -> Vec<Entry> {
    let mut v: Vec<Entry> = fs
        .list_status("/", true)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.path, f.length, f.mode, f.owner, f.persisted, f.pinned))
        .collect();
    v.sort();
    v
}

#[test]
fn remote_reads_and_writes_work_without_short_circuit() {
    let cluster = Cluster::start(ClusterOptions::default());
    let rt = runtime();
    rt.block_on(async {
        let mut config = cluster.client_config();
        config.client.short_circuit = false;
        config.client.short_circuit_write = false;
        let fs = FileSystem::connect(&config).await.unwrap();
        let bytes = data(3 * MIB + 1, 7);
        write(&fs, "/remote/f", &bytes, opts(WriteType::MustCache)).await;
        let got = read(&fs, "/remote/f", ReadType::Cache).await;
        assert_eq!(md5_hex(&got), md5_hex(&bytes));
        let m = fs.metrics().snapshot();
        assert_eq!(m.bytes_read_short_circuit, 0);
        assert_eq!(m.bytes_read_remote, bytes.len() as u64);
        assert_eq!(m.bytes_written_short_circuit, 0);
        assert_eq!(m.bytes_written_remote, bytes.len() as u64);
    });
}

#[test]
fn local_reads_use_short_circuit_and_it_shows_in_metrics() {
    let cluster = Cluster::start(ClusterOptions::default());
    let rt = runtime();
    let fs = rt
        .block_on(FileSystem::connect(&cluster.client_config()))
        .unwrap();
    let bytes = data(2 * MIB + 5, 11);
    rt.block_on(write(&fs, "/sc/f", &bytes, opts(WriteType::MustCache)));
    // Worker metrics are read with a blocking HTTP client, so outside the runtime.
    let opens = |c: &Cluster| {
        metric_sum(
            &c.worker_metrics(0),
            "alluvium_worker_short_circuit_opens_total",
        )
    };
    let before = opens(&cluster);
    let got = rt.block_on(read(&fs, "/sc/f", ReadType::Cache));
    assert_eq!(md5_hex(&got), md5_hex(&bytes));
    let after = opens(&cluster);
    assert!(
        after >= before + 3.0,
        "short-circuit opens {before} -> {after}"
    );
    let m = fs.metrics().snapshot();
    assert_eq!(m.bytes_read_short_circuit, bytes.len() as u64);
    assert_eq!(m.bytes_read_remote, 0);
}

#[test]
fn random_reads_keep_blocks_mapped_and_zero_copy_reads_match() {
    let cluster = Cluster::start(ClusterOptions::default());
    let rt = runtime();
    let fs = rt
        .block_on(FileSystem::connect(&cluster.client_config()))
        .unwrap();
    let bytes = data(3 * MIB + 17, 5);
    rt.block_on(write(&fs, "/zc/f", &bytes, opts(WriteType::MustCache)));
    let opens = |c: &Cluster| {
        metric_sum(
            &c.worker_metrics(0),
            "alluvium_worker_short_circuit_opens_total",
        )
    };
    // Positioned reads that jump between the four blocks: each block is opened (locked and
    // mapped) once, not once per jump.
    let before = opens(&cluster);
    let kept = rt.block_on(async {
        let mut input = fs
            .open_file("/zc/f", OpenFileOptions::default())
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        for i in 0..200u64 {
            let off = (i * 7919 * 4096 + i) % (bytes.len() as u64 - 4096);
            assert_eq!(input.read_at(off, &mut buf).await.unwrap(), 4096);
            assert!(
                buf[..] == bytes[off as usize..off as usize + 4096],
                "at {off}"
            );
        }
        // Zero-copy reads: slices of the mapped blocks, valid after the stream is closed.
        let mut chunks = Vec::new();
        loop {
            let c = input.read_bytes(1 << 20).await.unwrap();
            if c.is_empty() {
                break;
            }
            chunks.push(c);
        }
        input.close().await.unwrap();
        chunks
    });
    let after = opens(&cluster);
    assert_eq!(
        after - before,
        4.0,
        "short-circuit opens {before} -> {after}"
    );
    assert_eq!(md5_hex(&kept.concat()), md5_hex(&bytes));
}

#[test]
fn eviction_moves_blocks_from_mem_to_ssd_and_pinned_files_stay_in_mem() {
    let cluster = Cluster::start(ClusterOptions {
        mem: "4MiB",
        ssd: Some("64MiB"),
        ..Default::default()
    });
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        let pinned = data(MIB, 1);
        write(
            &fs,
            "/ev/pinned",
            &pinned,
            CreateFileOptions {
                pinned: true,
                ..opts(WriteType::MustCache)
            },
        )
        .await;
        let mut files = Vec::new();
        for i in 0..8 {
            let bytes = data(MIB, 100 + i);
            let path = format!("/ev/f{i}");
            write(&fs, &path, &bytes, opts(WriteType::MustCache)).await;
            files.push((path, bytes));
        }
        // Locations reach the master with heartbeats: poll.
        eventually(
            "blocks moved down to SSD",
            Duration::from_secs(15),
            || async {
                for (p, _) in &files {
                    if tiers_of(&fs, p).await.contains(&"SSD".to_string()) {
                        return true;
                    }
                }
                false
            },
        )
        .await;
        assert_eq!(tiers_of(&fs, "/ev/pinned").await, vec!["MEM".to_string()]);
        // Nothing was lost on the way down.
        for (path, bytes) in &files {
            assert_eq!(
                md5_hex(&read(&fs, path, ReadType::Cache).await),
                md5_hex(bytes),
                "{path}"
            );
        }
        assert_eq!(
            md5_hex(&read(&fs, "/ev/pinned", ReadType::Cache).await),
            md5_hex(&pinned)
        );
    });
}

/// CACHE_THROUGH blocks were written as durable, so while the file was still being written the
/// tier could evict its own first blocks to make room for the next, and the persist at close
/// then failed with "block … is cached nowhere (file deleted?)". They are durable only once
/// the file is in the UFS: a file larger than the free cache fails as out of space, saying
/// why, and leaves nothing behind; one that fits is written and may then be evicted.
#[test]
fn cache_through_blocks_stay_until_persisted() {
    let cluster = Cluster::start(ClusterOptions {
        mem: "4MiB",
        ..Default::default()
    });
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        // Half the tier holds data nothing may evict (cached only).
        write(
            &fs,
            "/ct/kept",
            &data(2 * MIB, 1),
            opts(WriteType::MustCache),
        )
        .await;
        // 3 MiB cannot be cached in 2 MiB of free space.
        let err = write_refused(
            &fs,
            "/ct/big",
            &data(3 * MIB, 2),
            opts(WriteType::CacheThrough),
        )
        .await;
        assert_eq!(err.code, ErrorCode::ResourceExhausted, "{err}");
        assert!(err.message.contains("not persisted"), "{err}");
        assert!(
            fs.get_status("/ct/big").await.is_err(),
            "the failed file stays"
        );
        assert!(
            !cluster.ufs_dir.join("ct/big").exists(),
            "the failed file reached the UFS"
        );
        // The failed file's blocks go at the worker's next heartbeat.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let used: u64 = fs
                .workers()
                .await
                .unwrap()
                .iter()
                .map(|w| w.used_bytes)
                .sum();
            if used <= 2 * MIB as u64 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the failed file's blocks stay: {used}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // One that fits is written; once persisted its blocks give way to new data.
        write(
            &fs,
            "/ct/fits",
            &data(2 * MIB, 3),
            opts(WriteType::CacheThrough),
        )
        .await;
        assert!(fs.get_status("/ct/fits").await.unwrap().persisted);
        write(
            &fs,
            "/ct/more",
            &data(2 * MIB, 4),
            opts(WriteType::MustCache),
        )
        .await;
        assert_eq!(
            md5_hex(&read(&fs, "/ct/fits", ReadType::NoCache).await),
            md5_hex(&data(2 * MIB, 3))
        );
    });
}

/// Issue 17: "a 0-byte S3 PUT into a 64 MiB MEM tier holding 85 bytes fails: cannot allocate
/// 64.0MiB". Writers reserve as their data arrives, by short-circuit (GrowLocalBlock) and by
/// streaming alike, so what fits is written.
#[test]
fn writes_reserve_as_their_data_arrives() {
    let cluster = Cluster::start(ClusterOptions {
        mem: "2MiB",
        block_size: "2MiB",
        ..Default::default()
    });
    let rt = runtime();
    rt.block_on(async {
        for short_circuit in [true, false] {
            let mut config = cluster.client_config();
            config.client.short_circuit_write = short_circuit;
            let fs = FileSystem::connect(&config).await.unwrap();
            let dir = format!("/r{short_circuit}");
            write(
                &fs,
                &format!("{dir}/small"),
                &[7u8; 85],
                opts(WriteType::MustCache),
            )
            .await;
            write(
                &fs,
                &format!("{dir}/empty"),
                &[],
                opts(WriteType::MustCache),
            )
            .await;
            let body = data(MIB + MIB / 2, 6);
            write(
                &fs,
                &format!("{dir}/most"),
                &body,
                opts(WriteType::MustCache),
            )
            .await;
            assert_eq!(
                md5_hex(&read(&fs, &format!("{dir}/most"), ReadType::Cache).await),
                md5_hex(&body)
            );
            fs.delete(
                &dir,
                alluvium_client::DeleteOptions {
                    recursive: true,
                    alluvium_only: false,
                },
            )
            .await
            .unwrap();
            // The deleted blocks go at the worker's next heartbeat.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while fs
                .workers()
                .await
                .unwrap()
                .iter()
                .map(|w| w.used_bytes)
                .sum::<u64>()
                > 0
            {
                assert!(std::time::Instant::now() < deadline, "blocks of {dir} stay");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
}

#[test]
fn a_full_tier_of_unpersisted_data_refuses_writes_and_says_why() {
    let cluster = Cluster::start(ClusterOptions {
        mem: "2MiB",
        ..Default::default()
    });
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        write(
            &fs,
            "/full/a",
            &data(2 * MIB, 1),
            opts(WriteType::MustCache),
        )
        .await;
        // A full tier of unpersisted blocks must refuse.
        let err = write_refused(&fs, "/full/b", &data(MIB, 2), opts(WriteType::MustCache)).await;
        assert_eq!(err.code, ErrorCode::ResourceExhausted, "{err}");
        assert!(err.message.contains("not persisted"), "{err}");
        // The data already there is intact.
        assert_eq!(
            md5_hex(&read(&fs, "/full/a", ReadType::Cache).await),
            md5_hex(&data(2 * MIB, 1))
        );
    });
}

#[test]
fn cache_through_file_survives_losing_its_worker() {
    let mut cluster = Cluster::start(ClusterOptions {
        workers: 2,
        ..Default::default()
    });
    let rt = runtime();
    let bytes = data(3 * MIB + 77, 5);
    let holder = rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        write(&fs, "/ct/f", &bytes, opts(WriteType::CacheThrough)).await;
        let st = fs.get_status("/ct/f").await.unwrap();
        let port = st.blocks[0].locations[0].address.as_ref().unwrap().rpc_port as u16;
        cluster.workers.iter().position(|w| w.rpc == port).unwrap()
    });
    cluster.kill_worker(holder);
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        // Before the master notices, the dead location is skipped; the other worker reads through.
        let got = read(&fs, "/ct/f", ReadType::Cache).await;
        assert_eq!(md5_hex(&got), md5_hex(&bytes));
    });
    cluster.wait_live_workers(1);
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        let got = read(&fs, "/ct/f", ReadType::Cache).await;
        assert_eq!(md5_hex(&got), md5_hex(&bytes));
    });
}

/// Right after a master restart the master knows no worker until each re-registers at its next
/// heartbeat, and a write in that window failed at once with "no live worker" (issue 17). A
/// write now waits for a worker, as long as it retries an unreachable server
/// (`client.retry_duration`): with none at all it still fails, after that.
#[test]
fn a_write_waits_a_bounded_time_for_a_live_worker() {
    let mut cluster = Cluster::start(ClusterOptions::default());
    cluster.kill_worker(0);
    cluster.wait_live_workers(0);
    let rt = runtime();
    // The wait is bounded by client.retry_duration: long here, so a slow worker start cannot
    // fail the test; short below, to see the bound.
    let connect = |cluster: &Cluster, retry: u64| {
        let mut config = cluster.client_config();
        config.client.retry_duration = Duration::from_secs(retry);
        rt.block_on(FileSystem::connect(&config)).unwrap()
    };
    let writer = {
        let fs = connect(&cluster, 60);
        rt.spawn(async move {
            write(&fs, "/w/after", &data(1000, 5), opts(WriteType::MustCache)).await;
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    cluster.start_worker(0);
    rt.block_on(writer)
        .expect("the write failed instead of waiting for the worker");
    cluster.kill_worker(0);
    cluster.wait_live_workers(0);
    let fs = connect(&cluster, 2);
    rt.block_on(async {
        let started = std::time::Instant::now();
        let e = write_refused(&fs, "/w/none", b"x", opts(WriteType::MustCache)).await;
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        assert!(e.message.contains("no live worker"), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
    });
}

#[test]
fn namespace_and_data_survive_kill_9_of_the_master() {
    let mut cluster = Cluster::start(ClusterOptions::default());
    let rt = runtime();
    let cached = data(2 * MIB + 3, 21);
    let durable = data(MIB / 2, 22);
    let before = rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        fs.create_directory(
            "/k/a/b",
            CreateDirectoryOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        write(&fs, "/k/a/b/cached", &cached, opts(WriteType::MustCache)).await;
        write(&fs, "/k/durable", &durable, opts(WriteType::CacheThrough)).await;
        fs.set_attribute(
            "/k/a",
            SetAttributeOptions {
                mode: Some(0o750),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        fs.set_attribute(
            "/k/durable",
            SetAttributeOptions {
                pinned: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        fs.rename("/k/durable", "/k/durable2").await.unwrap();
        snapshot(&fs).await
    });
    assert!(before.iter().any(|e| e.0 == "/k/a/b/cached"));

    cluster.kill_master();
    cluster.start_master();
    cluster.wait_live_workers(1);

    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        assert_eq!(snapshot(&fs).await, before);
        // The worker re-registered its blocks, so the cache-only file is readable again.
        assert_eq!(
            md5_hex(&read(&fs, "/k/a/b/cached", ReadType::Cache).await),
            md5_hex(&cached)
        );
        assert_eq!(
            md5_hex(&read(&fs, "/k/durable2", ReadType::Cache).await),
            md5_hex(&durable)
        );
    });
}

#[test]
fn ufs_files_appear_under_a_mount() {
    let cluster = Cluster::start(ClusterOptions::default());
    let ext = cluster.dir.path().join("external");
    std::fs::create_dir_all(ext.join("sub")).unwrap();
    std::fs::write(ext.join("a.txt"), "alpha").unwrap();
    std::fs::write(ext.join("sub/b.txt"), "beta").unwrap();
    let uri = format!("file://{}", ext.display());

    let out = cluster.fs(&["mount", "/ext", &uri]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ls = stdout(&cluster.fs(&["ls", "/ext"]));
    assert!(ls.contains("/ext/a.txt") && ls.contains("/ext/sub"), "{ls}");
    assert_eq!(stdout(&cluster.fs(&["cat", "/ext/sub/b.txt"])), "beta");

    // The sync interval is 0 in tests: changes in the UFS show at the next listing.
    std::fs::write(ext.join("new.txt"), "gamma").unwrap();
    std::fs::remove_file(ext.join("a.txt")).unwrap();
    let ls = stdout(&cluster.fs(&["ls", "/ext"]));
    assert!(
        ls.contains("/ext/new.txt") && !ls.contains("/ext/a.txt"),
        "{ls}"
    );

    // Files written under the mount land at the same relative path in the UFS.
    let local = cluster.dir.path().join("up.txt");
    std::fs::write(&local, "delta").unwrap();
    let out = cluster.fs_with_env(
        &["copyFromLocal", local.to_str().unwrap(), "/ext/sub/up.txt"],
        &[("ALLUVIUM_CLIENT__WRITE_TYPE", "CACHE_THROUGH")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(ext.join("sub/up.txt")).unwrap(),
        "delta"
    );

    let out = cluster.fs(&["unmount", "/ext"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cluster.fs(&["ls", "/ext"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Unmounting keeps the UFS data.
    assert!(ext.join("sub/up.txt").exists());
}

fn assert_one_line_error(out: &std::process::Output, code: i32, command: &str, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with(&format!("alluvium: {command}: ")), "{err}");
    assert!(err.contains(needle), "{err} should mention {needle}");
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let cluster = Cluster::start(ClusterOptions::default());
    let before = stdout(&cluster.fs(&["ls", "-R", "/"]));

    assert_one_line_error(&cluster.fs(&["ls", "/nope"]), 3, "ls", "/nope");
    assert_one_line_error(&cluster.fs(&["cat", "/nope/x"]), 3, "cat", "/nope/x");
    assert_one_line_error(&cluster.fs(&["ls", "/../etc"]), 2, "ls", "escapes");
    assert_one_line_error(&cluster.fs(&["mkdir", "/a/../../b"]), 2, "mkdir", "escapes");
    assert_one_line_error(
        &cluster.fs(&["mount", "/x", "ftp://host/y"]),
        2,
        "mount",
        "ftp",
    );
    let secret = "TOPSECRETVALUE42";
    let out = cluster.fs(&[
        "mount",
        "/s3",
        "s3://bucket/prefix",
        "--option",
        "endpoint=http://127.0.0.1:1",
        "--option",
        "access_key_id=AKIDEXAMPLE",
        "--option",
        &format!("secret_access_key={secret}"),
    ]);
    assert_one_line_error(&out, 5, "mount", "s3://bucket/prefix");
    assert!(!stderr(&out).contains(secret), "secrets never printed");
    assert!(
        !cluster.log("master.log").contains(secret),
        "secrets never logged"
    );

    // Nothing changed.
    assert_eq!(stdout(&cluster.fs(&["ls", "-R", "/"])), before);

    // A master that is down: one line, exit code 5 (after the bounded retry).
    let out = cluster.fs_with_env(
        &["ls", "/"],
        &[
            ("ALLUVIUM_MASTER", "127.0.0.1:1"),
            ("ALLUVIUM_CLIENT__RETRY_DURATION", "1s"),
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end().lines().count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn permissions_are_enforced_for_other_users() {
    let cluster = Cluster::start(ClusterOptions::default());
    let as_user =
        |user: &str, args: &[&str]| cluster.fs_with_env(args, &[("ALLUVIUM_CLIENT__USER", user)]);
    // The test runs as the master's user: a superuser.
    assert!(cluster.fs(&["mkdir", "/shared"]).status.success());
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        fs.set_attribute(
            "/shared",
            SetAttributeOptions {
                mode: Some(0o777),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let mut alice = cluster.client_config();
        alice.client.user = "alice".into();
        let alice = FileSystem::connect(&alice).await.unwrap();
        alice
            .create_directory("/shared/alice", CreateDirectoryOptions::default())
            .await
            .unwrap();
        write(
            &alice,
            "/shared/alice/private",
            b"alice's",
            opts(WriteType::MustCache),
        )
        .await;
        alice
            .set_attribute(
                "/shared/alice",
                SetAttributeOptions {
                    mode: Some(0o700),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Only the superuser may give files away.
        let e = alice
            .set_attribute(
                "/shared/alice",
                SetAttributeOptions {
                    owner: Some("bob".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied, "{e}");
    });
    let local = cluster.dir.path().join("x.txt");
    std::fs::write(&local, "x").unwrap();
    assert_one_line_error(
        &as_user("bob", &["ls", "/shared/alice"]),
        4,
        "ls",
        "/shared/alice",
    );
    assert_one_line_error(
        &as_user("bob", &["cat", "/shared/alice/private"]),
        4,
        "cat",
        "/shared/alice",
    );
    assert_one_line_error(
        &as_user(
            "bob",
            &["copyFromLocal", local.to_str().unwrap(), "/shared/alice/x"],
        ),
        4,
        "copyFromLocal",
        "/shared/alice",
    );
    assert_one_line_error(
        &as_user("bob", &["rm", "-R", "/shared/alice"]),
        4,
        "rm",
        "/shared/alice",
    );
    assert_one_line_error(&as_user("bob", &["mkdir", "/bob"]), 4, "mkdir", "/bob");
    // The owner and the superuser still can.
    assert_eq!(
        stdout(&as_user("alice", &["cat", "/shared/alice/private"])),
        "alice's"
    );
    assert_eq!(
        stdout(&cluster.fs(&["cat", "/shared/alice/private"])),
        "alice's"
    );
}

#[test]
fn load_right_after_free_keeps_the_file_cached() {
    let cluster = Cluster::start(ClusterOptions::default());
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        let bytes = data(2 * MIB + 1, 31);
        write(&fs, "/fl/f", &bytes, opts(WriteType::CacheThrough)).await;
        fs.free("/fl/f", false, false).await.unwrap();
        // The worker drops freed blocks at its next heartbeat; a load before that must not be
        // undone by the queued removal.
        fs.load("/fl/f", false).await.unwrap();
        assert_eq!(
            fs.get_status("/fl/f").await.unwrap().in_alluvium_percentage,
            100
        );
        // Several heartbeats (200 ms each) later, it is still cached.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            fs.get_status("/fl/f").await.unwrap().in_alluvium_percentage,
            100
        );
        assert_eq!(
            md5_hex(&read(&fs, "/fl/f", ReadType::Cache).await),
            md5_hex(&bytes)
        );
    });
}

#[test]
fn listings_stay_complete_while_files_are_being_persisted() {
    // sync_interval is 0 in tests: every listing re-lists the UFS directory while the
    // async-persist scheduler is writing the same files there.
    let cluster = Cluster::start(ClusterOptions::default());
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&cluster.client_config()).await.unwrap();
        let n = 800;
        for i in 0..n {
            write(
                &fs,
                &format!("/ap/f{i:04}"),
                b"x",
                opts(WriteType::AsyncThrough),
            )
            .await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let listing = fs.list_status("/ap", false).await.unwrap();
            assert_eq!(
                listing.len(),
                n,
                "a listing lost entries while they were persisted"
            );
            if listing.iter().all(|f| f.persisted) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "persistence did not finish"
            );
        }
    });
}
