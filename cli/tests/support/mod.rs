//! A real Alluvium cluster for end-to-end tests: the `alluvium` binary started as separate master
//! and worker processes on loopback, each with its own TOML config, temp dirs and MEM tier in
//! /dev/shm. Tests drive it through the client library and through `alluvium fs`.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use alluvium_client::FileSystem;
use alluvium_common::Config;
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_alluvium");

/// Shape of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub workers: usize,
    pub mem: &'static str,
    /// Adds an SSD tier of this size to every worker.
    pub ssd: Option<&'static str>,
    pub block_size: &'static str,
    pub worker_timeout: &'static str,
    pub sync_interval: &'static str,
    pub ttl_check_interval: &'static str,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            mem: "64MiB",
            ssd: None,
            block_size: "1MiB",
            worker_timeout: "3s",
            sync_interval: "0s",
            ttl_check_interval: "1s",
        }
    }
}

pub struct Cluster {
    pub dir: TempDir,
    /// MEM tiers live here (tmpfs when /dev/shm exists).
    pub shm: TempDir,
    pub opts: ClusterOptions,
    pub master_rpc: u16,
    pub master_web: u16,
    pub workers: Vec<WorkerProc>,
    master: Option<Child>,
    pub ufs_dir: PathBuf,
}

pub struct WorkerProc {
    pub rpc: u16,
    pub web: u16,
    pub config: PathBuf,
    pub mem_dir: PathBuf,
    pub child: Option<Child>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

impl Cluster {
    pub fn start(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("alluvium-e2e-")
            .tempdir()
            .expect("temp dir");
        let shm = if Path::new("/dev/shm").is_dir() {
            tempfile::Builder::new()
                .prefix("alluvium-e2e-")
                .tempdir_in("/dev/shm")
                .expect("shm dir")
        } else {
            tempfile::Builder::new()
                .prefix("alluvium-e2e-")
                .tempdir()
                .expect("mem dir")
        };
        let ufs_dir = dir.path().join("ufs");
        std::fs::create_dir_all(&ufs_dir).unwrap();
        let mut cluster = Cluster {
            master_rpc: free_port(),
            master_web: free_port(),
            workers: Vec::new(),
            master: None,
            ufs_dir,
            opts: opts.clone(),
            dir,
            shm,
        };
        std::fs::write(
            cluster.dir.path().join("master.toml"),
            cluster.master_toml(),
        )
        .unwrap();
        std::fs::write(cluster.client_config_path(), cluster.client_toml()).unwrap();
        cluster.start_master();
        for i in 0..opts.workers {
            let w = cluster.new_worker(i);
            cluster.workers.push(w);
            cluster.start_worker(i);
        }
        cluster.wait_live_workers(opts.workers);
        cluster
    }

    fn common_toml(&self) -> String {
        format!(
            "master_address = \"127.0.0.1:{}\"\n\n[client]\nhostname = \"127.0.0.1\"\n",
            self.master_rpc
        )
    }

    fn master_toml(&self) -> String {
        let o = &self.opts;
        format!(
            "{common}\n[master]\nbind_host = \"127.0.0.1\"\nhostname = \"127.0.0.1\"\nrpc_port = {rpc}\nweb_port = {web}\n\
             metastore_dir = \"{meta}\"\nroot_ufs = \"file://{ufs}\"\ndefault_block_size = \"{bs}\"\n\
             worker_timeout = \"{wt}\"\nheartbeat_interval = \"200ms\"\nsync_interval = \"{si}\"\n\
             ttl_check_interval = \"{ttl}\"\npersist_check_interval = \"200ms\"\n",
            common = self.common_toml(),
            rpc = self.master_rpc,
            web = self.master_web,
            meta = self.dir.path().join("master").display(),
            ufs = self.ufs_dir.display(),
            bs = o.block_size,
            wt = o.worker_timeout,
            si = o.sync_interval,
            ttl = o.ttl_check_interval,
        )
    }

    fn client_toml(&self) -> String {
        self.common_toml()
    }

    pub fn client_config_path(&self) -> PathBuf {
        self.dir.path().join("client.toml")
    }

