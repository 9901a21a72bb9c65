//! Golden tests: every object the operator builds for the example resources (`examples/`) and the
//! test fixtures, compared with the YAML checked in under `tests/golden/`. The Python tests in
//! `e2e/k8s/` validate those same files against the Kubernetes OpenAPI schemas.
//!
//! `ALLUVIUM_UPDATE_GOLDEN=1 cargo test -p alluvium-operator --test golden` rewrites them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alluvium_crds::{Cluster, Mount, Tier};
use alluvium_operator::build::{self, mount::ClusterInfo};
use alluvium_operator::names;
use alluvium_operator::validate::{validate_cluster, validate_mount};
use serde::de::DeserializeOwned;
use serde::Deserialize;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every document of a YAML file whose `kind` is `kind`, with the namespace, uid and generation
/// the API server would have set.
fn load<T: DeserializeOwned>(file: &Path, kind: &str) -> Vec<T> {
    let text = std::fs::read_to_string(file).expect("read example");
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v = serde_yaml::Value::deserialize(doc).expect("parse YAML");
        if v.get("kind").and_then(|k| k.as_str()) != Some(kind) {
            continue;
        }
        let meta = v.get_mut("metadata").expect("metadata");
        let name = meta
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or("")
            .to_string();
        meta["uid"] = format!("00000000-0000-0000-0000-{:0>12}", name.len()).into();
        meta["generation"] = 1.into();
        if kind != "Tier" && meta.get("namespace").is_none() {
            meta["namespace"] = "default".into();
        }
        out.push(serde_yaml::from_value(v).expect("example matches the CRD types"));
    }
    out
}

fn yaml<T: serde::Serialize>(obj: &T) -> String {
    serde_yaml::to_string(obj).expect("serialize")
}

/// Every built object: file name under tests/golden/ → YAML.
fn built_objects() -> BTreeMap<String, String> {
    let ex = repo().join("examples");
    let tiers: BTreeMap<String, Tier> = load::<Tier>(&ex.join("tiers.yaml"), "Tier")
        .into_iter()
        .map(|t| (t.metadata.name.clone().unwrap_or_default(), t))
        .collect();
    let mut clusters = load::<Cluster>(&ex.join("cluster.yaml"), "Cluster");
    clusters.extend(load::<Cluster>(
        &repo().join("operator/tests/fixtures/cluster-custom.yaml"),
        "Cluster",
    ));
    let mut out = BTreeMap::new();
    for c in &clusters {
        let v = validate_cluster(c, &tiers).expect("example cluster is valid");
        let objs = build::cluster_objects(&v);
        let n = &v.name;
        out.insert(format!("{n}/configmap.yaml"), yaml(&objs.config_map));
        out.insert(
            format!("{n}/service-master-headless.yaml"),
            yaml(&objs.master_headless),
        );
        out.insert(
            format!("{n}/service-master.yaml"),
            yaml(&objs.master_service),
        );
        out.insert(format!("{n}/statefulset-master.yaml"), yaml(&objs.master));
        out.insert(format!("{n}/daemonset-worker.yaml"), yaml(&objs.workers));
        if let Some((d, s)) = &objs.proxy {
            out.insert(format!("{n}/deployment-proxy.yaml"), yaml(d));
            out.insert(format!("{n}/service-proxy.yaml"), yaml(s));
        }
    }
    for m in load::<Mount>(&ex.join("mount.yaml"), "Mount") {
        let v = validate_mount(&m).expect("example mount is valid");
        let cluster = clusters
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(v.cluster.as_str()))
            .expect("mount's cluster is an example");
        let info = ClusterInfo {
            image: cluster.spec.image.clone(),
            pull_policy: cluster.spec.image_pull_policy,
            master_endpoint: names::master_endpoint(&v.cluster, &v.namespace),
            secret: alluvium_operator::controller::cluster::cluster_secret_ref(cluster),
        };
        let n = format!("mount-{}", v.name);
        if let Some(p) = &v.pvc {
            out.insert(
                format!("{n}/persistentvolume.yaml"),
                yaml(&build::mount::persistent_volume(&v, p, &info)),
            );
            out.insert(
                format!("{n}/persistentvolumeclaim.yaml"),
                yaml(&build::mount::persistent_volume_claim(&v, p)),
            );
        }
        out.insert(
            format!("{n}/job-preload.yaml"),
            yaml(&build::mount::preload_job(&v, &info, 1)),
        );
    }
    out
}

#[test]
fn built_objects_match_golden_files() {
    let dir = repo().join("operator/tests/golden");
    let update = std::env::var("ALLUVIUM_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let objects = built_objects();
    let mut stale = Vec::new();
    for (file, text) in &objects {
        let path = dir.join(file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if update {
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, text).expect("write golden");
            } else {
                stale.push(file.clone());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "built objects differ from tests/golden (review, then ALLUVIUM_UPDATE_GOLDEN=1 cargo test -p alluvium-operator --test golden): {stale:?}"
    );
}

#[test]
fn examples_deserialize_into_the_crd_types() {
    let ex = repo().join("examples");
    assert_eq!(load::<Tier>(&ex.join("tiers.yaml"), "Tier").len(), 3);
    assert_eq!(
        load::<Cluster>(&ex.join("cluster.yaml"), "Cluster").len(),
        1
    );
    assert_eq!(load::<Mount>(&ex.join("mount.yaml"), "Mount").len(), 1);
}

#[test]
fn worker_memory_limit_holds_the_mem_tier() {
    let ex = repo().join("examples");
    let tiers: BTreeMap<String, Tier> = load::<Tier>(&ex.join("tiers.yaml"), "Tier")
        .into_iter()
        .map(|t| (t.metadata.name.clone().unwrap_or_default(), t))
        .collect();
    let c = &load::<Cluster>(&ex.join("cluster.yaml"), "Cluster")[0];
    let v = validate_cluster(c, &tiers).unwrap();
    // 1Gi MEM quota + 512Mi process limit; request 1Gi + 256Mi.
    assert_eq!(v.worker_memory_limit, (1 << 30) + (512 << 20));
    let r = &v.worker_resources;
    assert_eq!(r.limits.as_ref().unwrap()["memory"].0, "1536Mi");
    assert_eq!(r.requests.as_ref().unwrap()["memory"].0, "1280Mi");
}

#[test]
fn config_file_loads_as_alluvium_config() {
    for (file, text) in built_objects() {
        if !file.ends_with("configmap.yaml") {
            continue;
        }
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_yaml::from_str(&text).unwrap();
        let toml_text = &cm.data.unwrap()["alluvium.toml"];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alluvium.toml");
        std::fs::write(&path, toml_text).unwrap();
        let cfg = alluvium_common::Config::load_with_env(Some(&path), Vec::new())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(cfg.master.rpc_port, 19998);
        assert!(cfg.master_address.ends_with(".svc:19998"));
    }
}
