//! Bad specs are refused with a reason and a message naming the field, and nothing is built.

use std::collections::BTreeMap;

use alluvium_crds::{Cluster, Mount, Tier};
use alluvium_operator::validate::{validate_cluster, validate_mount, validate_tier};
use serde_json::{json, Value};

fn tier(name: &str, spec: Value) -> Tier {
    serde_json::from_value(json!({
        "apiVersion": "alluvium.io/v1alpha1", "kind": "Tier",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

fn tiers() -> BTreeMap<String, Tier> {
    BTreeMap::from([
        (
            "mem".into(),
            tier(
                "mem",
                json!({"medium": "MEM", "hostPath": "/dev/shm/a", "quota": "2Gi"}),
            ),
        ),
        (
            "ssd".into(),
            tier(
                "ssd",
                json!({"medium": "SSD", "hostPath": "/mnt/ssd", "quota": "100Gi"}),
            ),
        ),
        (
            "ssd2".into(),
            tier(
                "ssd2",
                json!({"medium": "SSD", "hostPath": "/mnt/ssd2", "quota": "100Gi"}),
            ),
        ),
        (
            "zoned".into(),
            tier(
                "zoned",
                json!({"medium": "HDD", "hostPath": "/mnt/hdd", "quota": "1Ti",
            "nodeSelector": {"zone": "b"}}),
            ),
        ),
    ])
}

fn cluster(patch: Value) -> Cluster {
    let mut v = json!({
        "apiVersion": "alluvium.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": "c", "namespace": "ns", "uid": "u"},
        "spec": {"workers": {"tiers": ["mem", "ssd"]},
                 "rootUfs": {"uri": "s3://root/", "options": {"endpoint": "http://s3:9000"}}}
    });
    merge(&mut v["spec"], patch);
    serde_json::from_value(v).unwrap()
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

fn refused(patch: Value) -> (String, String) {
    let e = validate_cluster(&cluster(patch), &tiers()).expect_err("must be refused");
    (e.reason.to_string(), e.message)
}

#[test]
fn a_good_cluster_passes() {
    let v = validate_cluster(&cluster(json!({})), &tiers()).unwrap();
    assert_eq!(v.tiers.len(), 2);
    // 2Gi MEM + default 1Gi process limit.
    assert_eq!(v.worker_memory_limit, 3 << 30);
}

#[test]
fn bad_cluster_specs_are_refused_with_the_field_and_reason() {
    let cases = [
        (
            json!({"workers": {"tiers": ["nope"]}}),
            "TierNotFound",
            "Tier 'nope'",
        ),
        (
            json!({"workers": {"tiers": []}}),
            "InvalidSpec",
            "workers.tiers is empty",
        ),
        (
            json!({"workers": {"tiers": ["ssd", "mem"]}}),
            "InvalidSpec",
            "fastest first",
        ),
        (
            json!({"workers": {"tiers": ["ssd", "ssd2"]}}),
            "InvalidSpec",
            "one tier per medium",
        ),
        (
            json!({"master": {"replicas": 3}}),
            "InvalidSpec",
            "master.replicas is 3",
        ),
        (
            json!({"master": {"journal": {"size": "10GB"}}}),
            "InvalidSpec",
            "master.journal.size",
        ),
        (
            json!({"master": {"journal": {"size": "1Mi"}}}),
            "InvalidSpec",
            "below 64Mi",
        ),
        (json!({"image": " "}), "InvalidSpec", "image is empty"),
        (
            json!({"workers": {"maxMemory": "2Gi"}}),
            "MemoryDoesNotFit",
            "memory limit of 3Gi (MEM tier quota 2Gi + process 1Gi)",
        ),
        // 2G (decimal) is less than 2Gi: the units are never confused.
        (
            json!({"workers": {"maxMemory": "3G"}}),
            "MemoryDoesNotFit",
            "workers.maxMemory is 3G",
        ),
        (
            json!({"workers": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}}}),
            "InvalidSpec",
            "memory request 2Gi is above the limit 1Gi",
        ),
        (
            json!({"config": {"master.no_such_key": "1"}}),
            "InvalidSpec",
            "no_such_key",
        ),
        (
            json!({"config": {"worker.eviction_policy": "FIFO"}}),
            "InvalidSpec",
            "FIFO",
        ),
        (
            json!({"config": {"security.cluster_secret": "x"}}),
            "InvalidSpec",
            "clusterSecretRef",
        ),
        (
            json!({"config": {"worker.tiers": "[]"}}),
            "InvalidSpec",
            "set by the operator",
        ),
        (
            json!({"workers": {"tiers": ["mem", "zoned"], "nodeSelector": {"zone": "a"}}}),
            "InvalidSpec",
            "conflicts",
        ),
        // The root UFS must be storage every master and worker reaches.
        (
            json!({"rootUfs": {"uri": "file:///journal/underFSStorage"}}),
            "RootUfsNotShared",
            "workers and the CSI driver cannot reach",
        ),
        (
            json!({"rootUfs": {"uri": "bucket"}}),
            "InvalidSpec",
            "rootUfs.uri 'bucket' is not a URI",
        ),
        (
            json!({"rootUfs": {"options": {"secret_access_key": "x"}}}),
            "InvalidSpec",
            "rootUfs.credentialsSecretRef",
        ),
        (
            json!({"config": {"master.root_ufs": "\"s3://other/\""}}),
            "InvalidSpec",
            "set by the operator",
        ),
        (
            json!({"security": {"clusterSecretRef": {"name": "s", "key": "token"}}}),
            "InvalidSpec",
            "must be 'clusterSecret'",
        ),
        (
            json!({"workers": {"ports": {"rpc": 31000, "web": 31000}}}),
            "InvalidSpec",
            "workers.ports",
        ),
    ];
    for (patch, reason, needle) in cases {
        let (r, m) = refused(patch.clone());
        assert_eq!(r, reason, "{patch}: {m}");
        assert!(m.contains(needle), "{patch}: '{m}' lacks '{needle}'");
    }
}

#[test]
fn without_a_cluster_secret_the_operator_makes_one_and_ports_are_configurable() {
    let v = validate_cluster(
        &cluster(json!({"workers": {"ports": {"rpc": 31999}}})),
        &tiers(),
    )
    .unwrap();
    assert!(v.managed_secret);
    assert_eq!(v.cluster_secret.name, "c-cluster-secret");
    assert_eq!(v.cluster_secret.key, "clusterSecret");
    assert_eq!((v.worker_ports.rpc, v.worker_ports.web), (31999, 30000));
    assert!(
        v.config_toml.contains("rpc_port = 31999"),
        "{}",
        v.config_toml
    );
    assert!(
        v.config_toml.contains("root_ufs = \"s3://root/\""),
        "{}",
        v.config_toml
    );
    assert!(
        v.config_toml.contains("process_user_is_superuser = false"),
        "{}",
        v.config_toml
    );
}

/// Without `workers.maxMemory`, the MEM tier is checked against what the nodes can allocate:
/// a 64Ti tier is refused instead of asking for 67,109,376Mi.
#[test]
fn a_mem_tier_without_a_cap_must_fit_the_nodes() {
    use alluvium_operator::validate::check_fits_nodes;
    let v = validate_cluster(&cluster(json!({})), &tiers()).unwrap();
    assert!(check_fits_nodes(&v, Some(24 << 30)).is_ok());
    let e = check_fits_nodes(&v, Some(2 << 30)).unwrap_err();
    assert_eq!(e.reason, "MemoryDoesNotFit");
    assert!(
        e.message
            .contains("smallest matching node can allocate 2Gi"),
        "{}",
        e.message
    );
    assert!(
        check_fits_nodes(&v, None).is_ok(),
        "no node matches: reported as NoWorkerNodes"
    );
}

#[test]
fn memory_fits_exactly_at_the_cap() {
    assert!(validate_cluster(&cluster(json!({"workers": {"maxMemory": "3Gi"}})), &tiers()).is_ok());
}

#[test]
fn bad_tiers_are_refused() {
    let cases = [
        (
            json!({"medium": "MEM", "hostPath": "/var/ram", "quota": "1Gi"}),
            "under /dev/shm",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/../etc", "quota": "1Gi"}),
            "without '.' or '..'",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/./x", "quota": "1Gi"}),
            "without '.' or '..'",
        ),
        (
            json!({"medium": "MEM", "hostPath": "/dev/shm/", "quota": "1Gi"}),
            "under /dev/shm",
        ),
        (
            json!({"medium": "MEM", "hostPath": "/dev/shm/.", "quota": "1Gi"}),
            "without '.' or '..'",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "0.5"}),
            "has no unit",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "8"}),
            "has no unit",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "1.1Ki"}),
            "not a whole number of bytes",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "0"}),
            "has no unit",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "0Gi"}),
            "more than 0",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "1GB"}),
            "not a size quantity",
        ),
        (
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": "1Gi", "lowWatermark": 0.9, "highWatermark": 0.8}),
            "watermarks",
        ),
    ];
    for (spec, needle) in cases {
        let e = validate_tier(&tier("t", spec.clone())).expect_err("refused");
        assert!(e.message.starts_with("tier t:"), "{}", e.message);
        assert!(e.message.contains(needle), "{spec}: {}", e.message);
    }
    // Whole bytes with a unit, fractions included, stay fine.
    for (quota, bytes) in [("1.5Gi", 3u64 << 29), ("0.5Ki", 512), ("8G", 8_000_000_000)] {
        let t = tier(
            "t",
            json!({"medium": "SSD", "hostPath": "/mnt/x", "quota": quota}),
        );
        assert_eq!(validate_tier(&t).unwrap().quota_bytes, bytes, "{quota}");
    }
}