    fn new_worker(&self, i: usize) -> WorkerProc {
        let rpc = free_port();
        let web = free_port();
        let mem_dir = self.shm.path().join(format!("worker-{i}"));
        let mut toml = format!(
            "{common}\n[worker]\nbind_host = \"127.0.0.1\"\nhostname = \"127.0.0.1\"\nrpc_port = {rpc}\nweb_port = {web}\n\n\
             [[worker.tiers]]\nalias = \"MEM\"\ndirs = [\"{mem}\"]\nquota = [\"{memq}\"]\n",
            common = self.common_toml(),
            mem = mem_dir.display(),
            memq = self.opts.mem,
        );
        if let Some(ssd) = self.opts.ssd {
            toml.push_str(&format!(
                "\n[[worker.tiers]]\nalias = \"SSD\"\ndirs = [\"{}\"]\nquota = [\"{ssd}\"]\n",
                self.dir.path().join(format!("worker-{i}-ssd")).display()
            ));
        }
        let config = self.dir.path().join(format!("worker-{i}.toml"));
        std::fs::write(&config, toml).unwrap();
        WorkerProc {
            rpc,
            web,
            config,
            mem_dir,
            child: None,
        }
    }

    fn spawn(&self, args: &[&str], log_name: &str) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(log_name))
            .unwrap();
        Command::new(BIN)
            .args(args)
            .env(
                "ALLUVIUM_LOG",
                "info,alluvium_master=debug,alluvium_worker=debug",
            )
            .env_remove("ALLUVIUM_CONFIG")
            .env_remove("ALLUVIUM_MASTER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn alluvium")
    }

    pub fn start_master(&mut self) {
        let cfg = self.dir.path().join("master.toml");
        let child = self.spawn(&["master", "--config", cfg.to_str().unwrap()], "master.log");
        self.master = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.master_web);
        wait_for("master /healthz", Duration::from_secs(30), || {
            http_get(&url).is_ok()
        });
    }

    pub fn start_worker(&mut self, i: usize) {
        let cfg = self.workers[i].config.clone();
        let child = self.spawn(
            &["worker", "--config", cfg.to_str().unwrap()],
            &format!("worker-{i}.log"),
        );
        self.workers[i].child = Some(child);
        let url = format!("http://127.0.0.1:{}/healthz", self.workers[i].web);
        wait_for("worker /healthz", Duration::from_secs(30), || {
            http_get(&url).is_ok()
        });
    }

    /// SIGKILL, as a crash would.
    pub fn kill_master(&mut self) {
        if let Some(mut c) = self.master.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut c) = self.workers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the master lists `n` live workers.
    pub fn wait_live_workers(&self, n: usize) {
        let rt = runtime();
        let fs = rt
            .block_on(FileSystem::connect(&self.client_config()))
            .expect("connect");
        wait_for(
            &format!("{n} live workers"),
            Duration::from_secs(30),
            || {
                rt.block_on(fs.workers())
                    .map(|ws| ws.iter().filter(|w| w.state == "LIVE").count() == n)
                    .unwrap_or(false)
            },
        );
    }

    /// The client configuration tests use with the library.
    pub fn client_config(&self) -> Config {
        Config::load_with_env(Some(&self.client_config_path()), Vec::new()).expect("client config")
    }

    /// Runs `alluvium fs <args>` as the test's OS user.
    pub fn fs(&self, args: &[&str]) -> Output {
        self.fs_with_env(args, &[])
    }

    pub fn fs_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("fs")
            .args(args)
            .env("ALLUVIUM_CONFIG", self.client_config_path())
            .env_remove("ALLUVIUM_MASTER")
            .env_remove("ALLUVIUM_LOG")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run alluvium fs")
    }

    /// Runs any `alluvium` subcommand with the client config.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("ALLUVIUM_CONFIG", self.client_config_path())
            .env_remove("ALLUVIUM_MASTER")
            .stdin(Stdio::null())
            .output()
            .expect("run alluvium")
    }

    pub fn worker_metrics(&self, i: usize) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.workers[i].web)).expect("metrics")
    }

    pub fn master_metrics(&self) -> String {
        http_get(&format!("http://127.0.0.1:{}/metrics", self.master_web)).expect("metrics")
    }

    pub fn log(&self, name: &str) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join(name)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Show what the servers said: the test output is all CI keeps.
            for name in std::iter::once("master.log".to_string())
                .chain((0..self.workers.len()).map(|i| format!("worker-{i}.log")))
            {
                let log = self.log(&name);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- last lines of {name} ----");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        for i in 0..self.workers.len() {
            self.kill_worker(i);
        }
        self.kill_master();
    }
}

pub use alluvium_testkit::wait_for;

pub fn http_get(url: &str) -> Result<String, String> {
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?
        .get(url)
        .send()
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    resp.text().map_err(|e| e.to_string())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    let d = Md5::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sum of a Prometheus counter/gauge across label sets (`name` without `_total` suffix issues:
/// pass the full sample name).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ') | Some(b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
