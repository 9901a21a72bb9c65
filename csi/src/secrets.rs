//! The cluster secret of a volume, from the CSI `secrets` map.
//!
//! A master started with `security.cluster_secret` refuses every gRPC call that does not carry
//! that secret. The plugin has one of its own (the config file or
//! `ALLUVIUM_SECURITY__CLUSTER_SECRET`), but one plugin serves volumes of several clusters, each
//! with its own secret, so a volume can bring its own: the key [`CLUSTER_SECRET_KEY`]
//! (`clusterSecret`) of the `secrets` map of CreateVolume, DeleteVolume,
//! ValidateVolumeCapabilities and NodeStageVolume. Kubernetes fills that map from the Secret a
//! StorageClass names (`csi.storage.k8s.io/provisioner-secret-name`/`-namespace` for the
//! controller calls, `csi.storage.k8s.io/node-stage-secret-name`/`-namespace` for staging) or a
//! PV names (`spec.csi.nodeStageSecretRef`). A volume's own secret wins over the plugin's.
//!
//! NodeStageVolume makes the FUSE mount, the only node call that talks to the master, so that is
//! where the node needs the secret; NodePublishVolume's map is checked but not needed. The
//! staged volume's record in the state directory keeps the secret (file mode 0600, see
//! [`crate::state`]): after a plugin restart the kubelet does not stage again, and recovery must
//! re-mount with the same secret. NodeGetVolumeStats, which carries no secrets, uses it too.
//!
//! A secret never appears in logs, errors or `Debug` output.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::invalid;

/// The key of the `secrets` map that holds the cluster secret.
pub const CLUSTER_SECRET_KEY: &str = "clusterSecret";

/// A cluster secret (never empty). Its `Debug` output hides the value.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// The secret of a CSI `secrets` map: `None` when the key is absent or empty,
    /// INVALID_ARGUMENT when the value cannot travel as gRPC metadata (visible ASCII only).
    pub fn from_secrets(secrets: &HashMap<String, String>) -> Result<Option<Self>, Status> {
        let Some(value) = secrets.get(CLUSTER_SECRET_KEY) else {
            return Ok(None);
        };
        // Secrets made with `kubectl create secret --from-file` often end with a newline.
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            // Never echo the value.
            return Err(invalid(format!(
                "secrets: {CLUSTER_SECRET_KEY} must be printable ASCII (it travels as gRPC metadata)"
            )));
        }
        Ok(Some(Self(value.to_string())))
    }

    /// The secret itself, for the client configuration only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(******)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: &str) -> HashMap<String, String> {
        HashMap::from([(CLUSTER_SECRET_KEY.to_string(), v.to_string())])
    }

    #[test]
    fn read_from_the_secrets_map() {
        assert_eq!(ClusterSecret::from_secrets(&HashMap::new()).unwrap(), None);
        assert_eq!(ClusterSecret::from_secrets(&map("  \n")).unwrap(), None);
        let other = HashMap::from([("clustersecret".to_string(), "x".to_string())]);
        assert_eq!(ClusterSecret::from_secrets(&other).unwrap(), None);
        let s = ClusterSecret::from_secrets(&map("s3cret\n"))
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), "s3cret");
        let err = ClusterSecret::from_secrets(&map("caf\u{e9}-s3cret")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(!err.message().contains("s3cret"), "{}", err.message());
    }

    #[test]
    fn never_shown() {
        let s = ClusterSecret::from_secrets(&map("hunter2"))
            .unwrap()
            .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
        // Serialized (the state record) it is the plain string, so records stay readable.
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2\"");
    }
}
