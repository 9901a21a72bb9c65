//! `alluvium local`: master and worker in one process, with everything under one data directory
//! and the MEM tier in `/dev/shm`. Ctrl-C shuts both down cleanly; a restart finds everything.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use alluvium_common::config::S3Credential;
use alluvium_common::config::TierConfig;
use alluvium_common::{ByteSize, Config, Error, Result};
use alluvium_local::LocalCluster;

#[derive(clap::Args, Debug)]
pub struct LocalArgs {
    /// Where metadata, the default root UFS and disk tiers live.
    #[arg(long, default_value = "./alluvium-data", value_name = "DIR")]
    data_dir: PathBuf,
    /// Root under-storage URI (default: DIR/underFSStorage). E.g. s3://bucket/prefix.
    #[arg(long, value_name = "URI")]
    ufs: Option<String>,
    /// Size of the MEM tier (in /dev/shm). Binary units are exact: 1GiB = 2^30 bytes.
    #[arg(long, default_value = "1GiB", value_name = "SIZE")]
    mem: ByteSize,
    /// Add an SSD tier of this size under DIR/worker/ssd (blocks evicted from MEM go there).
    #[arg(long, value_name = "SIZE")]
    ssd: Option<ByteSize>,
}

pub async fn run(config: Config, args: LocalArgs) -> Result<()> {
    let mut config = local_config(config, &args)?;
    let mem_dir = config.worker.tiers[0].dirs[0].clone();
    let generated_keys = if config.proxy.s3_credentials.is_empty() {
        let path = args.data_dir.join("s3-credentials.toml");
        config.proxy.s3_credentials = vec![local_s3_credential(&path)?];
        Some(path)
    } else {
        None
    };
    // "Running" means usable: the worker is LIVE before the banner, so the first command after
    // it finds a live worker.
    let cluster = LocalCluster::start(config.clone()).await?;
    let (master, worker) = (cluster.master(), cluster.worker().expect("started"));

    println!("Alluvium {} is running locally.", alluvium_common::VERSION);
    println!("  master    localhost:{} (gRPC)", master.rpc_addr().port());
    println!("  web UI    http://localhost:{}", master.web_addr().port());
    println!(
        "  worker    {}:{} (gRPC), http://localhost:{}",
        config.worker_hostname(),
        worker.rpc_addr().port(),
        worker.web_addr().port()
    );
    for t in &config.worker.tiers {
        println!(
            "  tier {:<4} {} in {}",
            t.alias,
            t.quota_of(0),
            t.dirs[0].display()
        );
    }
    if let Some(s3) = cluster.proxy().and_then(|p| p.s3_addr()) {
        println!("  S3        http://localhost:{}", s3.port());
        match &generated_keys {
            Some(path) => println!(
                "            access key {} (secret in {})",
                config.proxy.s3_credentials[0].access_key_id,
                path.display()
            ),
            None => println!(
                "            {} access key(s) from the configuration",
                config.proxy.s3_credentials.len()
            ),
        }
    }
    if let Some(webhdfs) = cluster.proxy().and_then(|p| p.webhdfs_addr()) {
        println!(
            "  WebHDFS   http://localhost:{0} (webhdfs://localhost:{0}/)",
            webhdfs.port()
        );
    }
    println!("  root UFS  {}", config.master.root_ufs);
    println!("  data dir  {}", args.data_dir.display());
    println!("Try `alluvium fs ls /` in another shell. Stop with Ctrl-C.");
    tracing::info!(mem_dir = %mem_dir.display(), "alluvium local started");

    crate::servers::shutdown_signal().await;
    println!("Shutting down...");
    cluster.shutdown().await
}

/// The S3 key pair of a local cluster: made once, kept in the data dir (mode 0600) so that
/// restarts and scripts keep working, and never printed.
fn local_s3_credential(path: &Path) -> Result<S3Credential> {
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Stored {
        access_key_id: String,
        secret_access_key: String,
    }
    let user = alluvium_common::identity::Caller::current_process().user;
    if let Ok(text) = std::fs::read_to_string(path) {
        let s: Stored = toml::from_str(&text)
            .map_err(|e| Error::invalid_argument(format!("{}: {e}", path.display())))?;
        return Ok(S3Credential {
            access_key_id: s.access_key_id,
            secret_access_key: s.secret_access_key,
            user,
        });
    }
    let hex = |n: usize| -> String {
        (0..n)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect()
    };
    let stored = Stored {
        access_key_id: format!("AL{}", hex(9).to_uppercase()),
        secret_access_key: hex(20),
    };
    let text = toml::to_string(&stored).map_err(|e| Error::internal(e.to_string()))?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::from(e).context(format!("cannot write {}", path.display())))?;
    f.write_all(text.as_bytes()).map_err(Error::from)?;
    Ok(S3Credential {
        access_key_id: stored.access_key_id,
        secret_access_key: stored.secret_access_key,
        user,
    })
}

/// The configuration of a local cluster: the loaded config with the data-dir layout applied.
fn local_config(mut config: Config, args: &LocalArgs) -> Result<Config> {
    std::fs::create_dir_all(&args.data_dir).map_err(|e| {
        Error::from(e).context(format!(
            "cannot create data dir {}",
            args.data_dir.display()
        ))
    })?;
    let data_dir = std::fs::canonicalize(&args.data_dir).map_err(Error::from)?;

    config.master.metastore_dir = data_dir.join("master");
    config.master.root_ufs = match &args.ufs {
        Some(u) => u.clone(),
        None => format!("file://{}", data_dir.join("underFSStorage").display()),
    };
    config.master.hostname = "localhost".into();
    config.master_address = format!("localhost:{}", config.master.rpc_port);

    let mut tiers = vec![TierConfig {
        alias: "MEM".into(),
        dirs: vec![mem_dir_for(&data_dir)],
        quota: vec![args.mem],
        ..TierConfig::default()
    }];
    if let Some(ssd) = args.ssd {
        tiers.push(TierConfig {
            alias: "SSD".into(),
            dirs: vec![data_dir.join("worker").join("ssd")],
            quota: vec![ssd],
            ..TierConfig::default()
        });
    }
    config.worker.tiers = tiers;
    config.validate()?;
    Ok(config)
}

/// The MEM tier lives in /dev/shm (tmpfs), one directory per data dir so that two local
/// clusters on one machine never share blocks. Without /dev/shm it falls back to the data dir.
fn mem_dir_for(data_dir: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return data_dir.join("worker").join("mem");
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data_dir.hash(&mut h);
    shm.join(format!("alluvium-local-{:08x}", h.finish() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let args = LocalArgs {
            data_dir: dir.path().to_path_buf(),
            ufs: None,
            mem: "64MiB".parse().unwrap(),
            ssd: Some("1GiB".parse().unwrap()),
        };
        let c = local_config(Config::default(), &args).unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(c.master.metastore_dir, root.join("master"));
        assert_eq!(
            c.master.root_ufs,
            format!("file://{}", root.join("underFSStorage").display())
        );
        assert_eq!(c.worker.tiers.len(), 2);
        assert_eq!(c.worker.tiers[0].quota_of(0).0, 64 << 20);
        assert_eq!(c.worker.tiers[1].alias, "SSD");
        // Two data dirs never share a MEM dir.
        let other = tempfile::tempdir().unwrap();
        assert_ne!(mem_dir_for(dir.path()), mem_dir_for(other.path()));
    }
}
