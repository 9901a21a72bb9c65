//! `Cluster` reconcile: dereference (the named `Tier`s, the Secrets, the nodes workers would
//! run on) → validate → build → apply what changed → status (with capacity and usage read
//! from the master), written only when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alluvium_common::ByteSize;
use alluvium_crds::{Cluster, ClusterPhase, ClusterStatus, Tier};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use kube::api::{DeleteParams, ListParams, Patch, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::{condition, Context, Error};
use crate::apply::apply_namespaced;
use crate::build;
use crate::master_api::{MasterError, MasterTarget};
use crate::names;
use crate::validate::{check_fits_nodes, validate_cluster, Invalid, ValidatedCluster};

/// How often a healthy cluster's status (readiness, capacity) is refreshed.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How soon an invalid cluster is looked at again (a Tier it names may appear).
pub const INVALID_RETRY: Duration = Duration::from_secs(60);

pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let start = Instant::now();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics.observe("Cluster", start.elapsed());
    if result.is_ok() {
        ctx.succeeded(&super::key(cluster.as_ref()));
    }
    result
}

/// The Tiers a cluster names that exist.
async fn fetch_tiers(ctx: &Context, cluster: &Cluster) -> Result<BTreeMap<String, Tier>, Error> {
    let api: Api<Tier> = Api::all(ctx.client.clone());
    let mut found = BTreeMap::new();
    for name in &cluster.spec.workers.tiers {
        if let Some(t) = api.get_opt(name).await? {
            found.insert(name.clone(), t);
        }
    }
    Ok(found)
}

/// The Secret (name, key) holding a cluster's secret: the one its spec names, or the
/// operator's own.
pub fn cluster_secret_ref(cluster: &Cluster) -> alluvium_crds::SecretKeyRef {
    cluster
        .spec
        .security
        .cluster_secret_ref
        .clone()
        .unwrap_or_else(|| alluvium_crds::SecretKeyRef {
            name: names::cluster_secret(&cluster.name_any()),
            key: names::CLUSTER_SECRET_KEY.into(),
        })
}

/// The value of `key` in a Secret, as the components read it (trimmed).
fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let value = secret.data.as_ref()?.get(key)?;
    Some(String::from_utf8_lossy(&value.0).trim().to_string())
}

/// The cluster secret's value. Missing is [`Error::SecretNotFound`], naming the Secret.
pub async fn cluster_secret(
    ctx: &Context,
    namespace: &str,
    cluster: &Cluster,
) -> Result<Option<String>, Error> {
    let r = cluster_secret_ref(cluster);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api.get_opt(&r.name).await?.ok_or_else(|| {
        Error::SecretNotFound(format!(
            "the cluster secret {namespace}/{} does not exist",
            r.name
        ))
    })?;
    let value = secret_value(&secret, &r.key).ok_or_else(|| {
        Error::SecretNotFound(format!(
            "the cluster secret {namespace}/{} has no key {}",
            r.name, r.key
        ))
    })?;
    Ok(Some(value))
}

/// The cluster secret's value, read once per reconcile: the operator makes its own Secret when
/// the spec names none (once: an existing one is never replaced); a Secret the spec names that
/// is missing or lacks the key is a refusal naming it.
async fn resolve_cluster_secret(
    ctx: &Context,
    c: &ValidatedCluster,
) -> Result<Result<String, Invalid>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &c.namespace);
    let r = &c.cluster_secret;
    let refused = |message: String| {
        Ok(Err(Invalid {
            reason: "SecretNotFound",
            message,
        }))
    };
    let found = match api.get_opt(&r.name).await? {
        Some(s) => s,
        None if c.managed_secret => {
            let value = random_token();
            let params = PostParams {
                field_manager: Some(names::FIELD_MANAGER.into()),
                ..Default::default()
            };
            match api.create(&params, &build::managed_secret(c, &value)).await {
                Ok(_) => return Ok(Ok(value)),
                // Made meanwhile by another reconcile: read that one.
                Err(kube::Error::Api(e)) if e.code == 409 => api.get(&r.name).await?,
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            return refused(format!(
                "security.clusterSecretRef names Secret {}/{}, which does not exist",
                c.namespace, r.name
            ))
        }
    };
    match secret_value(&found, &r.key) {
        Some(v) => Ok(Ok(v)),
        None => refused(format!(
            "security.clusterSecretRef: Secret {}/{} has no key '{}'",
            c.namespace, r.name, r.key
        )),
    }
}

