//! `alluvium fs` commands that involve the under storage and the workers' caches: mount (with
//! `--readonly` and `--option`), unmount, loadMetadata, checkConsistency (and its repair), persist,
//! free, load, location and distributedLoad (spread, replication, resumable state), run as the
//! real binary against a real master and workers.

mod support;

use std::collections::HashSet;
use std::process::Output;
use std::time::Duration;

use alluvium_client::FileSystem;
use support::*;

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}; stdout: {}",
        out.status.code(),
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

fn one_line_error(out: &Output, code: i32, command: &str, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with(&format!("alluvium: {command}: ")), "{err}");
    assert!(err.contains(needle), "{err} should mention {needle}");
}

const MIB: usize = 1 << 20;

#[test]
fn mounts_read_only_mounts_and_metadata() {
    // A long sync interval: the namespace only learns of UFS changes when asked.
    let c = Cluster::start(ClusterOptions {
        sync_interval: "1h",
        ..Default::default()
    });
    let ext = c.dir.path().join("ext");
    std::fs::create_dir_all(ext.join("sub/deep")).unwrap();
    std::fs::write(ext.join("a.txt"), "alpha").unwrap();
    std::fs::write(ext.join("sub/deep/b.txt"), "beta").unwrap();
    let uri = format!("file://{}", ext.display());

    // mount --readonly --option, the mount table, and what a read-only mount refuses.
    let out = ok(c.fs(&[
        "mount",
        "--readonly",
        "--option",
        "sync_interval=1h",
        "--option",
        "note=x",
        "/ro",
        &uri,
    ]));
    assert!(out.contains(&format!("Mounted {uri} at /ro")), "{out}");
    let table = ok(c.fs(&["mount"]));
    let line = table
        .lines()
        .find(|l| l.contains(" on /ro "))
        .expect(&table);
    assert!(
        line.contains("readonly=true")
            && line.contains("note=x")
            && line.contains("sync_interval=1h"),
        "{line}"
    );
    assert_eq!(ok(c.fs(&["cat", "/ro/a.txt"])), "alpha");
    ok(c.fs(&["ls", "-R", "/ro"]));
    let local = c.dir.path().join("up.txt");
    std::fs::write(&local, "up").unwrap();
    one_line_error(
        &c.fs(&["copyFromLocal", local.to_str().unwrap(), "/ro/up.txt"]),
        4,
        "copyFromLocal",
        "read-only",
    );
    one_line_error(&c.fs(&["rm", "/ro/a.txt"]), 4, "rm", "read-only");
    one_line_error(&c.fs(&["mkdir", "/ro/new"]), 4, "mkdir", "read-only");
    one_line_error(
        &c.fs(&["mv", "/ro/a.txt", "/ro/b.txt"]),
        4,
        "mv",
        "read-only",
    );
    assert!(ext.join("a.txt").exists());
    // Mount errors: a taken path, an unknown scheme, a bad option.
    one_line_error(&c.fs(&["mount", "/ro", &uri]), 6, "mount", "/ro");
    one_line_error(
        &c.fs(&["mount", "/x", "gopher://h/y"]),
        2,
        "mount",
        "gopher",
    );
    one_line_error(
        &c.fs(&["mount", "--option", "novalue", "/y", &uri]),
        2,
        "mount",
        "novalue",
    );
    one_line_error(&c.fs(&["mount", "/y"]), 2, "mount", "URI");

    // loadMetadata: files added behind Alluvium's back appear when asked (-R for the tree).
    std::fs::write(ext.join("late.txt"), "late").unwrap();
    std::fs::write(ext.join("sub/deep/late2.txt"), "late2").unwrap();
    assert!(
        !ok(c.fs(&["ls", "/ro"])).contains("late.txt"),
        "interval not passed"
    );
    let out = ok(c.fs(&["loadMetadata", "/ro"]));
    assert!(out.contains("1 added"), "{out}");
    assert!(ok(c.fs(&["ls", "/ro"])).contains("/ro/late.txt"));
    let out = ok(c.fs(&["loadMetadata", "-R", "-F", "/ro"]));
    assert!(out.contains("1 added"), "{out}");
    assert!(ok(c.fs(&["ls", "-R", "/ro"])).contains("/ro/sub/deep/late2.txt"));
    one_line_error(
        &c.fs(&["loadMetadata", "/ro/none"]),
        3,
        "loadMetadata",
        "/ro/none",
    );

    // unmount keeps the UFS data; the path is gone.
    assert!(ok(c.fs(&["unmount", "/ro"])).contains("Unmounted /ro"));
    one_line_error(&c.fs(&["ls", "/ro"]), 3, "ls", "/ro");
    assert!(ext.join("sub/deep/b.txt").exists());
    one_line_error(&c.fs(&["unmount", "/ro"]), 3, "unmount", "/ro");
}

