//! Mount id → UFS client. Clients only name `(mount_id, path)`; the worker asks the master for
//! the mount (with its credentials) once and keeps the opened `Ufs`. Mount ids are never reused,
//! so a cached entry never goes stale.

use std::collections::{BTreeMap, HashMap};

use alluvium_common::{Error, Result};
use alluvium_proto::GetUfsMountRequest;
use alluvium_ufs::Ufs;
use parking_lot::Mutex;

use crate::master_client::MasterRpc;

pub struct UfsMounts {
    master: MasterRpc,
    cache: Mutex<HashMap<u64, Ufs>>,
}

impl UfsMounts {
    pub fn new(master: MasterRpc) -> Self {
        Self {
            master,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The UFS of mount `mount_id`.
    pub async fn get(&self, mount_id: u64) -> Result<Ufs> {
        if mount_id == 0 {
            return Err(Error::invalid_argument(
                "the UFS location names no mount (mount_id 0)",
            ));
        }
        if let Some(u) = self.cache.lock().get(&mount_id) {
            return Ok(u.clone());
        }
        let info = self
            .master
            .clone()
            .get_ufs_mount(GetUfsMountRequest { mount_id })
            .await
            .map_err(|s| Error::from(s).context(format!("cannot resolve UFS mount {mount_id}")))?
            .into_inner();
        let options: BTreeMap<String, String> = info.options.into_iter().collect();
        let ufs = Ufs::open(&info.ufs_uri, &options)?;
        tracing::debug!(mount_id, uri = %ufs.uri(), "resolved UFS mount");
        self.cache.lock().insert(mount_id, ufs.clone());
        Ok(ufs)
    }
}