/// 256 random bits, hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The root UFS credentials Secret the spec names, when it does not exist, as a refusal.
async fn missing_root_ufs_secret(
    ctx: &Context,
    c: &ValidatedCluster,
) -> Result<Option<Invalid>, Error> {
    let Some(name) = &c.root_ufs_secret else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &c.namespace);
    Ok(api.get_opt(name).await?.is_none().then(|| Invalid {
        reason: "SecretNotFound",
        message: format!(
            "rootUfs.credentialsSecretRef names Secret {}/{name}, which does not exist",
            c.namespace
        ),
    }))
}

/// Pod Security admission label naming the level a namespace enforces.
const PSA_ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// Workers use the node's network and hostPath tiers, which Pod Security `baseline` and
/// `restricted` refuse: say so instead of leaving the DaemonSet without pods ("PodsNotReady").
pub fn pod_security_refusal(namespace: &str, level: Option<&str>) -> Option<Invalid> {
    match level {
        Some(l @ ("baseline" | "restricted")) => Some(Invalid {
            reason: "PodSecurity",
            message: format!(
                "namespace {namespace} enforces Pod Security '{l}', which refuses the workers (host network, hostPath tiers) and the master's journal: label it privileged (kubectl label namespace {namespace} {PSA_ENFORCE}=privileged --overwrite) or use another namespace"
            ),
        }),
        _ => None,
    }
}

async fn namespace_pod_security(ctx: &Context, namespace: &str) -> Result<Option<Invalid>, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let ns = api.get_opt(namespace).await?;
    let level = ns
        .as_ref()
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(PSA_ENFORCE))
        .map(String::as_str);
    Ok(pod_security_refusal(namespace, level))
}

/// The smallest allocatable memory among nodes matching the workers' selector; `None` when no
/// node matches.
async fn smallest_worker_node(ctx: &Context, c: &ValidatedCluster) -> Result<Option<u64>, Error> {
    let selector = c
        .worker_node_selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<Node> = Api::all(ctx.client.clone());
    let nodes = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(nodes
        .items
        .iter()
        .filter_map(|n| {
            let q = n.status.as_ref()?.allocatable.as_ref()?.get("memory")?;
            alluvium_crds::quantity::parse_size("allocatable", &q.0).ok()
        })
        .min())
}

async fn reconcile_inner(cluster: &Cluster, ctx: &Context) -> Result<Action, Error> {
    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_default();
    let old = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;

    let tiers = fetch_tiers(ctx, cluster).await?;
    let valid = match validate_cluster(cluster, &tiers) {
        Ok(v) => v,
        Err(invalid) => {
            refuse(cluster, ctx, &old, invalid).await?;
            return Ok(Action::requeue(INVALID_RETRY));
        }
    };
    let mut refusal = missing_root_ufs_secret(ctx, &valid).await?;
    if refusal.is_none() {
        refusal = namespace_pod_security(ctx, &ns).await?;
    }
    if refusal.is_none() && cluster.spec.workers.max_memory.is_none() {
        refusal = check_fits_nodes(&valid, smallest_worker_node(ctx, &valid).await?).err();
    }
    let secret = match refusal {
        Some(invalid) => Err(invalid),
        None => resolve_cluster_secret(ctx, &valid).await?,
    };
    let secret = match secret {
        Ok(s) => s,
        Err(invalid) => {
            refuse(cluster, ctx, &old, invalid).await?;
            return Ok(Action::requeue(INVALID_RETRY));
        }
    };

    let objs = build::cluster_objects(&valid);
    let client = &ctx.client;
    apply_namespaced(client, &objs.config_map).await?;
    apply_namespaced(client, &objs.master_headless).await?;
    apply_namespaced(client, &objs.master_service).await?;
    let sts = apply_namespaced(client, &objs.master).await?;
    let ds = apply_namespaced(client, &objs.workers).await?;
    match &objs.proxy {
        Some((deploy, svc)) => {
            apply_namespaced(client, deploy).await?;
            apply_namespaced(client, svc).await?;
        }
        None => remove_proxy(ctx, &ns, &name).await?,
    }

    let ready_masters = sts
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let ds_status = ds.status.clone().unwrap_or_default();
    let (ready_workers, desired_workers) =
        (ds_status.number_ready, ds_status.desired_number_scheduled);
    let mut status = ClusterStatus {
        master_endpoint: Some(names::master_endpoint(&name, &ns)),
        ready_masters,
        ready_workers,
        desired_workers,
        observed_generation: generation,
        ..Default::default()
    };
    let mut master_ok: Result<(), Option<MasterError>> = Err(None);
    if ready_masters > 0 {
        let target = MasterTarget {
            endpoint: names::master_endpoint(&name, &ns),
            secret: Some(secret),
        };
        master_ok = ctx
            .masters
            .usage(&target)
            .await
            .map(|u| {
                status.live_workers = u.live_workers;
                status.capacity = Some(ByteSize::human(u.capacity_bytes));
                status.used = Some(ByteSize::human(u.used_bytes));
                status.tiers = u.tiers;
            })
            .map_err(Some);
    }
    let phase = if ready_masters == 0 || desired_workers == 0 {
        ClusterPhase::Pending
    } else if ready_workers < desired_workers || master_ok.is_err() {
        ClusterPhase::Degraded
    } else {
        ClusterPhase::Running
    };
    status.phase = Some(phase);
    let (reason, message) = match (phase, &master_ok) {
        (ClusterPhase::Running, _) => (
            "Running",
            format!("master and {ready_workers} worker(s) ready"),
        ),
        (_, _) if ready_masters > 0 && desired_workers == 0 => (
            "NoWorkerNodes",
            format!(
                "no node matches the workers' node selector {:?} (merged from the cluster and its Tiers)",
                valid.worker_node_selector
            ),
        ),
        (_, Err(Some(e))) if ready_masters > 0 => {
            // A refusal (a wrong cluster secret, say) is not an outage.
            let reason = if e.is_unreachable() {
                "MasterUnreachable"
            } else {
                "MasterRefused"
            };
            (reason, e.to_string())
        }
        _ => (
            "PodsNotReady",
            format!(
                "{ready_masters}/1 master(s) and {ready_workers}/{desired_workers} worker(s) ready"
            ),
        ),
    };
    status.conditions = vec![
        condition(
            &old.conditions,
            "Ready",
            phase == ClusterPhase::Running,
            reason,
            message.clone(),
            generation,
        ),
        condition(
            &old.conditions,
            "SpecValid",
            true,
            "Valid",
            "spec and Tiers are valid",
            generation,
        ),
    ];
    patch_status(ctx, cluster, &old, &status).await?;
    if old.phase != Some(phase) {
        let type_ = if phase == ClusterPhase::Degraded {
            EventType::Warning
        } else {
            EventType::Normal
        };
        ctx.event(&cluster.object_ref(&()), type_, reason, message)
            .await;
    }
    Ok(Action::requeue(REFRESH))
}

