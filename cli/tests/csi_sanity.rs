//! csi-sanity, the Kubernetes CSI conformance suite (kubernetes-csi/csi-test v5.4.0, run by the
//! `sanity` script of the Kubernetes kit in `../shared/k8s`), against `alluvium csi --mode all`
//! backed by a real `alluvium local` cluster on loopback: every spec it runs must pass. Specs for
//! capabilities the driver does not claim (snapshots, expansion, ListVolumes, ...) are skipped
//! by csi-sanity itself.
//!
//! The kit is found at `$ALLUVIUM_K8S_KIT`, else `<repo>/../shared/k8s` (CI clones the repo with
//! `shared/` beside it). Without it these tests fail, saying so: they never pass unseen.
//!
//! Run: `cargo test --workspace --test csi_sanity -- --nocapture` (as root, with /dev/fuse).

mod csi_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use csi_support::{Local, Plugin, UnmountUnder};

/// The kit's folder, or a panic that says what is missing and how to point at it.
fn kit() -> PathBuf {
    let dir = match std::env::var_os("ALLUVIUM_K8S_KIT") {
        Some(d) => PathBuf::from(d),
        // <repo>/cli -> <repo>/../shared/k8s
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .expect("the repo has a parent directory")
            .join("shared/k8s"),
    };
    let script = dir.join("sanity");
    if !script.is_file() {
        panic!(
            "csi-sanity needs the Kubernetes kit (shared/k8s, with its `sanity` script): none at {}; \
             set ALLUVIUM_K8S_KIT=/path/to/shared/k8s",
            dir.display()
        );
    }
    dir
}

/// Counts from ginkgo's summary line, e.g.
/// `FAIL! -- 35 Passed | 2 Failed | 1 Pending | 54 Skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    passed: u32,
    failed: u32,
    pending: u32,
    skipped: u32,
}

fn parse_summary(output: &str) -> Option<Summary> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains(" Passed | ") && l.contains(" Failed"))?;
    let count = |what: &str| -> Option<u32> {
        line.split('|')
            .map(|part| part.rsplit("-- ").next().unwrap_or(part).trim())
            .find_map(|part| part.strip_suffix(what)?.trim().parse().ok())
    };
    Some(Summary {
        passed: count("Passed")?,
        failed: count("Failed")?,
        pending: count("Pending").unwrap_or(0),
        skipped: count("Skipped").unwrap_or(0),
    })
}

/// Starts a plugin against `local`, runs the kit's csi-sanity with `extra` flags, prints its
/// output and returns its summary (panicking when it printed none).
fn run_sanity(kit: &Path, local: &Local, name: &str, extra: &[&str]) -> Summary {
    let dir = local.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let _unmount = UnmountUnder(dir.clone());
    let mut plugin = Plugin::start(&dir, &local.master, &dir.join("state"), &["--mode=all"]);
    plugin.wait_listening(Duration::from_secs(30));
    // Provisioned volumes go under their own basePath on this cluster's master.
    let params = dir.join("volume-parameters.yaml");
    std::fs::write(
        &params,
        format!("master: \"{}\"\nbasePath: /csi-sanity\n", local.master),
    )
    .unwrap();
    let out = Command::new(kit.join("sanity"))
        .arg(format!("--csi.endpoint=unix://{}", plugin.socket.display()))
        .arg(format!("--csi.testvolumeparameters={}", params.display()))
        // Inside the test's temp dir, not the kit's shared work dir: runs never collide.
        .arg(format!("--csi.mountdir={}", dir.join("mount").display()))
        .arg(format!(
            "--csi.stagingdir={}",
            dir.join("staging").display()
        ))
        .arg("--ginkgo.no-color")
        .args(extra)
        .output()
        .expect("run the kit's sanity script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("---- csi-sanity ({name}) ----\n{text}");
    let summary = parse_summary(&text).unwrap_or_else(|| {
        panic!(
            "csi-sanity printed no summary line (exit {}); plugin log:\n{}",
            out.status,
            plugin.log_text()
        )
    });
    println!("csi-sanity ({name}): {summary:?}");
    assert_eq!(
        summary.failed,
        0,
        "csi-sanity ({name}) failed specs (see above); plugin log:\n{}",
        plugin.log_text()
    );
    assert!(out.status.success(), "csi-sanity exited {}", out.status);
    // What the driver claims (Controller with CREATE_DELETE_VOLUME; Node with STAGE_UNSTAGE,
    // GET_VOLUME_STATS, VOLUME_CONDITION) is 37 specs of csi-sanity v5.4.0: fewer means specs
    // were skipped that should run.
    assert!(
        summary.passed >= 37,
        "csi-sanity ({name}) ran only {} specs",
        summary.passed
    );
    summary
}

#[test]
fn summary_lines_parse() {
    let s = parse_summary(
        "Ran 37 of 92 Specs in 0.489 seconds\nFAIL! -- 35 Passed | 2 Failed | 1 Pending | 54 Skipped\n",
    );
    assert_eq!(
        s,
        Some(Summary {
            passed: 35,
            failed: 2,
            pending: 1,
            skipped: 54
        })
    );
    let s = parse_summary("SUCCESS! -- 37 Passed | 0 Failed | 1 Pending | 54 Skipped").unwrap();
    assert_eq!((s.passed, s.failed), (37, 0));
    assert_eq!(parse_summary("Ran 0 of 92 Specs"), None);
}

#[test]
fn csi_sanity_passes_against_a_local_cluster() {
    let kit = kit();
    let local = Local::start(None);
    run_sanity(&kit, &local, "sanity", &[]);
}

/// The same suite against a cluster that requires a cluster secret, given to the driver only
/// through the calls' `secrets` (`clusterSecret`), as Kubernetes passes a StorageClass's
/// provisioner and node-stage Secrets.
#[test]
fn csi_sanity_passes_with_the_cluster_secret_in_secrets() {
    let kit = kit();
    let secret = format!("sanity-{:016x}", rand::random::<u64>());
    let local = Local::start(Some(&secret));
    let file = local.dir.path().join("secrets.yaml");
    let entry = format!("  clusterSecret: \"{secret}\"\n");
    let body: String = [
        "CreateVolumeSecret",
        "DeleteVolumeSecret",
        "ControllerValidateVolumeCapabilitiesSecret",
        "NodeStageVolumeSecret",
        "NodePublishVolumeSecret",
    ]
    .iter()
    .map(|k| format!("{k}:\n{entry}"))
    .collect();
    std::fs::write(&file, body).unwrap();
    run_sanity(
        &kit,
        &local,
        "sanity-secret",
        &[&format!("--csi.secrets={}", file.display())],
    );
}
