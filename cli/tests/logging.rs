//! Logging of the real binary, stderr piped as under `kubectl logs`: the filter comes from
//! ALLUVIUM_LOG or RUST_LOG (ALLUVIUM_LOG wins), and piped logs carry no ANSI colour codes.
//!
//! The process is `alluvium operator` against an API server address that refuses connections:
//! it logs a warning for each failed leader-election round, at once and forever, and is killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_alluvium");
/// The line every failed election round logs (warn), old and new alike.
const ROUND_FAILED: &str = "leader election round failed";

/// Runs the operator with `env` until it logged a failed election round; returns stderr's lines
/// up to and including that one.
fn operator_stderr(env: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\n\
         clusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["operator", "--http-port=0", "--identity=test"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("ALLUVIUM_LOG")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let done = line.contains(ROUND_FAILED);
            if tx.send(line).is_err() || done {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains(ROUND_FAILED);
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.iter().any(|l| l.contains(ROUND_FAILED)),
        "the operator never logged a failed round: {lines:#?}"
    );
    lines
}

#[test]
fn piped_logs_are_plain_text_without_ansi_colour_codes() {
    let lines = operator_stderr(&[]);
    let coloured: Vec<&String> = lines.iter().filter(|l| l.contains("\x1b[")).collect();
    assert!(
        coloured.is_empty(),
        "escape codes in piped logs: {coloured:#?}"
    );
    assert!(lines.iter().any(|l| l.contains(" WARN ")), "{lines:#?}");
}

#[test]
fn rust_log_sets_the_filter_and_alluvium_log_wins_over_it() {
    let debug = |lines: &[String]| lines.iter().any(|l| l.contains("DEBUG"));
    // The chart sets RUST_LOG (operator.logLevel): it must be read.
    let lines = operator_stderr(&[("RUST_LOG", "debug")]);
    assert!(debug(&lines), "RUST_LOG=debug ignored: {lines:#?}");
    // Both set: ALLUVIUM_LOG decides.
    let lines = operator_stderr(&[("ALLUVIUM_LOG", "info"), ("RUST_LOG", "debug")]);
    assert!(!debug(&lines), "RUST_LOG won over ALLUVIUM_LOG: {lines:#?}");
    let lines = operator_stderr(&[("ALLUVIUM_LOG", "debug"), ("RUST_LOG", "warn")]);
    assert!(debug(&lines), "ALLUVIUM_LOG=debug ignored: {lines:#?}");
}
