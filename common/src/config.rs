//! The one configuration of every Alluvium process.
//!
//! Sources, later ones winning: built-in defaults, a TOML file (`--config FILE` or
//! `ALLUVIUM_CONFIG`), environment variables, command-line flags (applied by the binary).
//!
//! Environment variables: `ALLUVIUM_MASTER=host:port` sets [`Config::master_address`]; any other
//! key is `ALLUVIUM_<SECTION>__<KEY>`, e.g. `ALLUVIUM_WORKER__RPC_PORT=29999`,
//! `ALLUVIUM_CLIENT__WRITE_TYPE=CACHE_THROUGH`, `ALLUVIUM_SECURITY__CLUSTER_SECRET=...`.
//!
//! A documented example with every key is in `docs/alluvium.example.toml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::size::ByteSize;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where clients and workers find the master's gRPC service (`host:port`).
    pub master_address: String,
    pub master: MasterConfig,
    pub worker: WorkerConfig,
    pub client: ClientConfig,
    pub security: SecurityConfig,
    /// The S3 and WebHDFS gateways (`alluvium proxy`).
    #[serde(default)]
    pub proxy: ProxyConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MasterConfig {
    /// Address the master's servers bind to.
    pub bind_host: String,
    /// Host name the master advertises.
    pub hostname: String,
    pub rpc_port: u16,
    pub web_port: u16,
    /// RocksDB metadata directory.
    pub metastore_dir: PathBuf,
    /// Fsync the RocksDB write-ahead log on every commit. Off, a commit survives `kill -9` of the
    /// master (the WAL is written before the call returns) but not a power loss.
    pub metastore_sync: bool,
    /// Inodes (and as many directory entries) kept in memory in front of the metastore; 0 = none.
    pub metadata_cache_entries: usize,
    /// UFS mounted at `/`.
    pub root_ufs: String,
    /// Options of the root mount (endpoint, region, credentials, ...).
    pub root_ufs_options: BTreeMap<String, String>,
    pub default_block_size: ByteSize,
    /// A worker silent this long is declared lost and its block locations dropped.
    #[serde(with = "humantime_serde")]
    pub worker_timeout: Duration,
    /// How often workers heartbeat (told to them at registration).
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How often expired TTLs are acted on.
    #[serde(with = "humantime_serde")]
    pub ttl_check_interval: Duration,
    /// How often the async-persist scheduler looks for files to persist or retry.
    #[serde(with = "humantime_serde")]
    pub persist_check_interval: Duration,
    /// Default bound on metadata staleness of mounts: a directory listed longer ago than this is
    /// listed again in the UFS. `0s` checks on every access. A mount option `sync_interval`
    /// overrides it.
    #[serde(with = "humantime_serde")]
    pub sync_interval: Duration,
    /// Members of this group are superusers.
    pub supergroup: String,
    /// Further superusers by name (e.g. the operator's user in a Kubernetes install).
    pub superusers: Vec<String>,
    /// The OS user running the master is a superuser too. Convenient on a laptop; off in a
    /// Kubernetes install, where a pod's uid can map to the same name as the master's.
    pub process_user_is_superuser: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    pub bind_host: String,
    /// Host name the worker advertises; clients on a host of that name read short-circuit.
    /// Empty = this machine's host name.
    pub hostname: String,
    pub rpc_port: u16,
    pub web_port: u16,
    /// Ordered tiers, fastest first.
    pub tiers: Vec<TierConfig>,
    /// `LRU` or `LRFU`.
    pub eviction_policy: String,
    /// LRFU: weight of recency against frequency (0 = LFU-like, 1 = LRU-like).
    pub lrfu_step_factor: f64,
    pub lrfu_attenuation_factor: f64,
    /// Default watermarks of tiers (fractions of capacity): above the high one, blocks are moved
    /// down or dropped in the background until usage is under the low one.
    pub high_watermark: f64,
    pub low_watermark: f64,
    /// A short-circuit lock not renewed for this long is released.
    #[serde(with = "humantime_serde")]
    pub short_circuit_lease: Duration,
    /// Bytes per message of streamed reads.
    pub read_chunk_size: ByteSize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TierConfig {
    /// `MEM`, `SSD` or `HDD` (any alias works; order in the list decides speed).
    pub alias: String,
    pub dirs: Vec<PathBuf>,
    /// One quota per dir, or one for all dirs.
    pub quota: Vec<ByteSize>,
    pub high_watermark: Option<f64>,
    pub low_watermark: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Login user name sent to the master; empty = the OS user running the client.
    pub user: String,
    /// `MUST_CACHE`, `CACHE_THROUGH`, `THROUGH` or `ASYNC_THROUGH`.
    pub write_type: String,
    /// `CACHE`, `CACHE_PROMOTE` or `NO_CACHE`.
    pub read_type: String,
    /// Block size of new files; 0 = the master's default.
    pub block_size: ByteSize,
    /// Read blocks held by a worker on this host straight from its tier files (mmap).
    pub short_circuit: bool,
    /// Write to a worker on this host straight into its tier files.
    pub short_circuit_write: bool,
    /// Read blocks cached by other workers over the block transfer protocol (raw bytes on a TCP
    /// connection to the worker's gRPC port) instead of a `ReadBlock` gRPC stream.
    pub block_transfer: bool,
    /// This host's name, to recognise local workers; empty = the machine's host name.
    pub hostname: String,
    /// Bytes per message of streamed writes and reads.
    pub chunk_size: ByteSize,
    /// Permission bits removed from new files and directories.
    pub umask: u32,
    /// Timeout of one metadata call.
    #[serde(with = "humantime_serde")]
    pub rpc_timeout: Duration,
    /// How long to keep retrying a call to a master or worker that cannot be reached, and how
    /// long a write waits for a live worker when the master lists none.
    #[serde(with = "humantime_serde")]
    pub retry_duration: Duration,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Shared secret every gRPC call inside the cluster must carry. Empty = none.
    pub cluster_secret: String,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log secrets.
        f.debug_struct("SecurityConfig")
            .field(
                "cluster_secret",
                &if self.cluster_secret.is_empty() {
                    ""
                } else {
                    "******"
                },
            )
            .finish()
    }
}

