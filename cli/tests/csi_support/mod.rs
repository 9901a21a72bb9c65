//! What the CSI end-to-end tests (`csi.rs`, `csi_sanity.rs`) share: a running `alluvium csi`
//! ([`Plugin`]), an `alluvium local` cluster on loopback, optionally protected by a cluster
//! secret ([`Local`]), and the clean-up of mounts a failing test leaves behind
//! ([`UnmountUnder`]). Needs `mod support;` beside it in the test crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alluvium_common::Config;
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::support::{free_port, http_get, BIN};

/// A running `alluvium csi`, killed on drop.
pub struct Plugin {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub metrics_port: u16,
    /// Extra environment of every spawn (e.g. the plugin's own cluster secret).
    env: Vec<(String, String)>,
}

impl Plugin {
    pub fn start(dir: &Path, master: &str, state_dir: &Path, extra: &[&str]) -> Plugin {
        Self::start_with_env(dir, master, state_dir, extra, &[])
    }

    pub fn start_with_env(
        dir: &Path,
        master: &str,
        state_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Plugin {
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("plugin").join("csi.sock");
        let log = dir.join("csi.log");
        let metrics_port = free_port();
        let mut p = Plugin {
            child: None,
            socket,
            log,
            metrics_port,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        p.spawn(master, state_dir, extra);
        p
    }

    pub fn spawn(&mut self, master: &str, state_dir: &Path, extra: &[&str]) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .arg("csi")
            .arg(format!("--endpoint=unix://{}", self.socket.display()))
            .arg("--node-id=node-1")
            .arg(format!("--state-dir={}", state_dir.display()))
            .arg(format!("--metrics-addr=127.0.0.1:{}", self.metrics_port))
            .arg(format!("--master={master}"))
            .args(extra)
            .env("ALLUVIUM_LOG", "info,alluvium_csi=debug")
            .env_remove("ALLUVIUM_CONFIG")
            .env_remove("ALLUVIUM_MASTER")
            .env_remove("ALLUVIUM_SECURITY__CLUSTER_SECRET")
            .env_remove("NODE_ID")
            .env_remove("CSI_ENDPOINT")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn alluvium csi");
        self.child = Some(child);
    }

    /// Waits until the socket answers (the plugin recovers mounts before it listens).
    pub fn wait_listening(&mut self, timeout: Duration) {
        let rt = crate::support::runtime();
        drop(self.channel(&rt, timeout));
    }

    /// A channel once the socket answers.
    pub fn channel(&mut self, rt: &tokio::runtime::Runtime, timeout: Duration) -> Channel {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("alluvium csi exited ({status}):\n{}", self.log_text());
            }
            if self.socket.exists() {
                if let Ok(ch) = rt.block_on(alluvium_csi::client::connect(&self.socket)) {
                    return ch;
                }
            }
            assert!(
                Instant::now() < deadline,
                "alluvium csi did not listen on {} within {timeout:?}:\n{}",
                self.socket.display(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as an OOM kill or a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.metrics_port)).expect("metrics")
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- alluvium csi log ----\n{}", self.log_text());
        }
        self.kill9();
    }
}

/// `alluvium local` (master, worker and gateways in one process) on loopback ports, with its
/// data in a temp dir; stopped with SIGINT on drop, its MEM tier directory removed.
pub struct Local {
    pub dir: TempDir,
    /// The master's gRPC address, `127.0.0.1:PORT`.
    pub master: String,
    /// The cluster secret every call must carry, if any.
    pub secret: Option<String>,
    log: PathBuf,
    mem_dir: Option<PathBuf>,
    child: Option<Child>,
}

impl Local {
    /// Starts the cluster, requiring `secret` on every call when given, and waits for its banner
    /// (printed once the worker has registered).
    pub fn start(secret: Option<&str>) -> Local {
        let dir = tempfile::Builder::new()
            .prefix("alluvium-csi-")
            .tempdir()
            .expect("temp dir");
        let log = dir.path().join("local.log");
        let out = std::fs::File::create(&log).unwrap();
        let rpc = free_port();
        let mut cmd = Command::new(BIN);
        cmd.arg("local")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--mem", "64MiB"])
            .env("ALLUVIUM_MASTER__RPC_PORT", rpc.to_string())
            .env("ALLUVIUM_MASTER__WEB_PORT", free_port().to_string())
            .env("ALLUVIUM_WORKER__RPC_PORT", free_port().to_string())
            .env("ALLUVIUM_WORKER__WEB_PORT", free_port().to_string())
            .env("ALLUVIUM_PROXY__S3_PORT", free_port().to_string())
            .env("ALLUVIUM_PROXY__WEBHDFS_PORT", free_port().to_string())
            .env("ALLUVIUM_MASTER__BIND_HOST", "127.0.0.1")
            .env("ALLUVIUM_WORKER__BIND_HOST", "127.0.0.1")
            // Advertised to clients: the machine's host name may not resolve to loopback.
            .env("ALLUVIUM_WORKER__HOSTNAME", "127.0.0.1")
            .env("ALLUVIUM_PROXY__BIND_HOST", "127.0.0.1")
            .env("ALLUVIUM_LOG", "info")
            .env_remove("ALLUVIUM_CONFIG")
            .env_remove("ALLUVIUM_MASTER")
            .env_remove("ALLUVIUM_SECURITY__CLUSTER_SECRET")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        if let Some(s) = secret {
            cmd.env("ALLUVIUM_SECURITY__CLUSTER_SECRET", s);
        }
        let child = cmd.spawn().expect("spawn alluvium local");
        let mut local = Local {
            dir,
            master: format!("127.0.0.1:{rpc}"),
            secret: secret.map(String::from),
            log,
            mem_dir: None,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = local.log_text();
            if text.contains("Stop with Ctrl-C") {
                local.mem_dir = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("tier MEM"))
                    .and_then(|l| l.split(" in ").nth(1))
                    .map(|s| PathBuf::from(s.trim()));
                return local;
            }
            if let Some(Ok(Some(status))) = local.child.as_mut().map(Child::try_wait) {
                panic!("alluvium local exited ({status}):\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "alluvium local did not start within 60s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client configuration for this cluster (with its secret).
    pub fn client_config(&self) -> Config {
        let mut c = Config {
            master_address: self.master.clone(),
            ..Config::default()
        };
        c.client.hostname = "127.0.0.1".into();
        c.security.cluster_secret = self.secret.clone().unwrap_or_default();
        c
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if std::thread::panicking() {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of alluvium local ----");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
            let interrupted = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(20);
            while interrupted && Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(m) = &self.mem_dir {
            let _ = std::fs::remove_dir_all(m);
        }
    }
}

/// Lazily unmounts whatever is still mounted under a test's directory (deepest first), so a
/// failing test leaves no mounts behind and its temp dir can be removed.
pub struct UnmountUnder(pub PathBuf);

impl Drop for UnmountUnder {
    fn drop(&mut self) {
        let prefix = self.0.to_str().unwrap().to_string();
        let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|p| p.starts_with(&prefix))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").arg("-l").arg(&p).status();
        }
    }
}
