//! Alluvium's Kubernetes custom resources, group `alluvium.io`, version `v1alpha1`:
//!
//! - [`Tier`] (cluster-scoped): a storage medium on nodes (MEM/SSD/HDD), its hostPath and quota.
//! - [`Cluster`]: a master, workers over an ordered list of tiers, an optional proxy.
//! - [`Mount`]: a UFS URI mounted at a namespace path of a cluster, optionally with a PVC.
//!
//! The types are the single source of the CRD manifests: [`crds_yaml`] renders them, and the YAML
//! checked in under `crds/generated/` and `charts/alluvium/crds/` is compared with it by a test
//! (`ALLUVIUM_UPDATE_GOLDEN=1 cargo test -p alluvium-crds` rewrites the files).

// kube's `printcolumn(...)` attributes repeat `type_ = "string"`; clippy reads that as a
// duplicated attribute although each belongs to a different column.
#![allow(clippy::duplicated_attributes)]

mod cluster;
mod mount;
pub mod quantity;
mod tier;

pub use cluster::{
    Cluster, ClusterPhase, ClusterSpec, ClusterStatus, JournalSpec, MasterSpec, ProxySpec,
    PullPolicy, ResourceList, Resources, RootUfsSpec, SecretKeyRef, SecuritySpec, TierUsageStatus,
    WorkerPorts, WorkersSpec,
};
pub use mount::{
    Mount, MountOptions, MountPhase, MountSpec, MountStatus, PreloadStatus, PvcSpec, SecretRef,
};
pub use tier::{
    Medium, Tier, TierPhase, TierSpec, TierStatus, HOST_PATH_NOT_ROOT_RULE, HOST_PATH_NO_DOTS_RULE,
    MEM_UNDER_DEV_SHM_RULE,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use schemars::transform::{transform_subschemas, Transform};
use schemars::Schema;

/// API group of every Alluvium resource.
pub const GROUP: &str = "alluvium.io";
/// API version of every Alluvium resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Alluvium resource.
pub const API_VERSION: &str = "alluvium.io/v1alpha1";

/// Every CRD, in a stable order (tiers first: clusters refer to them), with only the schema
/// formats the API server knows (see [`KNOWN_FORMATS`]).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Tier::crd(), Cluster::crd(), Mount::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(s) = version.schema.as_mut() {
                if let Some(props) = s.open_api_v3_schema.take() {
                    s.open_api_v3_schema = Some(drop_unknown_formats(props));
                }
            }
        }
    }
    crds
}

/// The `format` values a Kubernetes API server knows in a CRD schema: the ones it validates (the
/// `format` field of `JSONSchemaProps` in the apiextensions.k8s.io/v1 reference) and the OpenAPI
/// numeric ones. Anything else (schemars writes `uint64`, `uint32`, `uint8` for unsigned Rust
/// integers) makes the API server warn "unrecognized format" on every apply.
pub const KNOWN_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

/// A schemars transform removing every `format` the API server does not know. The `minimum: 0`
/// schemars writes beside an unsigned format stays, so nothing is lost but the warning.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropUnknownFormats;

impl Transform for DropUnknownFormats {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(obj) = schema.as_object_mut() {
            let unknown = obj
                .get("format")
                .and_then(|f| f.as_str())
                .is_some_and(|f| !KNOWN_FORMATS.contains(&f));
            if unknown {
                obj.remove("format");
            }
        }
        // Recurses through the keywords that hold schemas (properties, items, allOf, ...), so a
        // property that happens to be named `format` is never mistaken for the keyword.
        transform_subschemas(self, schema);
    }
}

/// Applies [`DropUnknownFormats`] to a CRD's (already derived) schema.
fn drop_unknown_formats(props: JSONSchemaProps) -> JSONSchemaProps {
    // Both sides are plain JSON Schema, so the round trip through JSON cannot fail for a schema
    // kube derived; if it ever did, keeping the original is better than losing the schema.
    let Ok(value) = serde_json::to_value(&props) else {
        return props;
    };
    let Ok(mut schema) = Schema::try_from(value) else {
        return props;
    };
    DropUnknownFormats.transform(&mut schema);
    serde_json::from_value(schema.to_value()).unwrap_or(props)
}

/// One CRD as YAML (a single document, no leading `---`).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    // A CRD built by kube's derive always serializes: it is plain strings, maps and numbers.
    serde_yaml::to_string(crd).expect("a derived CRD serializes to YAML")
}

/// All CRDs as one multi-document YAML stream, what `alluvium crds` prints.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|c| format!("---\n{}", crd_yaml(c)))
        .collect()
}

/// File name of a CRD's YAML in `crds/generated/` and the chart's `crds/`: `<plural>.alluvium.io.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_crds_with_status_and_printer_columns() {
        let crds = crds();
        let names: Vec<_> = crds
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "tiers.alluvium.io",
                "clusters.alluvium.io",
                "mounts.alluvium.io"
            ]
        );
        for crd in &crds {
            let v = &crd.spec.versions[0];
            assert_eq!(v.name, VERSION);
            assert!(v
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some());
            assert!(!v
                .additional_printer_columns
                .as_deref()
                .unwrap_or_default()
                .is_empty());
            assert!(!crd
                .spec
                .names
                .short_names
                .as_deref()
                .unwrap_or_default()
                .is_empty());
        }
        assert_eq!(crds[0].spec.scope, "Cluster");
        assert_eq!(crds[1].spec.scope, "Namespaced");
    }

    #[test]
    fn yaml_stream_has_three_documents() {
        let y = crds_yaml();
        assert_eq!(y.matches("---\n").count(), 3);
        assert!(y.contains("kind: CustomResourceDefinition"));
    }
}
