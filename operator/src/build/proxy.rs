//! The proxy: S3 and WebHDFS gateways as a Deployment behind a Service. Only the enabled APIs'
//! ports are published.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{common_env, config_mount, config_volume, meta, pod_annotations};
use crate::names;
use crate::validate::{ValidProxy, ValidatedCluster};

fn enabled_ports(p: &ValidProxy) -> Vec<(&'static str, i32)> {
    let mut v = Vec::new();
    if p.s3 {
        v.push(("s3", names::S3_PORT));
    }
    if p.webhdfs {
        v.push(("webhdfs", names::WEBHDFS_PORT));
    }
    v
}

/// The shared environment plus which gateways to serve: a disabled API is not even bound.
fn proxy_env(c: &ValidatedCluster, p: &ValidProxy) -> Vec<EnvVar> {
    let mut v = common_env(c);
    for (name, on) in [
        ("ALLUVIUM_PROXY__S3_ENABLED", p.s3),
        ("ALLUVIUM_PROXY__WEBHDFS_ENABLED", p.webhdfs),
    ] {
        v.push(EnvVar {
            name: name.into(),
            value: Some(on.to_string()),
            ..Default::default()
        });
    }
    v
}

pub fn deployment(c: &ValidatedCluster, p: &ValidProxy) -> Deployment {
    let ports = enabled_ports(p);
    let first = ports.first().map(|(n, _)| *n).unwrap_or("s3");
    let container = Container {
        name: "proxy".into(),
        image: Some(c.image.clone()),
        image_pull_policy: Some(c.pull_policy.as_str().into()),
        args: Some(vec![
            "proxy".into(),
            "--config".into(),
            names::CONFIG_FILE.into(),
        ]),
        env: Some(proxy_env(c, p)),
        ports: Some(
            ports
                .iter()
                .map(|(n, port)| ContainerPort {
                    name: Some((*n).into()),
                    container_port: *port,
                    ..Default::default()
                })
                .collect(),
        ),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String(first.into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        resources: Some(p.resources.clone()),
        security_context: Some(super::restricted_security(false)),
        volume_mounts: Some(vec![config_mount()]),
        ..Default::default()
    };
    Deployment {
        metadata: meta(c, names::proxy(&c.name), "proxy"),
        spec: Some(DeploymentSpec {
            replicas: Some(p.replicas),
            selector: LabelSelector {
                match_labels: Some(names::selector(&c.name, "proxy")),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names::labels(&c.name, "proxy")),
                    annotations: Some(pod_annotations(c)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(vec![config_volume(c)]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn service(c: &ValidatedCluster, p: &ValidProxy) -> Service {
    Service {
        metadata: meta(c, names::proxy(&c.name), "proxy"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names::selector(&c.name, "proxy")),
            ports: Some(
                enabled_ports(p)
                    .iter()
                    .map(|(n, port)| ServicePort {
                        name: Some((*n).into()),
                        port: *port,
                        target_port: Some(IntOrString::String((*n).into())),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}
