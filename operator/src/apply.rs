//! Writes to the API server in one place, under one field manager: server-side apply of owned
//! objects (forcing ownership of the fields the operator sets; it is their only writer), and
//! merge patches of status and finalizers.
//!
//! An owned object is applied only when what the operator would write differs from what it
//! wrote last (a hash in an annotation), so a reconcile at rest costs reads, never writes.

use std::fmt::Debug;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::names::{APPLIED_HASH_ANNOTATION, FIELD_MANAGER};

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Parameters of the operator's merge patches (status, finalizers): its own field manager, so
/// `managedFields` name it instead of "unknown".
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// A stable hash of an object as the operator would apply it.
pub fn desired_hash<K: Serialize>(obj: &K) -> String {
    let text = serde_json::to_string(obj).unwrap_or_default();
    crate::build::config::hash(&text)
}

/// `obj` with the annotation carrying its own hash.
fn stamped<K: Resource + Serialize + Clone>(obj: &K) -> (K, String) {
    let hash = desired_hash(obj);
    let mut out = obj.clone();
    out.annotations_mut()
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone());
    (out, hash)
}

fn up_to_date<K: Resource>(live: &K, hash: &str) -> bool {
    live.annotations()
        .get(APPLIED_HASH_ANNOTATION)
        .map(String::as_str)
        == Some(hash)
}

/// Applies a namespaced object unless the live one already carries what the operator would
/// write; returns the live object (with status) either way.
pub async fn apply_namespaced<K>(client: &Client, obj: &K) -> kube::Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    ensure(&api, obj).await
}

/// Applies a cluster-scoped object unless it is up to date.
pub async fn apply_cluster<K>(client: &Client, obj: &K) -> kube::Result<K>
where
    K: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    ensure(&api, obj).await
}

async fn ensure<K>(api: &Api<K>, obj: &K) -> kube::Result<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let (desired, hash) = stamped(obj);
    if let Some(live) = api.get_opt(&obj.name_any()).await? {
        if up_to_date(&live, &hash) {
            return Ok(live);
        }
    }
    api.patch(&obj.name_any(), &apply_params(), &Patch::Apply(&desired))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(value: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("n".into()),
                ..Default::default()
            },
            data: Some([("k".to_string(), value.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_stamp_matches_only_the_same_desired_object() {
        let (live, hash) = stamped(&cm("a"));
        assert!(up_to_date(&live, &hash));
        let (_, other) = stamped(&cm("b"));
        assert!(!up_to_date(&live, &other));
        assert!(
            !up_to_date(&cm("a"), &hash),
            "an object without the stamp is applied"
        );
    }
}
