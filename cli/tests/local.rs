//! `alluvium local`: one process with master and worker; prints its addresses, stops cleanly on
//! Ctrl-C (SIGINT) and finds everything again after a restart.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

struct Local {
    child: Child,
    lines: Vec<String>,
}

fn start_local(data_dir: &std::path::Path, ports: &[u16; 6]) -> Local {
    let mut child = Command::new(BIN)
        .args([
            "local",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--mem",
            "32MiB",
        ])
        .env("ALLUVIUM_MASTER__RPC_PORT", ports[0].to_string())
        .env("ALLUVIUM_MASTER__WEB_PORT", ports[1].to_string())
        .env("ALLUVIUM_WORKER__RPC_PORT", ports[2].to_string())
        .env("ALLUVIUM_WORKER__WEB_PORT", ports[3].to_string())
        .env("ALLUVIUM_PROXY__S3_PORT", ports[4].to_string())
        .env("ALLUVIUM_PROXY__WEBHDFS_PORT", ports[5].to_string())
        .env("ALLUVIUM_PROXY__BIND_HOST", "127.0.0.1")
        .env("ALLUVIUM_MASTER__BIND_HOST", "127.0.0.1")
        .env("ALLUVIUM_WORKER__BIND_HOST", "127.0.0.1")
        .env_remove("ALLUVIUM_CONFIG")
        .env_remove("ALLUVIUM_MASTER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn alluvium local");
    // Read the banner up to its last line.
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut lines = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if tx.send(line.trim_end().to_string()).is_err() {
                break;
            }
            line.clear();
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("alluvium local prints its banner");
        let done = line.starts_with("Try ");
        lines.push(line);
        if done {
            break;
        }
    }
    Local { child, lines }
}

fn fs(master_port: u16, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("fs")
        .args(args)
        .env("ALLUVIUM_MASTER", format!("127.0.0.1:{master_port}"))
        .env_remove("ALLUVIUM_CONFIG")
        .output()
        .unwrap()
}

fn interrupt(mut local: Local) {
    let pid = local.child.id().to_string();
    let ok = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = local.child.wait().unwrap();
    assert!(status.success(), "clean exit on Ctrl-C, got {status}");
}

#[test]
fn local_runs_stops_cleanly_and_finds_everything_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let ports = [
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    ];

    let local = start_local(&data_dir, &ports);
    let banner = local.lines.join("\n");
    assert!(
        banner.contains(&format!("localhost:{}", ports[0])),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("http://localhost:{}", ports[1])),
        "{banner}"
    );
    let mem_dir = local
        .lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("tier MEM"))
        .and_then(|l| l.split(" in ").nth(1))
        .map(|s| s.trim().to_string())
        .expect("banner names the MEM dir");
    assert!(mem_dir.starts_with("/dev/shm/") || !std::path::Path::new("/dev/shm").exists());

    let file = dir.path().join("hello.txt");
    std::fs::write(&file, "hello alluvium\n").unwrap();
    let out = fs(ports[0], &["mkdir", "-p", "/data/raw"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = fs(
        ports[0],
        &[
            "copyFromLocal",
            file.to_str().unwrap(),
            "/data/raw/hello.txt",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    interrupt(local);

    let local = start_local(&data_dir, &ports);
    let out = fs(ports[0], &["cat", "/data/raw/hello.txt"]);
    assert_eq!(stdout(&out), "hello alluvium\n", "{}", stderr(&out));
    interrupt(local);
    let _ = std::fs::remove_dir_all(&mem_dir);
}
