//! The config file (`alluvium.toml`) of a cluster: the operator's settings for ports, paths and
//! tiers, then the user's overrides, checked by loading it as `alluvium_common::Config` so a bad
//! override is refused here instead of crash-looping every pod.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use toml::{Table, Value};

use alluvium_crds::WorkerPorts;

use crate::names;
use crate::validate::{Invalid, RootUfs, ValidTier, ValidatedCluster};

/// Renders the TOML for a cluster. Per-pod values (host names) and secrets (the cluster secret,
/// root UFS credentials) come from the environment.
pub fn render(
    cluster: &str,
    namespace: &str,
    tiers: &[ValidTier],
    root_ufs: RootUfs<'_>,
    worker_ports: WorkerPorts,
    overrides: &BTreeMap<String, String>,
) -> Result<String, Invalid> {
    let mut root = Table::new();
    root.insert(
        "master_address".into(),
        names::master_endpoint(cluster, namespace).into(),
    );
    let mut master = Table::new();
    master.insert("bind_host".into(), "0.0.0.0".into());
    master.insert("rpc_port".into(), i64::from(names::MASTER_RPC_PORT).into());
    master.insert("web_port".into(), i64::from(names::MASTER_WEB_PORT).into());
    master.insert(
        "metastore_dir".into(),
        format!("{}/metastore", names::JOURNAL_DIR).into(),
    );
    master.insert("root_ufs".into(), root_ufs.uri.into());
    if !root_ufs.options.is_empty() {
        let opts: Table = root_ufs
            .options
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        master.insert("root_ufs_options".into(), Value::Table(opts));
    }
    // The operator's user administers the cluster (mounts); the master's own OS user is not a
    // superuser here, since a pod's uid may map to the same name.
    master.insert(
        "superusers".into(),
        Value::Array(vec![names::OPERATOR_USER.into()]),
    );
    master.insert("process_user_is_superuser".into(), false.into());
    // Acknowledged metadata survives a power loss of the node, not only a kill of the pod.
    master.insert("metastore_sync".into(), true.into());
    root.insert("master".into(), Value::Table(master));
    let mut worker = Table::new();
    worker.insert("bind_host".into(), "0.0.0.0".into());
    worker.insert("rpc_port".into(), i64::from(worker_ports.rpc).into());
    worker.insert("web_port".into(), i64::from(worker_ports.web).into());
    let tier_tables: Vec<Value> = tiers
        .iter()
        .map(|t| {
            let mut tt = Table::new();
            tt.insert("alias".into(), t.medium.alias().into());
            tt.insert(
                "dirs".into(),
                Value::Array(vec![t.host_path.clone().into()]),
            );
            // Exact bytes: the config's size parser and Kubernetes' agree on integers.
            tt.insert(
                "quota".into(),
                Value::Array(vec![t.quota_bytes.to_string().into()]),
            );
            tt.insert("high_watermark".into(), t.high_watermark.into());
            tt.insert("low_watermark".into(), t.low_watermark.into());
            Value::Table(tt)
        })
        .collect();
    worker.insert("tiers".into(), Value::Array(tier_tables));
    root.insert("worker".into(), Value::Table(worker));

    for (key, raw) in overrides {
        apply_override(&mut root, key, raw)?;
    }
    let text = toml::to_string(&root)
        .map_err(|e| Invalid::spec_msg(format!("config: cannot render TOML: {e}")))?;
    let parsed: alluvium_common::Config = toml::from_str(&text)
        .map_err(|e| Invalid::spec_msg(format!("config: {}", one_line(&e.to_string()))))?;
    parsed
        .validate()
        .map_err(|e| Invalid::spec_msg(format!("config: {e}")))?;
    Ok(text)
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `worker.eviction_policy = "LRFU"`: the value is TOML when it parses as TOML, else a string.
fn apply_override(root: &mut Table, key: &str, raw: &str) -> Result<(), Invalid> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Invalid::spec_msg(format!(
            "config key '{key}' is not a dotted key like master.sync_interval"
        )));
    }
    if parts[0] == "security" {
        return Err(Invalid::spec_msg(format!(
            "config key '{key}': secrets do not belong in a ConfigMap; use security.clusterSecretRef"
        )));
    }
    if matches!(
        key,
        "master_address"
            | "worker.tiers"
            | "worker.rpc_port"
            | "worker.web_port"
            | "master.root_ufs"
            | "master.root_ufs_options"
            | "master.superusers"
    ) {
        return Err(Invalid::spec_msg(format!(
            "config key '{key}' is set by the operator (from the cluster's spec and its Tiers)"
        )));
    }
    let value = toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()));
    let mut table = root;
    for part in &parts[..parts.len() - 1] {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(Invalid::spec_msg(format!(
                    "config key '{key}': '{part}' is not a section"
                )))
            }
        };
    }
    table.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// A short stable hash of the config text, put on pod templates so they roll on change.
pub fn hash(text: &str) -> String {
    // FNV-1a: stable across releases (std's hasher is not), and plenty for change detection.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn config_map(c: &ValidatedCluster) -> ConfigMap {
    ConfigMap {
        metadata: super::meta(c, names::config_map(&c.name), "config"),
        data: Some(BTreeMap::from([(
            "alluvium.toml".to_string(),
            c.config_toml.clone(),
        )])),
        ..Default::default()
    }
}
