//! The master: a StatefulSet (stable name, journal PVC), a headless Service for its pod's DNS
//! name and a client Service for gRPC and HTTP.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    SecretEnvSource, Service, ServicePort, ServiceSpec, TCPSocketAction, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::{common_env, config_mount, config_volume, env, env_field, meta, pod_annotations};
use crate::names;
use crate::validate::ValidatedCluster;

fn ports() -> Vec<ServicePort> {
    vec![
        ServicePort {
            name: Some("rpc".into()),
            port: names::MASTER_RPC_PORT,
            target_port: Some(IntOrString::String("rpc".into())),
            ..Default::default()
        },
        ServicePort {
            name: Some("web".into()),
            port: names::MASTER_WEB_PORT,
            target_port: Some(IntOrString::String("web".into())),
            ..Default::default()
        },
    ]
}

/// Gives the master pod a stable DNS name; publishes it before it is ready so the master can
/// resolve its own advertised name while starting.
pub fn headless_service(c: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(c, names::master_headless(&c.name), "master"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector(&c.name, "master")),
            ports: Some(ports()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What clients, workers, the proxy and the operator call.
pub fn client_service(c: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(c, names::master(&c.name), "master"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::selector(&c.name, "master")),
            ports: Some(ports()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn stateful_set(c: &ValidatedCluster) -> StatefulSet {
    let labels = names::labels(&c.name, "master");
    let mut env_vars = common_env(c);
    env_vars.push(env_field("POD_NAME", "metadata.name"));
    // The advertised host name resolves through the headless Service.
    env_vars.push(env(
        "ALLUVIUM_MASTER__HOSTNAME",
        format!(
            "$(POD_NAME).{}.{}.svc",
            names::master_headless(&c.name),
            c.namespace
        ),
    ));
    let container = Container {
        name: "master".into(),
        image: Some(c.image.clone()),
        image_pull_policy: Some(c.pull_policy.as_str().into()),
        args: Some(vec![
            "master".into(),
            "--config".into(),
            names::CONFIG_FILE.into(),
        ]),
        env: Some(env_vars),
        // Root UFS credentials reach the master only, as environment: each key of the Secret
        // becomes `master.root_ufs_options.<key>`.
        env_from: c.root_ufs_secret.as_ref().map(|name| {
            vec![EnvFromSource {
                prefix: Some("ALLUVIUM_MASTER__ROOT_UFS_OPTIONS__".into()),
                secret_ref: Some(SecretEnvSource {
                    name: name.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }]
        }),
        ports: Some(vec![
            ContainerPort {
                name: Some("rpc".into()),
                container_port: names::MASTER_RPC_PORT,
                ..Default::default()
            },
            ContainerPort {
                name: Some("web".into()),
                container_port: names::MASTER_WEB_PORT,
                ..Default::default()
            },
        ]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("web".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("rpc".into()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(15),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Default::default()
        }),
        resources: Some(c.master_resources.clone()),
        security_context: Some(super::restricted_security(false)),
        volume_mounts: Some(vec![
            config_mount(),
            VolumeMount {
                name: "journal".into(),
                mount_path: names::JOURNAL_DIR.into(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta(c, names::master(&c.name), "master"),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(names::master_headless(&c.name)),
            selector: LabelSelector {
                match_labels: Some(names::selector(&c.name, "master")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(pod_annotations(c)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    node_selector: (!c.master_node_selector.is_empty())
                        .then(|| c.master_node_selector.clone()),
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(1000),
                        ..Default::default()
                    }),
                    volumes: Some(vec![config_volume(c)]),
                    ..Default::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("journal".into()),
                    labels: Some(labels),
                    ..Default::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: c.journal_storage_class.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(c.journal_size.clone()),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
