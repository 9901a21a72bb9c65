//! `alluvium fuse` from the real binary: a daemon mount that plain programs use, a foreground
//! mount that a SIGTERM unmounts cleanly, and `fuse unmount`. (The FUSE operations themselves are
//! tested in client/tests/fuse_mount.rs.)

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn mounted(mnt: &std::path::Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
        })
        .unwrap_or(false)
}

#[test]
fn daemon_and_foreground_mounts_from_the_binary() {
    let cluster = Cluster::start(ClusterOptions::default());
    assert!(cluster.fs(&["mkdir", "/fz"]).status.success());
    let local = cluster.dir.path().join("in.txt");
    std::fs::write(&local, "through fuse\n").unwrap();
    assert!(cluster
        .fs(&["copyFromLocal", local.to_str().unwrap(), "/fz/in.txt"])
        .status
        .success());
    let mnt = cluster.dir.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();

    // Daemon: returns once mounted; plain programs read and write through it.
    let out = cluster.run(&["fuse", "mount", "/fz", mnt.to_str().unwrap(), "--daemon"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(mounted(&mnt));
    assert_eq!(
        std::fs::read_to_string(mnt.join("in.txt")).unwrap(),
        "through fuse\n"
    );
    std::fs::write(mnt.join("out.txt"), "written by a plain program\n").unwrap();
    assert_eq!(
        stdout(&cluster.fs(&["cat", "/fz/out.txt"])),
        "written by a plain program\n"
    );
    let out = cluster.run(&["fuse", "unmount", mnt.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("daemon mount gone", Duration::from_secs(10), || {
        !mounted(&mnt)
    });

    // Foreground: SIGTERM unmounts and exits 0.
    let mut child = Command::new(BIN)
        .args(["fuse", "mount", "/fz", mnt.to_str().unwrap()])
        .env("ALLUVIUM_CONFIG", cluster.client_config_path())
        .env_remove("ALLUVIUM_MASTER")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("foreground mount", Duration::from_secs(15), || {
        mounted(&mnt)
    });
    assert_eq!(
        std::fs::read_to_string(mnt.join("in.txt")).unwrap(),
        "through fuse\n"
    );
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM, got {status}");
    assert!(!mounted(&mnt), "SIGTERM leaves no stale mount");

    // Bad input: one line, non-zero.
    let out = cluster.run(&["fuse", "unmount", mnt.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim_end().lines().count(),
        1,
        "{}",
        stderr(&out)
    );
}
