//! Object metadata S3 needs and a file system does not keep (ETag, content type, `x-amz-meta-*`),
//! stored as a small JSON file per object under `/.alluvium_s3/meta/<bucket>/<key>` by the
//! gateway's own identity. Each record names the file id it describes, so a record left behind by
//! a change through another interface (a rename, an overwrite by `alluvium fs`) is ignored.

use std::collections::BTreeMap;

use alluvium_client::{CreateFileOptions, DeleteOptions, FileSystem, OpenFileOptions};
use alluvium_common::{ErrorCode, Result};
use alluvium_proto::FileInfo;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub file_id: u64,
    /// Without quotes.
    pub etag: String,
    pub content_type: Option<String>,
    /// `x-amz-meta-*` headers, names lower-case without the prefix.
    pub user: BTreeMap<String, String>,
}

/// Records larger than this are not read (they are never written that large).
const MAX_RECORD: usize = 64 * 1024;

pub fn meta_path(bucket: &str, key: &str) -> String {
    format!(
        "{}/meta/{bucket}/{}",
        crate::STATE_DIR,
        key.trim_end_matches('/')
    )
}

/// A stable ETag for a file the S3 gateway did not write: it changes whenever the file does.
pub fn synthetic_etag(info: &FileInfo) -> String {
    let mut h = Md5::new();
    h.update(info.file_id.to_le_bytes());
    h.update(info.length.to_le_bytes());
    h.update(info.last_modification_time_ms.to_le_bytes());
    hex::encode(h.finalize())
}

pub async fn load(
    service: &FileSystem,
    bucket: &str,
    key: &str,
    info: &FileInfo,
) -> Option<ObjectMeta> {
    let path = meta_path(bucket, key);
    let mut input = service
        .open_file(&path, OpenFileOptions::default())
        .await
        .ok()?;
    if input.len() as usize > MAX_RECORD {
        return None;
    }
    let mut buf = vec![0u8; input.len() as usize];
    let n = input.read_at(0, &mut buf).await.ok()?;
    let _ = input.close().await;
    let meta: ObjectMeta = serde_json::from_slice(&buf[..n]).ok()?;
    (meta.file_id == info.file_id).then_some(meta)
}

/// The metadata of an object, falling back to a synthetic ETag.
pub async fn load_or_default(
    service: &FileSystem,
    bucket: &str,
    key: &str,
    info: &FileInfo,
) -> ObjectMeta {
    match load(service, bucket, key, info).await {
        Some(m) => m,
        None => ObjectMeta {
            file_id: info.file_id,
            etag: synthetic_etag(info),
            ..Default::default()
        },
    }
}

pub async fn store(service: &FileSystem, bucket: &str, key: &str, meta: &ObjectMeta) -> Result<()> {
    let path = meta_path(bucket, key);
    let body = serde_json::to_vec(meta).unwrap_or_default();
    let mut out = service
        .create_file(
            &path,
            CreateFileOptions {
                overwrite: true,
                recursive: true,
                mode: 0o600,
                ..Default::default()
            },
        )
        .await?;
    out.write(&body).await?;
    out.close().await?;
    Ok(())
}

pub async fn remove(service: &FileSystem, path: &str) {
    match service
        .delete(
            path,
            DeleteOptions {
                recursive: true,
                alluvium_only: false,
            },
        )
        .await
    {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => tracing::warn!(%path, error = %e, "could not remove S3 metadata"),
    }
}