/// The HTTP gateways: the S3 API and the WebHDFS REST API over the cluster.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address both gateways bind to.
    pub bind_host: String,
    /// Serve the S3 API.
    pub s3_enabled: bool,
    /// S3 API port (0 = a free port).
    pub s3_port: u16,
    /// Serve the WebHDFS REST API.
    pub webhdfs_enabled: bool,
    /// WebHDFS REST API port (0 = a free port).
    pub webhdfs_port: u16,
    /// Access keys the S3 gateway accepts; each maps to the user requests run as.
    pub s3_credentials: Vec<S3Credential>,
    /// Region of AWS Signature V4 scopes.
    pub region: String,
}

/// One S3 access key pair and the Alluvium user it acts as.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct S3Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub user: String,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            bind_host: "0.0.0.0".into(),
            s3_enabled: true,
            s3_port: 39999,
            webhdfs_enabled: true,
            webhdfs_port: 9870,
            s3_credentials: Vec::new(),
            region: "us-east-1".into(),
        }
    }
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("bind_host", &self.bind_host)
            .field("s3_enabled", &self.s3_enabled)
            .field("s3_port", &self.s3_port)
            .field("webhdfs_enabled", &self.webhdfs_enabled)
            .field("webhdfs_port", &self.webhdfs_port)
            .field("s3_credentials", &self.s3_credentials)
            .field("region", &self.region)
            .finish()
    }
}

