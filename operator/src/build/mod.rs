//! Pure builders: one function per owned object, from validated values to Kubernetes objects.
//! No I/O happens here, so every object is covered by golden tests.

pub mod config;
pub mod master;
pub mod mount;
pub mod proxy;
pub mod worker;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::names;
use crate::validate::ValidatedCluster;

/// Every object a cluster owns, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterObjects {
    pub config_map: ConfigMap,
    pub master_headless: Service,
    pub master_service: Service,
    pub master: StatefulSet,
    pub workers: DaemonSet,
    pub proxy: Option<(Deployment, Service)>,
}

/// Builds every object of a validated cluster.
pub fn cluster_objects(c: &ValidatedCluster) -> ClusterObjects {
    ClusterObjects {
        config_map: config::config_map(c),
        master_headless: master::headless_service(c),
        master_service: master::client_service(c),
        master: master::stateful_set(c),
        workers: worker::daemon_set(c),
        proxy: c
            .proxy
            .as_ref()
            .map(|p| (proxy::deployment(c, p), proxy::service(c, p))),
    }
}

/// Owner reference making `Cluster` `c` the controller of an object (garbage collection).
pub fn owner(c: &ValidatedCluster) -> OwnerReference {
    OwnerReference {
        api_version: alluvium_crds::API_VERSION.into(),
        kind: "Cluster".into(),
        name: c.name.clone(),
        uid: c.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of an object owned by a cluster.
pub fn meta(c: &ValidatedCluster, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(c.namespace.clone()),
        labels: Some(names::labels(&c.name, component)),
        owner_references: Some(vec![owner(c)]),
        ..Default::default()
    }
}

pub(crate) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub(crate) fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Environment every Alluvium container gets: the log filter and the cluster secret (never in
/// the ConfigMap).
pub(crate) fn common_env(c: &ValidatedCluster) -> Vec<EnvVar> {
    vec![env("ALLUVIUM_LOG", "info"), secret_env(&c.cluster_secret)]
}

/// `ALLUVIUM_SECURITY__CLUSTER_SECRET` from the cluster's Secret.
pub(crate) fn secret_env(s: &alluvium_crds::SecretKeyRef) -> EnvVar {
    EnvVar {
        name: "ALLUVIUM_SECURITY__CLUSTER_SECRET".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: s.name.clone(),
                key: s.key.clone(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The operator's own cluster secret (when the spec names none), owned by the Cluster so it
/// goes with it. Created once with a random value; never applied again (a new value would cut
/// running pods off).
pub fn managed_secret(c: &ValidatedCluster, value: &str) -> k8s_openapi::api::core::v1::Secret {
    k8s_openapi::api::core::v1::Secret {
        metadata: meta(c, c.cluster_secret.name.clone(), "cluster-secret"),
        string_data: Some(BTreeMap::from([(
            c.cluster_secret.key.clone(),
            value.to_string(),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Pod template annotations: the config hash rolls pods when the config changes.
pub(crate) fn pod_annotations(c: &ValidatedCluster) -> BTreeMap<String, String> {
    BTreeMap::from([(
        names::CONFIG_HASH_ANNOTATION.to_string(),
        config::hash(&c.config_toml),
    )])
}

pub(crate) fn config_volume(c: &ValidatedCluster) -> k8s_openapi::api::core::v1::Volume {
    k8s_openapi::api::core::v1::Volume {
        name: "config".into(),
        config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
            name: names::config_map(&c.name),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) fn config_mount() -> k8s_openapi::api::core::v1::VolumeMount {
    k8s_openapi::api::core::v1::VolumeMount {
        name: "config".into(),
        mount_path: names::CONFIG_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }
}

pub(crate) fn restricted_security(
    run_as_root: bool,
) -> k8s_openapi::api::core::v1::SecurityContext {
    use k8s_openapi::api::core::v1::{Capabilities, SeccompProfile, SecurityContext};
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        run_as_non_root: Some(!run_as_root),
        run_as_user: Some(if run_as_root { 0 } else { 1000 }),
        run_as_group: Some(if run_as_root { 0 } else { 1000 }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
