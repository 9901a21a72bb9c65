//! Names and labels of everything the operator owns, in one place so builders and controllers
//! agree.

use std::collections::BTreeMap;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "alluvium-operator";
/// Finalizer on `Mount`: the master's mount is removed before the resource goes.
pub const MOUNT_FINALIZER: &str = "alluvium.io/unmount";
/// Annotation carrying a hash of what the operator last applied to an object: an object whose
/// annotation matches the desired hash is not applied again, so a reconcile at rest writes
/// nothing.
pub const APPLIED_HASH_ANNOTATION: &str = "alluvium.io/applied-hash";
/// The user the operator and the CSI controller present to masters; the operator makes it a
/// superuser of the clusters it runs (`master.superusers`).
pub const OPERATOR_USER: &str = "alluvium";
/// Key of the cluster secret in its Secret (the CSI driver reads this key of the Secret the
/// kubelet hands it).
pub const CLUSTER_SECRET_KEY: &str = "clusterSecret";
/// Annotation carrying a hash of the config, so pods roll when it changes.
pub const CONFIG_HASH_ANNOTATION: &str = "alluvium.io/config-hash";

pub const MASTER_RPC_PORT: i32 = 19998;
pub const MASTER_WEB_PORT: i32 = 19999;
pub const WORKER_RPC_PORT: i32 = 29999;
pub const WORKER_WEB_PORT: i32 = 30000;
pub const S3_PORT: i32 = 39999;
pub const WEBHDFS_PORT: i32 = 9870;

/// Where the config file is mounted in every pod.
pub const CONFIG_DIR: &str = "/etc/alluvium";
pub const CONFIG_FILE: &str = "/etc/alluvium/alluvium.toml";
/// Where the master's journal volume is mounted.
pub const JOURNAL_DIR: &str = "/journal";

pub fn config_map(cluster: &str) -> String {
    format!("{cluster}-config")
}
pub fn master(cluster: &str) -> String {
    format!("{cluster}-master")
}
pub fn master_headless(cluster: &str) -> String {
    format!("{cluster}-master-headless")
}
pub fn worker(cluster: &str) -> String {
    format!("{cluster}-worker")
}
/// The Secret holding the cluster secret when the Cluster names none.
pub fn cluster_secret(cluster: &str) -> String {
    format!("{cluster}-cluster-secret")
}
pub fn proxy(cluster: &str) -> String {
    format!("{cluster}-proxy")
}
/// The master's gRPC address as seen from inside the Kubernetes cluster.
pub fn master_endpoint(cluster: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc:{MASTER_RPC_PORT}", master(cluster))
}
/// The master's HTTP base URL as seen from inside the Kubernetes cluster.
pub fn master_http(cluster: &str, namespace: &str) -> String {
    format!(
        "http://{}.{namespace}.svc:{MASTER_WEB_PORT}",
        master(cluster)
    )
}

/// Labels every object of a cluster's component carries; also the pod selectors.
pub fn labels(cluster: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "alluvium".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            cluster.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            FIELD_MANAGER.to_string(),
        ),
    ])
}

/// The subset of [`labels`] used as an immutable selector.
pub fn selector(cluster: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "alluvium".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            cluster.to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
    ])
}