impl std::fmt::Debug for S3Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log secrets; the key id is not secret and helps to tell keys apart.
        f.debug_struct("S3Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"******")
            .field("user", &self.user)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            master_address: "localhost:19998".into(),
            master: MasterConfig::default(),
            worker: WorkerConfig::default(),
            client: ClientConfig::default(),
            security: SecurityConfig::default(),
            proxy: ProxyConfig::default(),
        }
    }
}

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            bind_host: "0.0.0.0".into(),
            hostname: "localhost".into(),
            rpc_port: 19998,
            web_port: 19999,
            metastore_dir: PathBuf::from("alluvium-data/master"),
            metastore_sync: false,
            metadata_cache_entries: 100_000,
            root_ufs: "alluvium-data/underFSStorage".into(),
            root_ufs_options: BTreeMap::new(),
            default_block_size: ByteSize(64 * ByteSize::MIB),
            worker_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
            ttl_check_interval: Duration::from_secs(10),
            persist_check_interval: Duration::from_secs(1),
            sync_interval: Duration::from_secs(60),
            supergroup: "supergroup".into(),
            superusers: Vec::new(),
            process_user_is_superuser: true,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            bind_host: "0.0.0.0".into(),
            hostname: String::new(),
            rpc_port: 29999,
            web_port: 30000,
            tiers: vec![TierConfig {
                alias: "MEM".into(),
                dirs: vec![PathBuf::from("/dev/shm/alluvium-worker")],
                quota: vec![ByteSize(ByteSize::GIB)],
                high_watermark: None,
                low_watermark: None,
            }],
            eviction_policy: "LRU".into(),
            lrfu_step_factor: 0.25,
            lrfu_attenuation_factor: 2.0,
            high_watermark: 0.95,
            low_watermark: 0.7,
            short_circuit_lease: Duration::from_secs(30),
            read_chunk_size: ByteSize(ByteSize::MIB),
        }
    }
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            alias: "MEM".into(),
            dirs: Vec::new(),
            quota: Vec::new(),
            high_watermark: None,
            low_watermark: None,
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            user: String::new(),
            write_type: "ASYNC_THROUGH".into(),
            read_type: "CACHE".into(),
            block_size: ByteSize(0),
            short_circuit: true,
            short_circuit_write: true,
            block_transfer: true,
            hostname: String::new(),
            chunk_size: ByteSize(ByteSize::MIB),
            umask: 0o022,
            rpc_timeout: Duration::from_secs(30),
            retry_duration: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (or `ALLUVIUM_CONFIG`) if given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("ALLUVIUM_CONFIG").map(PathBuf::from));
        if let Some(path) = &file {
            if !path.exists() {
                return Err(Error::invalid_argument(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // ALLUVIUM_<SECTION>__<KEY>; ALLUVIUM_MASTER (the address) and ALLUVIUM_CONFIG are
        // handled by hand, since `master` is also a section.
        let sectioned: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| k.starts_with("ALLUVIUM_") && k.contains("__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // The same mapping as figment's `Env::prefixed("ALLUVIUM_").split("__")`, done by hand so
        // the environment can be passed in (tests) instead of read from the process.
        for (k, v) in sectioned {
            let key = k
                .trim_start_matches("ALLUVIUM_")
                .to_ascii_lowercase()
                .replace("__", ".");
            let value = parse_env_value(&v);
            fig = fig.merge(Serialized::default(&key, value));
        }
        if let Some(addr) = env
            .get("ALLUVIUM_MASTER")
            .or(env.get("ALLUVIUM_MASTER_ADDRESS"))
        {
            fig = fig.merge(Serialized::default("master_address", addr));
        }
        let config: Config = fig.extract().map_err(|e| {
            let where_ = file
                .as_ref()
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default();
            Error::invalid_argument(format!("invalid configuration{where_}: {e}"))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: ports, watermarks, tiers, names.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| {
            Err(Error::invalid_argument(format!(
                "invalid configuration: {m}"
            )))
        };
        if self.master_address.trim().is_empty() {
            return bad("master_address is empty".into());
        }
        if self.master.default_block_size.0 < 4096 {
            return bad("master.default_block_size must be at least 4KiB".into());
        }
        for (key, size) in [
            (
                "master.default_block_size",
                self.master.default_block_size.0,
            ),
            ("client.block_size", self.client.block_size.0),
        ] {
            if size > crate::ids::MAX_BLOCK_SIZE {
                return bad(format!(
                    "{key} must be at most {}",
                    ByteSize::human(crate::ids::MAX_BLOCK_SIZE)
                ));
            }
        }
        let w = &self.worker;
        if !(0.0 < w.low_watermark && w.low_watermark < w.high_watermark && w.high_watermark <= 1.0)
        {
            return bad(format!(
                "worker watermarks must satisfy 0 < low ({}) < high ({}) <= 1",
                w.low_watermark, w.high_watermark
            ));
        }
        if !matches!(
            w.eviction_policy.to_ascii_uppercase().as_str(),
            "LRU" | "LRFU"
        ) {
            return bad(format!(
                "worker.eviction_policy '{}' is not LRU or LRFU",
                w.eviction_policy
            ));
        }
        let mut aliases = std::collections::HashSet::new();
        for t in &w.tiers {
            if t.alias.is_empty() || !aliases.insert(t.alias.to_ascii_uppercase()) {
                return bad(format!(
                    "worker tier alias '{}' is empty or repeated",
                    t.alias
                ));
            }
            if t.dirs.is_empty() {
                return bad(format!("worker tier {} has no dirs", t.alias));
            }
            if t.quota.is_empty() || (t.quota.len() != 1 && t.quota.len() != t.dirs.len()) {
                return bad(format!(
                    "worker tier {} needs one quota, or one per dir ({} dirs, {} quotas)",
                    t.alias,
                    t.dirs.len(),
                    t.quota.len()
                ));
            }
        }
        if w.tiers.is_empty() {
            return bad("worker.tiers is empty".into());
        }
        crate::config::parse_write_type(&self.client.write_type)?;
        crate::config::parse_read_type(&self.client.read_type)?;
        Ok(())
    }

    /// The worker's advertised host name (configured, or this machine's).
    pub fn worker_hostname(&self) -> String {
        non_empty_or_hostname(&self.worker.hostname)
    }

    /// The client's host name for locality (configured, or this machine's).
    pub fn client_hostname(&self) -> String {
        non_empty_or_hostname(&self.client.hostname)
    }
}

impl TierConfig {
    /// Quota of dir `i`.
    pub fn quota_of(&self, i: usize) -> ByteSize {
        if self.quota.len() == 1 {
            self.quota[0]
        } else {
            self.quota[i]
        }
    }
}

fn non_empty_or_hostname(s: &str) -> String {
    if !s.is_empty() {
        return s.to_string();
    }
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Env values: booleans and numbers become typed values, everything else stays a string.
fn parse_env_value(v: &str) -> figment::value::Value {
    use figment::value::Value;
    match v.to_ascii_lowercase().as_str() {
        "true" => return Value::from(true),
        "false" => return Value::from(false),
        _ => {}
    }
    if let Ok(n) = v.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(f) = v.parse::<f64>() {
        return Value::from(f);
    }
    Value::from(v.to_string())
}

/// Parses a write type name (`MUST_CACHE`, `CACHE_THROUGH`, `THROUGH`, `ASYNC_THROUGH`; any case,
/// `-` or `_`).
pub fn parse_write_type(s: &str) -> Result<alluvium_proto::WriteType> {
    use alluvium_proto::WriteType as W;
    match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
        "MUST_CACHE" => Ok(W::MustCache),
        "CACHE_THROUGH" => Ok(W::CacheThrough),
        "THROUGH" => Ok(W::Through),
        "ASYNC_THROUGH" => Ok(W::AsyncThrough),
        _ => Err(Error::invalid_argument(format!(
            "unknown write type '{s}' (MUST_CACHE, CACHE_THROUGH, THROUGH, ASYNC_THROUGH)"
        ))),
    }
}

/// Parses a read type name (`CACHE`, `CACHE_PROMOTE`, `NO_CACHE`).
pub fn parse_read_type(s: &str) -> Result<alluvium_proto::ReadType> {
    use alluvium_proto::ReadType as R;
    match s.trim().to_ascii_uppercase().replace('-', "_").as_str() {
        "CACHE" => Ok(R::Cache),
        "CACHE_PROMOTE" => Ok(R::CachePromote),
        "NO_CACHE" => Ok(R::NoCache),
        _ => Err(Error::invalid_argument(format!(
            "unknown read type '{s}' (CACHE, CACHE_PROMOTE, NO_CACHE)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load_with_env(None, env(&[])).unwrap();
        assert_eq!(c.master.rpc_port, 19998);
        assert_eq!(c.master.web_port, 19999);
        assert_eq!(c.worker.rpc_port, 29999);
        assert_eq!(c.worker.web_port, 30000);
        assert_eq!(c.master_address, "localhost:19998");
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            r#"
master_address = "m:1"
[master]
rpc_port = 1234
default_block_size = "16MiB"
worker_timeout = "5s"
[[worker.tiers]]
alias = "MEM"
dirs = ["/dev/shm/x"]
quota = ["2GiB"]
[[worker.tiers]]
alias = "SSD"
dirs = ["/tmp/a", "/tmp/b"]
quota = ["1GB", "3GB"]
"#,
        )
        .unwrap();
        let c = Config::load_with_env(
            Some(&path),
            env(&[
                ("ALLUVIUM_MASTER", "other:9"),
                ("ALLUVIUM_WORKER__RPC_PORT", "4321"),
                ("ALLUVIUM_CLIENT__WRITE_TYPE", "CACHE_THROUGH"),
                ("ALLUVIUM_CLIENT__SHORT_CIRCUIT", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.master_address, "other:9");
        assert_eq!(c.master.rpc_port, 1234);
        assert_eq!(c.master.default_block_size.0, 16 << 20);
        assert_eq!(c.master.worker_timeout, Duration::from_secs(5));
        assert_eq!(c.worker.rpc_port, 4321);
        assert_eq!(c.worker.tiers.len(), 2);
        assert_eq!(c.worker.tiers[1].quota_of(1).0, 3_000_000_000);
        assert_eq!(c.client.write_type, "CACHE_THROUGH");
        assert!(!c.client.short_circuit);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[master]\nrpc_prot = 1\n").unwrap();
        let e = Config::load_with_env(Some(&path), env(&[])).unwrap_err();
        assert!(e.message.contains("rpc_prot"), "{e}");
        let e = Config::load_with_env(None, env(&[("ALLUVIUM_CLIENT__WRITE_TYPE", "NOPE")]))
            .unwrap_err();
        assert!(e.message.contains("NOPE"), "{e}");
        let e = Config::load_with_env(None, env(&[("ALLUVIUM_WORKER__LOW_WATERMARK", "0.99")]))
            .unwrap_err();
        assert!(e.message.contains("watermark"), "{e}");
        // A block size past any file (the CLI's --block-size sets client.block_size).
        let e = Config::load_with_env(None, env(&[("ALLUVIUM_CLIENT__BLOCK_SIZE", "1TiB")]))
            .unwrap_err();
        assert!(
            e.message
                .contains("client.block_size must be at most 512.0GiB"),
            "{e}"
        );
        assert!(Config::load_with_env(Some(Path::new("/nonexistent.toml")), env(&[])).is_err());
    }

    #[test]
    fn documented_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/alluvium.example.toml");
        let c = Config::load_with_env(Some(&path), env(&[])).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let mut c = Config::default();
        c.security.cluster_secret = "hunter2".into();
        c.proxy.s3_credentials.push(S3Credential {
            access_key_id: "AKID".into(),
            secret_access_key: "s3cr3t-key".into(),
            user: "alice".into(),
        });
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("s3cr3t-key"));
        assert!(shown.contains("AKID"));
    }
}
