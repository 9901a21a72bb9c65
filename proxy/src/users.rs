//! One cluster client per calling user. The master checks permissions against the user a client
//! names, so each gateway request runs through the `FileSystem` of its authenticated user; the
//! handles are cached because they hold connection pools.

use std::collections::HashMap;
use std::sync::Arc;

use alluvium_client::FileSystem;
use alluvium_common::{Config, Result};
use parking_lot::Mutex;

pub struct UserFileSystems {
    base: Config,
    by_user: Mutex<HashMap<String, FileSystem>>,
    /// The gateway's own identity (the configured or OS user), for its state directory.
    service: FileSystem,
}

/// Users cached at most; beyond this the cache is cleared (handles are cheap to rebuild).
const MAX_CACHED_USERS: usize = 1024;

impl UserFileSystems {
    pub async fn new(config: &Config) -> Result<Arc<Self>> {
        let service = FileSystem::connect(config).await?;
        Ok(Arc::new(Self {
            base: config.clone(),
            by_user: Mutex::new(HashMap::new()),
            service,
        }))
    }

    /// The client acting as `user` (empty = the gateway's own identity).
    pub async fn for_user(&self, user: &str) -> Result<FileSystem> {
        if user.is_empty() {
            return Ok(self.service.clone());
        }
        if let Some(fs) = self.by_user.lock().get(user) {
            return Ok(fs.clone());
        }
        let mut config = self.base.clone();
        config.client.user = user.to_string();
        let fs = FileSystem::connect(&config).await?;
        let mut map = self.by_user.lock();
        if map.len() >= MAX_CACHED_USERS {
            map.clear();
        }
        Ok(map.entry(user.to_string()).or_insert(fs).clone())
    }

    /// The gateway's own client: state directory (metadata, multipart staging).
    pub fn service(&self) -> &FileSystem {
        &self.service
    }
}
