//! `alluvium fsadmin report [summary|capacity|metrics|ufs]` (text and `--json`) against a real
//! cluster of two workers with a MEM and an SSD tier each.

mod support;

use std::process::Output;
use std::time::Duration;

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

fn json(out: Output) -> serde_json::Value {
    let s = ok(out);
    serde_json::from_str(&s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn reports_summary_capacity_metrics_and_ufs() {
    let c = Cluster::start(ClusterOptions {
        workers: 2,
        ssd: Some("32MiB"),
        ..Default::default()
    });
    let admin = |args: &[&str]| {
        let mut a = vec!["fsadmin"];
        a.extend_from_slice(args);
        c.run(&a)
    };
    let local = c.dir.path().join("f.bin");
    std::fs::write(&local, data(3 << 20, 1)).unwrap();
    ok(c.fs_with_env(
        &["copyFromLocal", local.to_str().unwrap(), "/f.bin"],
        &[("ALLUVIUM_CLIENT__WRITE_TYPE", "MUST_CACHE")],
    ));
    let ext = c.dir.path().join("ext");
    std::fs::create_dir_all(&ext).unwrap();
    ok(c.fs(&[
        "mount",
        "--option",
        "sync_interval=5m",
        "/ext",
        &format!("file://{}", ext.display()),
    ]));
    // Workers report their usage in heartbeats.
    wait_for("usage reported", Duration::from_secs(20), || {
        json(admin(&["report", "--json"]))["usedBytes"] == 3u64 << 20
    });

    let summary = ok(admin(&["report"]));
    assert!(
        summary.starts_with("Alluvium cluster summary:"),
        "{summary}"
    );
    for needle in [
        "Live Workers:           2",
        "Total Capacity:         192.0MiB",
        "MEM: 128.0MiB, SSD: 64.0MiB",
        "Used Capacity:          3.0MiB",
        &format!("127.0.0.1:{}", c.master_rpc),
    ] {
        assert!(summary.contains(needle), "{needle}: {summary}");
    }
    assert_eq!(ok(admin(&["report", "summary"])), summary);
    let j = json(admin(&["report", "summary", "--json"]));
    assert_eq!(j["liveWorkers"], 2);
    assert_eq!(j["tiers"].as_array().unwrap().len(), 2);

    let cap = ok(admin(&["report", "capacity"]));
    for needle in [
        "Capacity information for all workers:",
        "    Total Capacity: 192.0MiB",
        "        Tier MEM: 128.0MiB",
        "        Tier SSD: 64.0MiB",
        "    Used Capacity: 3.0MiB (1%)",
        "        Tier MEM: 3.0MiB (2%)",
        "    Free Capacity: 189.0MiB",
    ] {
        assert!(cap.contains(needle), "{needle}: {cap}");
    }
    for w in &c.workers {
        let line = cap
            .lines()
            .find(|l| l.starts_with(&format!("127.0.0.1:{}", w.rpc)))
            .unwrap_or_else(|| panic!("worker {} in {cap}", w.rpc));
        assert!(line.contains("LIVE") && line.contains("96.0MiB"), "{line}");
        assert!(line.contains("SSD: 0B/32.0MiB"), "{line}");
    }
    let j = json(admin(&["report", "capacity", "--json"]));
    let ws = j.as_array().unwrap();
    assert_eq!(ws.len(), 2);
    assert_eq!(
        ws.iter()
            .map(|w| w["usedBytes"].as_u64().unwrap())
            .sum::<u64>(),
        3 << 20
    );

    let m = ok(admin(&["report", "metrics"]));
    assert!(
        m.contains("Cluster metrics:") && m.contains("Master metrics:"),
        "{m}"
    );
    assert!(m.contains("(alluvium_master_rpc):"), "{m}");
    assert!(m.contains("method=CreateFile, code=OK:"), "{m}");
    assert!(
        m.contains("(alluvium_master_capacity_bytes): 192.0MiB"),
        "{m}"
    );
    let j = json(admin(&["report", "metrics", "--json"]));
    assert_eq!(j["files"], 1);
    let fams = j["metrics"].as_array().unwrap();
    assert!(fams
        .iter()
        .any(|f| f["name"] == "alluvium_master_live_workers" && f["samples"][0]["value"] == 2.0));

    let ufs = ok(admin(&["report", "ufs"]));
    assert!(
        ufs.contains(" on / (") && ufs.contains(" on /ext ("),
        "{ufs}"
    );
    assert!(ufs.contains("sync_interval=5m"), "{ufs}");
    let j = json(admin(&["report", "ufs", "--json"]));
    assert!(j.as_array().unwrap().iter().any(|m| m["path"] == "/ext"));

    let out = admin(&["report", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("alluvium: fsadmin: ") && err.contains("bogus"),
        "{err}"
    );
    // A master that is down: one line, exit 5.
    let out = c.run_with_env(
        &["fsadmin", "report"],
        &[
            ("ALLUVIUM_MASTER", "127.0.0.1:1"),
            ("ALLUVIUM_CLIENT__RETRY_DURATION", "500ms"),
        ],
    );
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("alluvium: fsadmin: "),
        "{}",
        stderr(&out)
    );
}

trait RunWithEnv {
    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output;
}

impl RunWithEnv for Cluster {
    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .env("ALLUVIUM_CONFIG", self.client_config_path())
            .env_remove("ALLUVIUM_MASTER")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run alluvium")
    }
}
