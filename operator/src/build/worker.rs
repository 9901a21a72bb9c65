//! Workers: a DaemonSet on every node matching the cluster's and its tiers' node selectors, each
//! tier a hostPath mounted at the same path inside the pod, so clients on the node (CSI, FUSE)
//! short-circuit reads on the very same files.

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HostPathVolumeSource, PodSpec, PodTemplateSpec, Probe,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{common_env, config_mount, config_volume, env_field, meta, pod_annotations};
use crate::names;
use crate::validate::ValidatedCluster;

pub fn daemon_set(c: &ValidatedCluster) -> DaemonSet {
    let labels = names::labels(&c.name, "worker");
    let mut volumes = vec![config_volume(c)];
    let mut mounts = vec![config_mount()];
    for t in &c.tiers {
        let vol = format!("tier-{}", t.medium.alias().to_ascii_lowercase());
        volumes.push(Volume {
            name: vol.clone(),
            host_path: Some(HostPathVolumeSource {
                path: t.host_path.clone(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: vol,
            mount_path: t.host_path.clone(),
            ..Default::default()
        });
    }
    let mut env_vars = common_env(c);
    // With host networking the node's IP is the worker's address, and the same name clients on
    // the node use for locality.
    env_vars.push(env_field("ALLUVIUM_WORKER__HOSTNAME", "status.hostIP"));
    let container = Container {
        name: "worker".into(),
        image: Some(c.image.clone()),
        image_pull_policy: Some(c.pull_policy.as_str().into()),
        args: Some(vec![
            "worker".into(),
            "--config".into(),
            names::CONFIG_FILE.into(),
        ]),
        env: Some(env_vars),
        ports: Some(vec![
            ContainerPort {
                name: Some("rpc".into()),
                container_port: c.worker_ports.rpc,
                ..Default::default()
            },
            ContainerPort {
                name: Some("web".into()),
                container_port: c.worker_ports.web,
                ..Default::default()
            },
        ]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("rpc".into()),
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
        // Memory holds the MEM tiers' quota on top of the process's needs (see validate).
        resources: Some(c.worker_resources.clone()),
        // hostPath tier directories are created root-owned by the kubelet.
        security_context: Some(super::restricted_security(true)),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    DaemonSet {
        metadata: meta(c, names::worker(&c.name), "worker"),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(names::selector(&c.name, "worker")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(pod_annotations(c)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    host_network: Some(true),
                    dns_policy: Some("ClusterFirstWithHostNet".into()),
                    node_selector: (!c.worker_node_selector.is_empty())
                        .then(|| c.worker_node_selector.clone()),
                    volumes: Some(volumes),
                    termination_grace_period_seconds: Some(30),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
