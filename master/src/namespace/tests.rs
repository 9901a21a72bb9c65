//! Namespace tests on a real RocksDB and a local-fs UFS.

use std::collections::HashMap;

use alluvium_common::{ids, ErrorCode};
use alluvium_proto::{
    CompleteFileRequest, CreateDirectoryRequest, CreateFileRequest, FileInfo, MountRequest,
    PersistenceState, SetAttributeRequest, WriteType,
};

use super::*;
use crate::testutil::{register, Env};

fn code<T: std::fmt::Debug>(r: Result<T>) -> (ErrorCode, String) {
    let e = r.unwrap_err();
    (e.code, e.message)
}

async fn list_all(env: &Env, c: &Checker, p: &str) -> Result<Vec<FileInfo>> {
    let mut rx = env.ns.list_status(c, p, false, "", 0, 0).await?;
    let mut out = Vec::new();
    while let Some(page) = rx.recv().await {
        out.extend(page?);
    }
    Ok(out)
}

async fn names(env: &Env, c: &Checker, p: &str) -> Vec<String> {
    list_all(env, c, p)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect()
}

fn file_req(p: &str, wt: WriteType) -> CreateFileRequest {
    CreateFileRequest {
        path: p.into(),
        write_type: wt as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn create_complete_get_and_blocks() {
    let env = Env::new();
    let su = env.su();
    let w = register(&env.blocks, "host-a");
    env.mkdir(&su, "/data", 0o777).await;
    let alice = env.user("alice", &["staff"]);
    let info = env
        .ns
        .create_file(&alice, &file_req("/data/a.bin", WriteType::MustCache))
        .await
        .unwrap();
    assert_eq!(
        (info.owner.as_str(), info.group.as_str(), info.mode),
        ("alice", "staff", 0o644)
    );
    assert!(!info.completed);
    // Not readable as complete until its blocks are committed.
    let (c, m) = code(
        env.ns
            .complete_file(
                &alice,
                &CompleteFileRequest {
                    path: "/data/a.bin".into(),
                    file_id: info.file_id,
                    length: 1500,
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(c, ErrorCode::FailedPrecondition);
    assert!(
        m.contains(&ids::block_id(info.file_id, 0).to_string()),
        "{m}"
    );
    env.blocks
        .commit_block(&alluvium_proto::CommitBlockRequest {
            worker_id: w,
            block_id: ids::block_id(info.file_id, 0),
            length: 1024,
            tier: "MEM".into(),
        })
        .unwrap();
    env.blocks
        .commit_block(&alluvium_proto::CommitBlockRequest {
            worker_id: w,
            block_id: ids::block_id(info.file_id, 1),
            length: 476,
            tier: "SSD".into(),
        })
        .unwrap();
    let done = env
        .ns
        .complete_file(
            &alice,
            &CompleteFileRequest {
                path: "/data/a.bin".into(),
                file_id: info.file_id,
                length: 1500,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(done.completed);
    let st = env
        .ns
        .get_status(&alice, "/data/a.bin", true)
        .await
        .unwrap();
    assert_eq!(st.length, 1500);
    assert_eq!(
        st.block_ids,
        vec![ids::block_id(st.file_id, 0), ids::block_id(st.file_id, 1)]
    );
    assert_eq!(st.blocks.len(), 2);
    assert_eq!(st.blocks[1].locations[0].tier, "SSD");
    assert_eq!(st.in_alluvium_percentage, 100);
    assert_eq!(st.in_memory_percentage, 68); // 1024 of 1500 bytes in MEM
    assert_eq!(st.ufs.as_ref().unwrap().ufs_path, "data/a.bin");
    assert!(st.ufs_uri.ends_with("/ufs/data/a.bin"), "{}", st.ufs_uri);
    // Completing twice is refused.
    let again = env
        .ns
        .complete_file(
            &alice,
            &CompleteFileRequest {
                path: "/data/a.bin".into(),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(code(again).0, ErrorCode::FailedPrecondition);
    // Overwrite replaces the file (new id) and drops the old blocks.
    let mut req = file_req("/data/a.bin", WriteType::MustCache);
    assert_eq!(
        code(env.ns.create_file(&alice, &req).await).0,
        ErrorCode::AlreadyExists
    );
    req.overwrite = true;
    let new = env.ns.create_file(&alice, &req).await.unwrap();
    assert_ne!(new.file_id, st.file_id);
    assert!(env
        .blocks
        .committed_length(ids::block_id(st.file_id, 0))
        .is_none());
    let (files, dirs) = env.ns.counts();
    assert_eq!((files, dirs), (1, 2));
}

#[tokio::test]
async fn through_files_have_no_blocks_and_complete_persisted() {
    let env = Env::new();
    let su = env.su();
    let id = env.through_file(&su, "/t/x.txt", b"hello").await;
    let st = env.ns.get_status(&su, "/t/x.txt", true).await.unwrap();
    assert_eq!(st.file_id, id);
    assert!(st.persisted && st.completed);
    assert_eq!(st.block_ids, vec![ids::block_id(id, 0)]);
    assert!(st.blocks[0].locations.is_empty());
    assert_eq!(st.in_alluvium_percentage, 0);
    // Its parent became persisted too (the UFS copy has children).
    assert!(env.ns.get_status(&su, "/t", false).await.unwrap().persisted);
    assert_eq!(
        std::fs::read(env.ufs_dir.join("t/x.txt")).unwrap(),
        b"hello"
    );
}

/// Issue 17's "a write reported as failed comes back": a CACHE_THROUGH write reached the UFS,
/// CompleteFile then failed (the master restarted), and the client deleted the incomplete
/// file. The UFS copy must go with it, or the next sync imports the failed write as complete.
#[tokio::test]
async fn deleting_an_incomplete_file_removes_what_its_writer_put_in_the_ufs() {
    let env = Env::with(|c| c.sync_interval = Duration::ZERO);
    let su = env.su();
    env.mkdir(&su, "/out", 0o755).await;
    for wt in [WriteType::CacheThrough, WriteType::Through] {
        let p = format!("/out/{wt:?}");
        env.ns.create_file(&su, &file_req(&p, wt)).await.unwrap();
        // What the worker does before the client's CompleteFile: the file is in the UFS.
        let res = env.ns.mount_table().resolve(&p).unwrap();
        let mut w = res.mount.ufs.writer(&res.rel).await.unwrap();
        w.write(bytes::Bytes::from_static(b"half a job"))
            .await
            .unwrap();
        w.close().await.unwrap();
        // The client's cleanup after the failed CompleteFile.
        env.ns.delete(&su, &p, false, false).await.unwrap();
        assert!(
            !env.ufs_dir.join(&res.rel).exists(),
            "{wt:?}: the UFS copy stayed"
        );
    }
    // Every listing syncs here: nothing comes back.
    assert!(names(&env, &su, "/out").await.is_empty());
    // A MUST_CACHE writer puts nothing in the UFS: what is there is not its to remove.
    std::fs::write(env.ufs_dir.join("out/cached"), b"someone else's").unwrap();
    env.ns
        .create_file(&su, &file_req("/out/cached", WriteType::MustCache))
        .await
        .unwrap_err();
    let mut req = file_req("/out/cached", WriteType::MustCache);
    req.overwrite = true;
    env.ns.create_file(&su, &req).await.unwrap();
    env.ns
        .delete(&su, "/out/cached", false, false)
        .await
        .unwrap();
    assert!(env.ufs_dir.join("out/cached").exists());
    // --alluvium-only still keeps whatever the UFS holds.
    env.ns
        .create_file(&su, &file_req("/out/kept", WriteType::Through))
        .await
        .unwrap();
    std::fs::create_dir_all(env.ufs_dir.join("out")).unwrap();
    std::fs::write(env.ufs_dir.join("out/kept"), b"k").unwrap();
    env.ns.delete(&su, "/out/kept", false, true).await.unwrap();
    assert!(env.ufs_dir.join("out/kept").exists());
}

#[tokio::test]
async fn permission_rules() {
    let env = Env::new();
    let su = env.su();
    let alice = env.user("alice", &["staff", "ml"]);
    let bob = env.user("bob", &["staff"]);
    let eve = env.user("eve", &["other"]);
    // Only a superuser can write the root (0755, owned by the master's user).
    let (c, _) = code(
        env.ns
            .create_file(&alice, &file_req("/x", WriteType::MustCache))
            .await,
    );
    assert_eq!(c, ErrorCode::PermissionDenied);
    env.mkdir(&su, "/shared", 0o777).await;
    env.mkdir(&alice, "/shared/alice", 0o750).await;
    let mut req = file_req("/shared/alice/f", WriteType::Through);
    req.mode = Some(0o640);
    env.ns.create_file(&alice, &req).await.unwrap();
    // Group members traverse and read; others cannot even traverse.
    assert!(env
        .ns
        .get_status(&bob, "/shared/alice/f", false)
        .await
        .is_ok());
    assert_eq!(names(&env, &bob, "/shared/alice").await, vec!["f"]);
    let (c, m) = code(env.ns.get_status(&eve, "/shared/alice/f", false).await);
    assert_eq!(c, ErrorCode::PermissionDenied);
    assert!(m.contains("eve"), "{m}");
    assert_eq!(
        code(list_all(&env, &eve, "/shared/alice").await).0,
        ErrorCode::PermissionDenied
    );
    // Creating and deleting need w on the parent: the group has only r-x.
    assert_eq!(
        code(
            env.ns
                .create_file(&bob, &file_req("/shared/alice/g", WriteType::MustCache))
                .await
        )
        .0,
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(env.ns.delete(&bob, "/shared/alice/f", false, false).await).0,
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        code(env.ns.rename(&bob, "/shared/alice/f", "/shared/f").await).0,
        ErrorCode::PermissionDenied
    );
    // chmod: owner only; chown: superuser only; chgrp: owner and member of the group.
    let attr = |mode: Option<u32>, owner: Option<&str>, group: Option<&str>| SetAttributeRequest {
        path: "/shared/alice/f".into(),
        mode,
        owner: owner.map(String::from),
        group: group.map(String::from),
        ..Default::default()
    };
    assert_eq!(
        code(
            env.ns
                .set_attribute(&bob, &attr(Some(0o777), None, None))
                .await
        )
        .0,
        ErrorCode::PermissionDenied
    );
    env.ns
        .set_attribute(&alice, &attr(Some(0o600), None, None))
        .await
        .unwrap();
    assert_eq!(
        code(
            env.ns
                .set_attribute(&alice, &attr(None, Some("bob"), None))
                .await
        )
        .0,
        ErrorCode::PermissionDenied
    );
    env.ns
        .set_attribute(&alice, &attr(None, None, Some("ml")))
        .await
        .unwrap();
    assert_eq!(
        code(
            env.ns
                .set_attribute(&alice, &attr(None, None, Some("wheel")))
                .await
        )
        .0,
        ErrorCode::PermissionDenied
    );
    env.ns
        .set_attribute(&su, &attr(None, Some("bob"), Some("wheel")))
        .await
        .unwrap();
    let st = env
        .ns
        .get_status(&su, "/shared/alice/f", false)
        .await
        .unwrap();
    assert_eq!(
        (st.owner.as_str(), st.group.as_str(), st.mode),
        ("bob", "wheel", 0o600)
    );
    // Explicit times (utimes): owner (now bob) or superuser only; nothing changes on refusal.
    let times = SetAttributeRequest {
        path: "/shared/alice/f".into(),
        mtime_ms: Some(1_600_000_000_000),
        atime_ms: Some(1_600_000_001_000),
        ..Default::default()
    };
    assert_eq!(
        code(env.ns.set_attribute(&alice, &times).await).0,
        ErrorCode::PermissionDenied
    );
    env.ns.set_attribute(&bob, &times).await.unwrap();
    let st = env
        .ns
        .get_status(&su, "/shared/alice/f", false)
        .await
        .unwrap();
    assert_eq!(
        (st.last_modification_time_ms, st.last_access_time_ms),
        (1_600_000_000_000, 1_600_000_001_000)
    );
    // Pin / TTL need w on the path.
    let pin = SetAttributeRequest {
        path: "/shared/alice/f".into(),
        pinned: Some(true),
        ..Default::default()
    };
    assert_eq!(
        code(env.ns.set_attribute(&alice, &pin).await).0,
        ErrorCode::PermissionDenied
    );
    env.ns.set_attribute(&bob, &pin).await.unwrap();
    // A superuser (by supergroup membership) passes every check.
    let admin = env.user("admin", &["supergroup"]);
    assert!(env
        .ns
        .get_status(&admin, "/shared/alice/f", false)
        .await
        .is_ok());
    env.ns
        .delete(&admin, "/shared/alice", true, false)
        .await
        .unwrap();
    // Recursive chmod applies to everything below.
    env.mkdir(&alice, "/shared/r/s", 0o755).await;
    env.ns
        .set_attribute(
            &alice,
            &SetAttributeRequest {
                path: "/shared/r".into(),
                mode: Some(0o700),
                recursive: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        env.ns
            .get_status(&alice, "/shared/r/s", false)
            .await
            .unwrap()
            .mode,
        0o700
    );
}

/// A block size past any file used to reach the worker as an absurd reservation; it is
/// refused at create, and changes nothing.
#[tokio::test]
async fn block_sizes_past_the_maximum_are_refused_at_create() {
    let env = Env::new();
    let su = env.su();
    for block_size in [ids::MAX_BLOCK_SIZE + 1, u64::MAX] {
        let mut req = file_req("/big-blocks", WriteType::MustCache);
        req.block_size = block_size;
        let (c, m) = code(env.ns.create_file(&su, &req).await);
        assert_eq!(c, ErrorCode::InvalidArgument);
        assert!(m.contains("larger than the maximum"), "{m}");
    }
    assert!(env.ns.get_status(&su, "/big-blocks", false).await.is_err());
    let mut req = file_req("/big-blocks", WriteType::MustCache);
    req.block_size = ids::MAX_BLOCK_SIZE;
    env.ns.create_file(&su, &req).await.unwrap();
}

/// Issue 17: names longer than the UFS allows were accepted, and their persist then failed
/// forever. The root UFS here is a local directory: names of at most 255 bytes.
#[tokio::test]
async fn names_longer_than_the_ufs_allows_are_refused() {
    let env = Env::new();
    let su = env.su();
    let too_long = format!("/{}", "n".repeat(256));
    for wt in [WriteType::MustCache, WriteType::Through] {
        let (c, m) = code(env.ns.create_file(&su, &file_req(&too_long, wt)).await);
        assert_eq!(c, ErrorCode::InvalidArgument);
        assert!(m.contains("256 bytes is longer than the 255"), "{m}");
    }
    let dir_req = CreateDirectoryRequest {
        path: too_long.clone(),
        ..Default::default()
    };
    assert_eq!(
        code(env.ns.create_directory(&su, &dir_req).await).0,
        ErrorCode::InvalidArgument
    );
    env.through_file(&su, "/short", b"s").await;
    assert_eq!(
        code(env.ns.rename(&su, "/short", &too_long).await).0,
        ErrorCode::InvalidArgument
    );
    assert_eq!(names(&env, &su, "/").await, vec!["short"]);
    // The longest name a local file system takes is written through (its temporary name is
    // kept short too).
    let longest = format!("/{}", "n".repeat(255));
    env.through_file(&su, &longest, b"l").await;
    assert_eq!(
        std::fs::read(env.ufs_dir.join(&longest[1..])).unwrap(),
        b"l"
    );
}

#[tokio::test]
async fn path_escapes_are_refused() {
    let env = Env::new();
    let su = env.su();
    for bad in ["/../etc", "/a/../../x", "relative", "/a\0b"] {
        let (c, _) = code(env.ns.get_status(&su, bad, false).await);
        assert_eq!(c, ErrorCode::InvalidArgument, "{bad}");
        let (c, _) = code(
            env.ns
                .create_file(&su, &file_req(bad, WriteType::Through))
                .await,
        );
        assert_eq!(c, ErrorCode::InvalidArgument, "{bad}");
    }
    // `..` inside the namespace is fine and stays inside.
    env.mkdir(&su, "/a/b", 0o755).await;
    assert_eq!(
        env.ns
            .get_status(&su, "/a/b/../b/.", false)
            .await
            .unwrap()
            .path,
        "/a/b"
    );
    assert!(!env.dir.path().join("x").exists());
}

#[tokio::test]
async fn delete_rules_and_ufs_copies() {
    let env = Env::new();
    let su = env.su();
    env.through_file(&su, "/d/sub/f1", b"1").await;
    env.through_file(&su, "/d/f2", b"2").await;
    let (c, m) = code(env.ns.delete(&su, "/d", false, false).await);
    assert_eq!(c, ErrorCode::FailedPrecondition);
    assert!(m.contains("directory not empty"), "{m}");
    assert_eq!(
        code(env.ns.delete(&su, "/", true, false).await).0,
        ErrorCode::PermissionDenied
    );
    // alluvium_only keeps the UFS copy (and a later sync would bring it back).
    env.ns.delete(&su, "/d/f2", false, true).await.unwrap();
    assert!(env.ufs_dir.join("d/f2").exists());
    // A plain delete removes the UFS copy of files and whole directories.
    env.ns.delete(&su, "/d/sub/f1", false, false).await.unwrap();
    assert!(!env.ufs_dir.join("d/sub/f1").exists());
    env.ns.delete(&su, "/d", true, false).await.unwrap();
    assert!(!env.ufs_dir.join("d").exists());
    assert_eq!(
        code(env.ns.get_status(&su, "/d", false).await).0,
        ErrorCode::NotFound
    );
    assert_eq!(env.ns.counts(), (0, 1));
    // Cached-only (not persisted) files never touch the UFS.
    let w = register(&env.blocks, "h");
    let id = env.cached_file(&su, "/c/f", 10, w, false).await;
    env.ns.delete(&su, "/c", true, false).await.unwrap();
    assert!(env.blocks.committed_length(ids::block_id(id, 0)).is_none());
}

#[tokio::test]
async fn rename_moves_persisted_ufs_entries() {
    let env = Env::new();
    let su = env.su();
    env.through_file(&su, "/r/a.txt", b"abc").await;
    env.mkdir(&su, "/r2", 0o755).await;
    env.ns.rename(&su, "/r/a.txt", "/r2/b.txt").await.unwrap();
    assert!(!env.ufs_dir.join("r/a.txt").exists());
    assert_eq!(std::fs::read(env.ufs_dir.join("r2/b.txt")).unwrap(), b"abc");
    let st = env.ns.get_status(&su, "/r2/b.txt", false).await.unwrap();
    assert_eq!((st.name.as_str(), st.length), ("b.txt", 3));
    env.ns.rename(&su, "/r2", "/r3").await.unwrap();
    assert!(env.ufs_dir.join("r3/b.txt").exists());
    assert_eq!(
        code(env.ns.rename(&su, "/r3", "/r3/in").await).0,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(env.ns.rename(&su, "/nope", "/x").await).0,
        ErrorCode::NotFound
    );
    env.mkdir(&su, "/r4", 0o755).await;
    assert_eq!(
        code(env.ns.rename(&su, "/r3", "/r4").await).0,
        ErrorCode::AlreadyExists
    );
    // Mount points and cross-mount renames are refused.
    let other = env.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    mount(&env, "/m", &other.display().to_string(), false, &[])
        .await
        .unwrap();
    assert_eq!(
        code(env.ns.rename(&su, "/m", "/m2").await).0,
        ErrorCode::FailedPrecondition
    );
    let (c, m) = code(env.ns.rename(&su, "/r3/b.txt", "/m/b.txt").await);
    assert_eq!(c, ErrorCode::InvalidArgument);
    assert!(m.contains("different mounts"), "{m}");
}

#[tokio::test]
async fn mkdir_p_and_allow_exists() {
    let env = Env::new();
    let su = env.su();
    let req =
        |p: &str, recursive: bool, allow_exists: bool, wt: WriteType| CreateDirectoryRequest {
            path: p.into(),
            recursive,
            mode: None,
            allow_exists,
            write_type: wt as i32,
        };
    let (c, _) = code(
        env.ns
            .create_directory(&su, &req("/a/b/c", false, false, WriteType::CacheThrough))
            .await,
    );
    assert_eq!(c, ErrorCode::NotFound);
    env.ns
        .create_directory(&su, &req("/a/b/c", true, false, WriteType::CacheThrough))
        .await
        .unwrap();
    assert!(env.ufs_dir.join("a/b/c").is_dir());
    assert!(
        env.ns
            .get_status(&su, "/a/b", false)
            .await
            .unwrap()
            .persisted
    );
    let (c, _) = code(
        env.ns
            .create_directory(&su, &req("/a/b/c", true, false, WriteType::CacheThrough))
            .await,
    );
    assert_eq!(c, ErrorCode::AlreadyExists);
    env.ns
        .create_directory(&su, &req("/a/b/c", true, true, WriteType::CacheThrough))
        .await
        .unwrap();
    // MUST_CACHE directories stay out of the UFS.
    let d = env
        .ns
        .create_directory(&su, &req("/mc", false, false, WriteType::MustCache))
        .await
        .unwrap();
    assert!(!d.persisted);
    assert!(!env.ufs_dir.join("mc").exists());
    assert_eq!(
        env.ns
            .get_status(&su, "/a", false)
            .await
            .unwrap()
            .child_count,
        1
    );
}

async fn mount(
    env: &Env,
    p: &str,
    uri: &str,
    read_only: bool,
    opts: &[(&str, &str)],
) -> Result<()> {
    env.ns
        .mount(
            &env.su(),
            &MountRequest {
                path: p.into(),
                ufs_uri: uri.into(),
                read_only,
                options: opts
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                shared: false,
            },
        )
        .await
}

#[tokio::test]
async fn mount_rules() {
    let env = Env::new();
    let su = env.su();
    let base = env.dir.path().join("stores");
    for d in ["a", "b", "a/inner"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    std::fs::write(base.join("b/existing.txt"), b"hi").unwrap();
    let a = base.join("a").display().to_string();
    let b = base.join("b").display().to_string();
    mount(&env, "/ma", &a, false, &[("secret_access_key", "hunter2")])
        .await
        .unwrap();
    let (c, _) = code(mount(&env, "/ma/nested", &b, false, &[]).await);
    assert_eq!(c, ErrorCode::InvalidArgument, "nested");
    let (c, m) = code(mount(&env, "/mi", &format!("{a}/inner"), false, &[]).await);
    assert_eq!(c, ErrorCode::InvalidArgument, "{m}");
    assert!(m.contains("overlaps"), "{m}");
    let (c, _) = code(
        mount(
            &env,
            "/root-overlap",
            &env.ufs_dir.join("x").display().to_string(),
            false,
            &[],
        )
        .await,
    );
    assert_eq!(c, ErrorCode::InvalidArgument);
    let (c, m) = code(
        mount(
            &env,
            "/missing",
            &base.join("nope").display().to_string(),
            false,
            &[],
        )
        .await,
    );
    assert_eq!(c, ErrorCode::NotFound, "{m}");
    assert!(
        !base.join("nope").exists(),
        "a missing UFS dir must not be created"
    );
    let (c, m) = code(
        mount(
            &env,
            "/s3",
            "s3://bucket/p",
            false,
            &[
                ("endpoint", "http://127.0.0.1:1"),
                ("access_key_id", "a"),
                ("secret_access_key", "b"),
            ],
        )
        .await,
    );
    assert_eq!(c, ErrorCode::Unavailable, "{m}");
    assert!(m.contains("/s3"), "{m}");
    // Only superusers mount.
    let alice = env.user("alice", &[]);
    let req = MountRequest {
        path: "/mb".into(),
        ufs_uri: b.clone(),
        ..Default::default()
    };
    assert_eq!(
        code(env.ns.mount(&alice, &req).await).0,
        ErrorCode::PermissionDenied
    );
    mount(&env, "/mb", &b, true, &[]).await.unwrap();
    // Read-only: files load from the UFS, but nothing may change.
    let st = env
        .ns
        .get_status(&su, "/mb/existing.txt", false)
        .await
        .unwrap();
    assert_eq!((st.length, st.persisted), (2, true));
    let (c, m) = code(
        env.ns
            .create_file(&su, &file_req("/mb/new", WriteType::Through))
            .await,
    );
    assert_eq!(c, ErrorCode::PermissionDenied);
    assert!(m.contains("read-only"), "{m}");
    let (c, m) = code(env.ns.delete(&su, "/mb/existing.txt", false, false).await);
    assert_eq!(c, ErrorCode::PermissionDenied);
    assert!(m.contains("read-only"), "{m}");
    assert!(base.join("b/existing.txt").exists());
    // Mount points cannot be deleted; unmount drops the subtree from the namespace only.
    let (c, m) = code(env.ns.delete(&su, "/mb", true, false).await);
    assert_eq!(c, ErrorCode::FailedPrecondition);
    assert!(m.contains("unmount"), "{m}");
    // Mount table: redacted; GetUfsMount: revealed.
    let infos = env.ns.mount_infos();
    assert_eq!(infos.len(), 3);
    let ma = infos.iter().find(|m| m.path == "/ma").unwrap();
    assert_eq!(ma.options["secret_access_key"], alluvium_ufs::REDACTED);
    assert_eq!(
        env.ns.ufs_mount(ma.mount_id).unwrap().options["secret_access_key"],
        "hunter2"
    );
    env.ns.unmount(&su, "/mb").await.unwrap();
    assert_eq!(
        code(env.ns.get_status(&su, "/mb", false).await).0,
        ErrorCode::NotFound
    );
    assert!(base.join("b/existing.txt").exists());
    assert_eq!(
        code(env.ns.unmount(&su, "/").await).0,
        ErrorCode::InvalidArgument
    );
    // The mount table survives a restart.
    let env = env.restart();
    assert_eq!(env.ns.mount_infos().len(), 2);
    assert!(
        env.ns
            .get_status(&env.su(), "/ma", false)
            .await
            .unwrap()
            .mount_point
    );
}

#[tokio::test]
async fn metadata_sync_bounded_staleness() {
    let env = Env::new();
    let su = env.su();
    let store = env.dir.path().join("synced");
    std::fs::create_dir_all(store.join("dir")).unwrap();
    std::fs::write(store.join("a.txt"), b"aaa").unwrap();
    std::fs::write(store.join("dir/b.txt"), b"bb").unwrap();
    mount(
        &env,
        "/s",
        &store.display().to_string(),
        false,
        &[("sync_interval", "0s")],
    )
    .await
    .unwrap();
    // Files created directly in the UFS appear on list and get.
    assert_eq!(names(&env, &su, "/s").await, vec!["a.txt", "dir"]);
    let st = env.ns.get_status(&su, "/s/dir/b.txt", false).await.unwrap();
    assert_eq!((st.length, st.persisted, st.completed), (2, true, true));
    // A cached-only file under the mount is never removed by a sync.
    let w = register(&env.blocks, "h");
    env.cached_file(&su, "/s/only-here", 5, w, false).await;
    // Removed ones vanish, changed ones are refreshed (as a new inode).
    std::fs::remove_file(store.join("dir/b.txt")).unwrap();
    std::fs::write(store.join("a.txt"), b"a longer content").unwrap();
    std::fs::write(store.join("new.txt"), b"n").unwrap();
    let listed = list_all(&env, &su, "/s").await.unwrap();
    let by_name: HashMap<_, _> = listed.iter().map(|f| (f.name.as_str(), f)).collect();
    assert_eq!(by_name["a.txt"].length, 16);
    assert_ne!(by_name["a.txt"].file_id, 0);
    assert!(by_name.contains_key("new.txt"));
    assert!(by_name.contains_key("only-here"));
    assert!(!by_name["only-here"].persisted);
    assert_eq!(
        code(env.ns.get_status(&su, "/s/dir/b.txt", false).await).0,
        ErrorCode::NotFound
    );
    assert!(names(&env, &su, "/s/dir").await.is_empty());
    // Directory removed in the UFS vanishes from the namespace.
    std::fs::remove_dir(store.join("dir")).unwrap();
    assert_eq!(
        names(&env, &su, "/s").await,
        vec!["a.txt", "new.txt", "only-here"]
    );
}

#[tokio::test]
async fn metadata_sync_waits_for_the_interval() {
    let env = Env::new();
    let su = env.su();
    let store = env.dir.path().join("slow");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join("f"), b"1").unwrap();
    mount(
        &env,
        "/slow",
        &store.display().to_string(),
        false,
        &[("sync_interval", "1500ms")],
    )
    .await
    .unwrap();
    assert_eq!(names(&env, &su, "/slow").await, vec!["f"]);
    std::fs::remove_file(store.join("f")).unwrap();
    // Within the interval the (stale) namespace answers; after it, the UFS is checked again.
    assert_eq!(names(&env, &su, "/slow").await, vec!["f"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if names(&env, &su, "/slow").await.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "f never vanished");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // LoadMetadata ignores the interval.
    std::fs::write(store.join("g"), b"1").unwrap();
    let r = env.ns.load_metadata(&su, "/slow", true).await.unwrap();
    assert_eq!(r.loaded, 1);
}

#[tokio::test]
async fn paged_listing_of_a_large_directory() {
    let env = Env::new();
    let su = env.su();
    env.mkdir(&su, "/big", 0o755).await;
    let n = 3000;
    for i in 0..n {
        env.ns
            .create_file(
                &su,
                &file_req(&format!("/big/f{i:05}"), WriteType::MustCache),
            )
            .await
            .unwrap();
    }
    let mut rx = env
        .ns
        .list_status(&su, "/big", false, "", 0, 500)
        .await
        .unwrap();
    let mut pages = 0;
    let mut all = Vec::new();
    while let Some(p) = rx.recv().await {
        let p = p.unwrap();
        assert!(p.len() <= 500);
        pages += 1;
        all.extend(p.into_iter().map(|f| f.name));
    }
    assert_eq!(pages, 6);
    assert_eq!(all.len(), n);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    // Resume after a name, with a limit.
    let mut rx = env
        .ns
        .list_status(&su, "/big", false, "f01000", 10, 0)
        .await
        .unwrap();
    let page = rx.recv().await.unwrap().unwrap();
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].name, "f01001");
    assert!(rx.recv().await.is_none());
    assert_eq!(
        env.ns
            .get_status(&su, "/big", false)
            .await
            .unwrap()
            .child_count,
        n as u64
    );
    // Recursive listing includes nested entries.
    env.mkdir(&su, "/big/sub", 0o755).await;
    let mut rx = env
        .ns
        .list_status(&su, "/big", true, "", 0, 1000)
        .await
        .unwrap();
    let mut count = 0;
    while let Some(p) = rx.recv().await {
        count += p.unwrap().len();
    }
    assert_eq!(count, n + 1);
}

#[tokio::test]
async fn free_and_async_persistence_state() {
    let env = Env::new();
    let su = env.su();
    let w = register(&env.blocks, "h");
    let id = env.cached_file(&su, "/f/cached", 10, w, false).await;
    let (c, m) = code(env.ns.free(&su, "/f/cached", false, false).await);
    assert_eq!(c, ErrorCode::FailedPrecondition);
    assert!(m.contains("not persisted"), "{m}");
    env.ns
        .schedule_async_persistence(&su, "/f/cached")
        .await
        .unwrap();
    let st = env.ns.get_status(&su, "/f/cached", false).await.unwrap();
    assert_eq!(st.persistence_state, PersistenceState::ToBePersisted as i32);
    assert_eq!(env.store.persist_queue(0, 10).unwrap(), vec![id]);
    // A persisted, pinned file needs forced.
    let id2 = env.cached_file(&su, "/f/p", 10, w, false).await;
    env.stage_persisted_copy(id2, &[0u8; 10]);
    let mut tx = env.ns.tx();
    tx.op(Op::PutPersist(id2));
    let mut r = tx.get(id2).unwrap().unwrap();
    r.persistence_state = PersistenceState::ToBePersisted as i32;
    tx.put(r);
    env.ns.commit(tx).unwrap();
    assert_eq!(
        env.ns.publish_persisted(id2, None).await.unwrap(),
        Publish::Published
    );
    assert_eq!(std::fs::read(env.ufs_dir.join("f/p")).unwrap(), [0u8; 10]);
    env.ns
        .set_attribute(
            &su,
            &SetAttributeRequest {
                path: "/f/p".into(),
                pinned: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(env.blocks.pinned_ids(), vec![id2]);
    assert_eq!(
        code(env.ns.free(&su, "/f/p", false, false).await).0,
        ErrorCode::FailedPrecondition
    );
    env.ns.free(&su, "/f/p", false, true).await.unwrap();
    let st = env.ns.get_status(&su, "/f/p", false).await.unwrap();
    assert!(!st.pinned && st.persisted);
    assert_eq!(st.in_alluvium_percentage, 0);
    assert!(env.blocks.pinned_ids().is_empty());
    // A freed file can be cached again (read through from the UFS).
    env.blocks
        .commit_block(&alluvium_proto::CommitBlockRequest {
            worker_id: w,
            block_id: ids::block_id(id2, 0),
            length: 10,
            tier: "MEM".into(),
        })
        .unwrap();
    let st = env.ns.get_status(&su, "/f/p", false).await.unwrap();
    assert_eq!(st.in_alluvium_percentage, 100);
}

#[tokio::test]
async fn everything_acknowledged_survives_a_restart() {
    let env = Env::new();
    let su = env.su();
    env.mkdir(&su, "/keep/deep", 0o700).await;
    let id = env.through_file(&su, "/keep/deep/file", b"xyz").await;
    let (files, dirs) = env.ns.counts();
    let env = env.restart();
    let st = env
        .ns
        .get_status(&env.su(), "/keep/deep/file", false)
        .await
        .unwrap();
    assert_eq!((st.file_id, st.length, st.persisted), (id, 3, true));
    assert_eq!(env.ns.counts(), (files, dirs));
    // Ids are never reused.
    let info = env
        .ns
        .create_file(&env.su(), &file_req("/keep/new", WriteType::MustCache))
        .await
        .unwrap();
    assert!(info.file_id > id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mutations_stay_consistent() {
    let env = Env::new();
    let su = env.su();
    env.mkdir(&su, "/c", 0o777).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let ns = env.ns.clone();
        let su = su.clone();
        tasks.push(tokio::spawn(async move {
            let p = format!("/c/f{}", i % 48); // some names collide on purpose
            let r = ns
                .create_file(&su, &file_req(&p, WriteType::MustCache))
                .await;
            if i % 3 == 0 {
                let _ = ns.delete(&su, &p, false, false).await;
            }
            r.map(|_| ()).or_else(|e| match e.code {
                ErrorCode::AlreadyExists | ErrorCode::NotFound => Ok(()),
                _ => Err(e),
            })
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let listed = names(&env, &su, "/c").await;
    let st = env.ns.get_status(&su, "/c", false).await.unwrap();
    assert_eq!(st.child_count, listed.len() as u64);
    assert_eq!(env.ns.counts().0, listed.len() as u64);
    let env = env.restart();
    assert_eq!(env.ns.counts().0, listed.len() as u64);
}