#[test]
fn check_consistency_finds_and_repairs_differences() {
    let c = Cluster::start(ClusterOptions {
        sync_interval: "1h",
        ..Default::default()
    });
    let ext = c.dir.path().join("ext");
    std::fs::create_dir_all(ext.join("dir")).unwrap();
    for n in ["keep", "gone", "grow"] {
        std::fs::write(ext.join(n), n).unwrap();
    }
    std::fs::write(ext.join("dir/inner"), "inner").unwrap();
    std::fs::write(ext.join("kind"), "a file").unwrap();
    let uri = format!("file://{}", ext.display());
    ok(c.fs(&["mount", "/m", &uri]));
    ok(c.fs(&["ls", "-R", "/m"]));
    // Written through Alluvium but only cached: not an inconsistency.
    ok(c.fs_with_env(
        &["touch", "/m/cached-only"],
        &[("ALLUVIUM_CLIENT__WRITE_TYPE", "MUST_CACHE")],
    ));
    let out = ok(c.fs(&["checkConsistency", "-R", "/m"]));
    assert!(out.contains("/m is consistent with the UFS"), "{out}");

    // Change the UFS behind Alluvium's back.
    std::fs::remove_file(ext.join("gone")).unwrap();
    std::fs::write(ext.join("grow"), "grown longer").unwrap();
    std::fs::write(ext.join("new"), "new").unwrap();
    std::fs::write(ext.join("dir/inner2"), "x").unwrap();
    std::fs::remove_file(ext.join("kind")).unwrap();
    std::fs::create_dir(ext.join("kind")).unwrap();

    // Without -R: the path and its children only.
    let out = c.fs(&["checkConsistency", "/m"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    for (p, kind) in [
        ("/m/gone", "MISSING_IN_UFS"),
        ("/m/grow", "CONTENT_MISMATCH"),
        ("/m/new", "MISSING_IN_ALLUVIUM"),
        ("/m/kind", "TYPE_MISMATCH"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(&format!("{p}  {kind}"))),
            "{p} {kind}: {text}"
        );
    }
    assert!(!text.contains("/m/dir/inner2"), "not recursive: {text}");
    assert!(!text.contains("cached-only"), "{text}");
    one_line_error(&out, 7, "checkConsistency", "4 entries");
    // -R finds the nested one too; --json says the same for scripts.
    let out = c.fs(&["checkConsistency", "-R", "--json", "/m"]);
    assert_eq!(out.status.code(), Some(7));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(j["consistent"], false);
    let paths: HashSet<&str> = j["inconsistencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        HashSet::from(["/m/gone", "/m/grow", "/m/new", "/m/kind", "/m/dir/inner2"])
    );
    // Checking changed nothing: still stale.
    assert!(ok(c.fs(&["ls", "/m"])).contains("/m/gone"));

    // -r repairs from the UFS, then all is consistent.
    let out = ok(c.fs(&["checkConsistency", "-R", "-r", "/m"]));
    assert_eq!(out.matches("(repaired)").count(), 5, "{out}");
    assert!(out.contains("consistent with the UFS now"), "{out}");
    let out = ok(c.fs(&["checkConsistency", "-R", "/m"]));
    assert!(out.contains("/m is consistent with the UFS"), "{out}");
    let ls = ok(c.fs(&["ls", "-R", "/m"]));
    assert!(!ls.contains("/m/gone"), "{ls}");
    assert!(
        ls.contains("/m/new") && ls.contains("/m/dir/inner2"),
        "{ls}"
    );
    assert!(ls.contains("DIR /m/kind"), "{ls}");
    assert!(
        ls.contains("/m/cached-only"),
        "only-cached files stay: {ls}"
    );
    assert_eq!(ok(c.fs(&["cat", "/m/grow"])), "grown longer");

    one_line_error(
        &c.fs(&["checkConsistency", "/m/none"]),
        3,
        "checkConsistency",
        "/m/none",
    );
}

#[test]
fn persist_free_load_and_location() {
    let c = Cluster::start(ClusterOptions::default());
    let local = c.dir.path().join("f.bin");
    let bytes = data(3 * MIB, 3);
    std::fs::write(&local, &bytes).unwrap();
    ok(c.fs_with_env(
        &["copyFromLocal", local.to_str().unwrap(), "/f.bin"],
        &[("ALLUVIUM_CLIENT__WRITE_TYPE", "MUST_CACHE")],
    ));
    // Not persisted: free refuses, location shows the worker and tier of each block.
    one_line_error(&c.fs(&["free", "/f.bin"]), 7, "free", "/f.bin");
    let loc = ok(c.fs(&["location", "/f.bin"]));
    assert_eq!(
        loc.matches(&format!("127.0.0.1:{} (MEM)", c.workers[0].rpc))
            .count(),
        3,
        "{loc}"
    );
    let out = ok(c.fs(&["persist", "/f.bin"]));
    assert!(out.contains("persisted file /f.bin"), "{out}");
    assert!(ok(c.fs(&["persist", "/f.bin"])).contains("already persisted"));
    assert_eq!(std::fs::read(c.ufs_dir.join("f.bin")).unwrap(), bytes);
    // free drops the cache; location says so; load brings it back.
    assert!(ok(c.fs(&["free", "/f.bin"])).contains("freed"));
    assert_eq!(
        ok(c.fs(&["location", "/f.bin"]))
            .matches("not cached")
            .count(),
        3
    );
    // (A worker may still hold a freed block until its next heartbeat: then it counts as cached.)
    let out = ok(c.fs(&["load", "/f.bin"]));
    assert!(
        out.contains("/f.bin loaded:") && out.contains("1 files"),
        "{out}"
    );
    wait_for("blocks cached again", Duration::from_secs(20), || {
        !ok(c.fs(&["location", "/f.bin"])).contains("not cached")
    });
    assert_eq!(
        ok(c.fs(&["checksum", "/f.bin"])),
        format!("md5sum: {}\n", md5_hex(&bytes))
    );
    one_line_error(&c.fs(&["load", "/none"]), 3, "load", "/none");
    one_line_error(&c.fs(&["persist", "/none"]), 3, "persist", "/none");
}

/// The workers holding each block of a file.
fn holders(c: &Cluster, path: &str) -> Vec<HashSet<u64>> {
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&c.client_config()).await.unwrap();
        fs.get_status(path)
            .await
            .unwrap()
            .blocks
            .iter()
            .map(|b| b.locations.iter().map(|l| l.worker_id).collect())
            .collect()
    })
}

