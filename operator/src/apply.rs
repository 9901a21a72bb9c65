//! Server-side apply in one place, under one field manager, forcing ownership of the fields the
//! operator sets (it is the only writer of the objects it owns).

use std::fmt::Debug;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::names::FIELD_MANAGER;

fn params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Applies a namespaced object; returns what the API server holds afterwards (with status).
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
    api.patch(&obj.name_any(), &params(), &Patch::Apply(obj))
        .await
}

/// Applies a cluster-scoped object.
pub async fn apply_cluster<K>(client: &Client, obj: &K) -> kube::Result<K>
where
    K: Resource<DynamicType = (), Scope = ClusterResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    api.patch(&obj.name_any(), &params(), &Patch::Apply(obj))
        .await
}
