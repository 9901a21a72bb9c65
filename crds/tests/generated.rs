//! The CRD YAML checked in under `crds/generated/` and `charts/alluvium/crds/` is generated from
//! the types. This test fails when it is stale; `ALLUVIUM_UPDATE_GOLDEN=1 cargo test -p
//! alluvium-crds` rewrites it.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const HEADER: &str = "# Generated from the Rust types in crds/src by `ALLUVIUM_UPDATE_GOLDEN=1 cargo test -p alluvium-crds`.\n# Do not edit by hand.\n";

#[test]
fn checked_in_crd_yaml_is_current() {
    let update = std::env::var("ALLUVIUM_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let dirs = [
        repo().join("crds/generated"),
        repo().join("charts/alluvium/crds"),
    ];
    let mut stale = Vec::new();
    for crd in alluvium_crds::crds() {
        let want = format!("{HEADER}{}", alluvium_crds::crd_yaml(&crd));
        for dir in &dirs {
            let file = dir.join(alluvium_crds::crd_file_name(&crd));
            let have = std::fs::read_to_string(&file).unwrap_or_default();
            if have != want {
                if update {
                    std::fs::create_dir_all(dir).expect("create CRD dir");
                    std::fs::write(&file, &want).expect("write CRD YAML");
                } else {
                    stale.push(file.display().to_string());
                }
            }
        }
    }
    let all = format!("{HEADER}{}", alluvium_crds::crds_yaml());
    let file = repo().join("crds/generated/all.yaml");
    if std::fs::read_to_string(&file).unwrap_or_default() != all {
        if update {
            std::fs::write(&file, &all).expect("write all.yaml");
        } else {
            stale.push(file.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD YAML (run ALLUVIUM_UPDATE_GOLDEN=1 cargo test -p alluvium-crds): {stale:?}"
    );
}