/// Bytes cached on all workers, as their heartbeats report.
fn used_bytes(c: &Cluster) -> u64 {
    let rt = runtime();
    rt.block_on(async {
        let fs = FileSystem::connect(&c.client_config()).await.unwrap();
        fs.workers()
            .await
            .unwrap()
            .iter()
            .map(|w| w.used_bytes)
            .sum()
    })
}

#[test]
fn distributed_load_spreads_replicates_and_resumes() {
    let c = Cluster::start(ClusterOptions {
        workers: 3,
        sync_interval: "1h",
        ..Default::default()
    });
    let ext = c.dir.path().join("lake");
    std::fs::create_dir_all(ext.join("part")).unwrap();
    let mut sizes = Vec::new();
    for i in 0..6 {
        let n = 2 * MIB + i * 1000;
        std::fs::write(ext.join(format!("part/f{i}")), data(n, i as u64)).unwrap();
        sizes.push(n);
    }
    let uri = format!("file://{}", ext.display());
    ok(c.fs(&["mount", "/lake", &uri]));
    let cache = tempfile::tempdir().unwrap();
    let xdg = cache.path().to_str().unwrap();
    let dl = |args: &[&str]| {
        let mut a = vec!["distributedLoad"];
        a.extend_from_slice(args);
        c.fs_with_env(&a, &[("XDG_CACHE_HOME", xdg)])
    };

    // Replication 2 over 3 workers: every block on two distinct workers, all workers used.
    let out = ok(dl(&["--replication", "2", "--parallelism", "3", "/lake"]));
    assert!(out.contains("6 files: 6 loaded"), "{out}");
    assert!(out.contains("[6/6 files,"), "progress in files: {out}");
    assert!(out.contains("(replication 2)"), "{out}");
    let mut used = HashSet::new();
    for i in 0..6 {
        for h in holders(&c, &format!("/lake/part/f{i}")) {
            assert_eq!(h.len(), 2, "f{i}: {h:?}");
            used.extend(h);
        }
    }
    assert_eq!(used.len(), 3, "blocks spread over every worker");
    // Already cached with enough copies: nothing is read again.
    let out = ok(dl(&["--replication", "2", "/lake"]));
    assert!(out.contains("0 loaded, 6 already cached"), "{out}");
    assert!(
        std::fs::read_dir(cache.path().join("alluvium/distributed-load"))
            .unwrap()
            .next()
            .is_none(),
        "a finished run leaves no state"
    );
    // More copies than workers: capped, said so.
    let out = ok(dl(&["--replication", "5", "/lake/part/f0"]));
    assert!(out.contains("only 3 live workers"), "{out}");
    assert!(holders(&c, "/lake/part/f0").iter().all(|h| h.len() == 3));

    // An interrupted run: one file cannot be read (gone from the UFS, still in the namespace).
    ok(c.fs(&["free", "/lake"]));
    // Freed blocks leave the workers at their next heartbeat; until then a load finds them.
    wait_for("workers emptied", Duration::from_secs(20), || {
        used_bytes(&c) == 0
    });
    let f3 = std::fs::read(ext.join("part/f3")).unwrap();
    std::fs::remove_file(ext.join("part/f3")).unwrap();
    let out = dl(&["--parallelism", "1", "/lake"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    one_line_error(
        &out,
        out.status.code().unwrap(),
        "distributedLoad",
        "re-run to resume",
    );
    assert!(stdout(&out).contains("5 loaded"), "{}", stdout(&out));
    // Restore it and free the cache again: the re-run skips the five finished files (from its
    // state, not because they are cached) and loads only the one left.
    std::fs::write(ext.join("part/f3"), &f3).unwrap();
    ok(c.fs(&["free", "/lake"]));
    // Freed blocks leave the workers at their next heartbeat; until then a load finds them.
    wait_for("workers emptied", Duration::from_secs(20), || {
        used_bytes(&c) == 0
    });
    let out = ok(dl(&["/lake"]));
    assert!(
        out.contains("Resuming the load of /lake: 5 of 6 files were loaded by an earlier run"),
        "{out}"
    );
    assert!(
        out.contains("1 loaded, 0 already cached, 5 done by an earlier run"),
        "{out}"
    );
    assert!(holders(&c, "/lake/part/f3").iter().all(|h| h.len() == 1));
    assert!(holders(&c, "/lake/part/f0").iter().all(HashSet::is_empty));
    // --restart ignores an earlier state.
    let out = ok(dl(&["--restart", "/lake"]));
    assert!(out.contains("5 loaded, 1 already cached"), "{out}");

    // Nowhere to keep a state (no HOME, as in some pods): the load still runs.
    let out = ok(c.fs_with_env(
        &["distributedLoad", "/lake/part/f1"],
        &[("HOME", ""), ("XDG_CACHE_HOME", "")],
    ));
    assert!(out.contains("Not keeping a resumable state"), "{out}");
    assert!(out.contains("1 files: 0 loaded, 1 already cached"), "{out}");

    one_line_error(&dl(&["/none"]), 3, "distributedLoad", "/none");
    one_line_error(
        &dl(&["--replication", "x", "/lake"]),
        2,
        "distributedLoad",
        "--replication",
    );
}
