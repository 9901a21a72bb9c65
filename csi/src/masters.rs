//! One client per master address and cluster secret: volumes of several Alluvium clusters can be
//! served by one plugin (each StorageClass or static PV names its master, and may bring that
//! cluster's secret, see [`crate::secrets`]).

use std::collections::HashMap;
use std::time::Duration;

use alluvium_client::FileSystem;
use alluvium_common::{Config, Error, ErrorCode, Result};
use parking_lot::Mutex;

use crate::config_for;
use crate::secrets::ClusterSecret;

/// How long the controller and stats calls keep retrying an unreachable master before they
/// answer UNAVAILABLE (the CO retries them anyway).
const CALL_RETRY: Duration = Duration::from_secs(5);

/// How long Probe waits for the master.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Masters {
    base: Config,
    /// Keyed by master and the volume's own secret (`None`: the plugin's), so a volume never
    /// borrows a connection made with another volume's secret.
    clients: Mutex<HashMap<(String, Option<ClusterSecret>), FileSystem>>,
}

impl Masters {
    pub fn new(base: Config) -> Self {
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn base(&self) -> &Config {
        &self.base
    }

    /// The plugin's own master (`--master`, `ALLUVIUM_MASTER` or the config file).
    pub fn default_master(&self) -> &str {
        &self.base.master_address
    }

    /// The client for `master`, carrying `secret` when given, else the plugin's own secret
    /// (connections are made on first use).
    pub async fn get(&self, master: &str, secret: Option<&ClusterSecret>) -> Result<FileSystem> {
        let key = (master.to_string(), secret.cloned());
        if let Some(fs) = self.clients.lock().get(&key) {
            return Ok(fs.clone());
        }
        let mut config = config_for(&self.base, master, secret);
        config.client.retry_duration = CALL_RETRY;
        let fs = FileSystem::connect(&config)
            .await
            .map_err(|e| e.context(format!("master {master}")))?;
        Ok(self.clients.lock().entry(key).or_insert(fs).clone())
    }

    /// Whether the default master answers now (a fresh client with no retries, bounded).
    pub async fn probe(&self) -> Result<()> {
        let mut config = self.base.clone();
        config.client.retry_duration = Duration::ZERO;
        config.client.rpc_timeout = PROBE_TIMEOUT;
        let fs = FileSystem::connect(&config).await?;
        match tokio::time::timeout(PROBE_TIMEOUT, fs.master_info()).await {
            Ok(Ok(_)) => Ok(()),
            // A master that refuses the plugin's own (absent) secret answered: it is reachable,
            // and volumes bring their cluster's secret with them. external-provisioner waits
            // for a ready Probe before it serves anything, so this must not read as "down".
            Ok(Err(e)) if e.code == ErrorCode::PermissionDenied => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(
                ErrorCode::DeadlineExceeded,
                format!(
                    "master {} did not answer within {PROBE_TIMEOUT:?}",
                    config.master_address
                ),
            )),
        }
    }
}