/// An invalid spec: Failed with a clear condition, an event when that is news, nothing built.
async fn refuse(
    cluster: &Cluster,
    ctx: &Context,
    old: &ClusterStatus,
    invalid: Invalid,
) -> Result<(), Error> {
    let generation = cluster.metadata.generation;
    let status = ClusterStatus {
        phase: Some(ClusterPhase::Failed),
        observed_generation: generation,
        conditions: vec![
            condition(
                &old.conditions,
                "Ready",
                false,
                invalid.reason,
                invalid.message.clone(),
                generation,
            ),
            condition(
                &old.conditions,
                "SpecValid",
                false,
                invalid.reason,
                invalid.message.clone(),
                generation,
            ),
        ],
        ..old.clone()
    };
    let news = old.phase != Some(ClusterPhase::Failed)
        || !old.conditions.iter().any(|c| c.message == invalid.message);
    patch_status(ctx, cluster, old, &status).await?;
    ctx.metrics.failed("Cluster", invalid.reason);
    if news {
        tracing::warn!(cluster = %cluster.name_any(), reason = invalid.reason, message = %invalid.message, "cluster spec refused");
        ctx.event(
            &cluster.object_ref(&()),
            EventType::Warning,
            invalid.reason,
            invalid.message,
        )
        .await;
    }
    Ok(())
}

/// Writes `status` unless it equals what the Cluster already shows.
async fn patch_status(
    ctx: &Context,
    cluster: &Cluster,
    old: &ClusterStatus,
    status: &ClusterStatus,
) -> Result<(), Error> {
    if old == status {
        return Ok(());
    }
    let api: Api<Cluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    api.patch_status(
        &cluster.name_any(),
        &crate::apply::patch_params(),
        &Patch::Merge(super::status_patch(
            status,
            &["capacity", "used", "tiers", "masterEndpoint"],
        )),
    )
    .await?;
    Ok(())
}

/// The proxy was turned off: its objects go. Looked up first, so a cluster at rest without a
/// proxy sends no DELETE on every pass.
async fn remove_proxy(ctx: &Context, ns: &str, cluster: &str) -> Result<(), Error> {
    let name = names::proxy(cluster);
    let deploys: Api<Deployment> = Api::namespaced(ctx.client.clone(), ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    if deploys.get_opt(&name).await?.is_some() {
        delete_absent_ok(
            deploys
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    if services.get_opt(&name).await?.is_some() {
        delete_absent_ok(
            services
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        )?;
    }
    Ok(())
}

fn delete_absent_ok(r: kube::Result<()>) -> Result<(), Error> {
    match r {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
