//! The web UI and REST API of a real cluster (master and worker processes with MEM and SSD
//! tiers): browsing into a file shows its blocks with their worker and tier and the first KiB of
//! its content, read through a worker from the cache or (once freed) from the UFS; the worker's
//! page shows its tiers; the metrics page samples the worker.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}; stderr: {}; stdout: {}",
        out.status.code(),
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

fn get_json(url: &str) -> Value {
    let body = http_get(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

#[test]
fn browse_preview_worker_page_and_sampled_metrics() {
    let c = Cluster::start(ClusterOptions {
        ssd: Some("64MiB"),
        ..Default::default()
    });
    let master = format!("http://127.0.0.1:{}", c.master_web);
    let worker = format!("http://127.0.0.1:{}", c.workers[0].web);
    let local = c.dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let text = "hello from the web UI\n".repeat(100); // 2,200 bytes: more than the preview
    std::fs::write(local.join("readme.txt"), &text).unwrap();
    std::fs::write(local.join("big.bin"), data(3 << 20, 7)).unwrap();
    ok(c.fs(&["mkdir", "-p", "/docs/nested"]));
    ok(c.fs(&[
        "copyFromLocal",
        "--write-type",
        "CACHE_THROUGH",
        local.join("readme.txt").to_str().unwrap(),
        "/docs/nested/readme.txt",
    ]));
    ok(c.fs(&[
        "copyFromLocal",
        local.join("big.bin").to_str().unwrap(),
        "/docs/big.bin",
    ]));

    // A directory, then the text file: blocks with worker and tier, the first KiB as text.
    let dir = http_get(&format!("{master}/browse?path=/docs")).unwrap();
    assert!(dir.contains("nested/") && dir.contains("big.bin"), "{dir}");
    let page = http_get(&format!("{master}/browse?path=/docs/nested/readme.txt")).unwrap();
    assert!(page.contains("hello from the web UI"), "{page}");
    assert!(page.contains("First 1024 bytes"), "{page}");
    assert!(page.contains("persisted"), "{page}");
    let f = get_json(&format!(
        "{master}/api/v1/browse?path=/docs/nested/readme.txt"
    ));
    assert_eq!(f["entry"]["length"], text.len());
    assert_eq!(f["entry"]["inMemoryPercentage"], 100);
    assert_eq!(f["entry"]["persistenceState"], "PERSISTED");
    let loc = &f["blocks"][0]["locations"][0];
    assert_eq!(loc["tier"], "MEM", "{f}");
    assert_eq!(loc["rpcPort"], c.workers[0].rpc as u64, "{f}");
    let preview = f["preview"]["text"].as_str().unwrap();
    assert_eq!(preview, &text[..1024]);
    assert_eq!(f["preview"]["truncated"], true);

    // A binary file: three blocks, a hex dump.
    let b = get_json(&format!("{master}/api/v1/browse?path=/docs/big.bin"));
    assert_eq!(b["blocks"].as_array().unwrap().len(), 3, "{b}");
    assert!(b["preview"]["text"].is_null(), "{b}");
    assert!(
        b["preview"]["hex"]
            .as_str()
            .unwrap()
            .starts_with("00000000  "),
        "{b}"
    );

    // Freed from the cache: the preview is read from the UFS through the worker, uncached.
    ok(c.fs(&["free", "/docs/nested/readme.txt"]));
    wait_for(
        "the file to leave the cache",
        Duration::from_secs(20),
        || {
            let f = get_json(&format!(
                "{master}/api/v1/browse?path=/docs/nested/readme.txt"
            ));
            f["blocks"][0]["locations"]
                .as_array()
                .is_some_and(|l| l.is_empty())
        },
    );
    // The worker drops the block at its next heartbeat; big.bin's three blocks stay.
    wait_for(
        "the worker to drop the block",
        Duration::from_secs(20),
        || get_json(&format!("{worker}/api/v1/worker"))["block_count"] == 3,
    );
    let f = get_json(&format!(
        "{master}/api/v1/browse?path=/docs/nested/readme.txt"
    ));
    assert_eq!(f["preview"]["text"].as_str().unwrap(), &text[..1024], "{f}");
    assert_eq!(
        f["entry"]["inAlluviumPercentage"], 0,
        "a preview must not cache: {f}"
    );

    // The worker's page and JSON: both tiers, counters.
    let wp = http_get(&format!("{worker}/")).unwrap();
    assert!(
        wp.contains("Worker status") && wp.contains("MEM") && wp.contains("SSD"),
        "{wp}"
    );
    assert!(wp.contains("Recent evictions"), "{wp}");
    let wj = get_json(&format!("{worker}/api/v1/worker"));
    assert_eq!(wj["tiers"].as_array().unwrap().len(), 2);
    assert!(
        wj["counters"]["bytes_read_cache"].as_u64().unwrap() >= 1024,
        "{wj}"
    );
    assert!(
        wj["counters"]["bytes_read_ufs"].as_u64().unwrap() >= 1024,
        "{wj}"
    );
    let wm = c.worker_metrics(0);
    assert!(
        wm.contains("alluvium_worker_operation_duration_seconds_count{operation=\"ReadBlock\"}"),
        "{wm}"
    );

    // The master's workers page links to the worker's UI; the metrics page samples the worker.
    let workers = http_get(&format!("{master}/workers")).unwrap();
    assert!(
        workers.contains(&format!("http://127.0.0.1:{}/", c.workers[0].web)),
        "{workers}"
    );
    wait_for(
        "a sample of the worker's metrics",
        Duration::from_secs(30),
        || {
            let v = get_json(&format!("{master}/api/v1/metrics"));
            v["summary"]["workersScraped"] == 1
                && v["summary"]["bytesReadUfs"].as_f64().unwrap_or(0.0) >= 1024.0
                && v["operations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o["component"] == "worker" && o["operation"] == "ReadBlock")
        },
    );
    let stats = http_get(&format!("{master}/stats")).unwrap();
    assert!(stats.contains("ReadBlock"), "{stats}");
}