/// Evaluates the few CEL shapes the Tier schema uses on hostPath (`[!]self.matches('re')`,
/// `self.medium != 'MEM' || self.hostPath.matches('re')` or `.startsWith('p')`); RE2 and Rust's
/// regex agree on these plain expressions. Watermark rules are not about paths: `None`.
fn eval_path_rule(rule: &str, medium: &str, path: &str) -> Option<bool> {
    let call = regex::Regex::new(r"(matches|startsWith)\('([^']*)'\)$").unwrap();
    if rule.contains("Watermark") {
        return None;
    }
    let c = call
        .captures(rule)
        .unwrap_or_else(|| panic!("unknown rule shape, teach this test: {rule}"));
    let hit = match &c[1] {
        "matches" => regex::Regex::new(&c[2]).unwrap().is_match(path),
        _ => path.starts_with(&c[2]),
    };
    Some(
        match rule.split_once(c.get(0).unwrap().as_str()).unwrap().0 {
            "self." => hit,
            "!self." => !hit,
            "self.medium != 'MEM' || self.hostPath." => medium != "MEM" || hit,
            other => panic!("unknown rule shape, teach this test: {other}"),
        },
    )
}

#[test]
fn tier_schema_refuses_the_host_paths_validate_tier_refuses() {
    let crd = serde_json::to_value(&alluvium_crds::crds()[0]).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let host = &spec["properties"]["hostPath"];
    let pattern = regex::Regex::new(host["pattern"].as_str().unwrap()).unwrap();
    let (min, max) = (
        host["minLength"].as_u64().unwrap() as usize,
        host["maxLength"].as_u64().unwrap() as usize,
    );
    let rules = |schema: &Value| -> Vec<String> {
        schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["rule"].as_str().unwrap().to_string())
            .collect()
    };
    let (host_rules, spec_rules) = (rules(host), rules(spec));
    let paths = [
        "/",
        "//",
        "/a",
        "/a/",
        "/mnt/ssd",
        "/mnt/./x",
        "/mnt/../etc",
        "/mnt/.x",
        "/mnt/x..",
        "/mnt/..x/y",
        "/..",
        "/.",
        "relative",
        "/dev/shm",
        "/dev/shm/",
        "/dev/shm//",
        "/dev/shm/x",
        "/dev/shm/x/",
        "/dev/shm//x",
        "/dev/shm/.",
        "/dev/shm/..",
        "/dev/shm/./x",
        "/dev/shmx",
        "/dev/shmx/y",
        "/var/ram",
        "/dev/shm/alluvium/mem",
    ];
    let mut disagree = Vec::new();
    for medium in ["MEM", "SSD"] {
        for path in paths {
            let schema_ok = pattern.is_match(path)
                && (min..=max).contains(&path.len())
                && host_rules
                    .iter()
                    .all(|r| eval_path_rule(r, medium, path) != Some(false))
                && spec_rules
                    .iter()
                    .all(|r| eval_path_rule(r, medium, path) != Some(false));
            let t = tier(
                "t",
                json!({"medium": medium, "hostPath": path, "quota": "1Gi"}),
            );
            let operator_ok = validate_tier(&t).is_ok();
            if schema_ok != operator_ok {
                disagree.push(format!(
                    "{medium} {path}: schema {schema_ok}, operator {operator_ok}"
                ));
            }
        }
    }
    assert!(disagree.is_empty(), "{disagree:#?}");
}

fn mount(spec: Value) -> Mount {
    serde_json::from_value(json!({
        "apiVersion": "alluvium.io/v1alpha1", "kind": "Mount",
        "metadata": {"name": "m", "namespace": "ns"}, "spec": spec
    }))
    .unwrap()
}

#[test]
fn bad_mounts_are_refused() {
    let cases = [
        (
            json!({"cluster": "c", "path": "/", "ufs": "s3://b/"}),
            "absolute namespace path",
        ),
        (
            json!({"cluster": "c", "path": "/a/../b", "ufs": "s3://b/"}),
            "absolute namespace path",
        ),
        (
            json!({"cluster": "c", "path": "/a", "ufs": "bucket"}),
            "not a URI",
        ),
        (
            json!({"cluster": "c", "path": "/a", "ufs": "s3://b/", "options": {"syncInterval": "soon"}}),
            "syncInterval",
        ),
        (
            json!({"cluster": "c", "path": "/a", "ufs": "s3://b/", "pvc": {"create": true, "capacity": "big"}}),
            "pvc.capacity",
        ),
    ];
    for (spec, needle) in cases {
        let e = validate_mount(&mount(spec.clone())).expect_err("refused");
        assert!(e.message.contains(needle), "{spec}: {}", e.message);
    }
    let ok = validate_mount(&mount(
        json!({"cluster": "c", "path": "/a", "ufs": "s3://b/",
        "pvc": {"create": true}}),
    ))
    .unwrap();
    let pvc = ok.pvc.unwrap();
    assert_eq!(
        (pvc.claim_name.as_str(), pvc.pv_name.as_str()),
        ("m", "ns-m")
    );
}
