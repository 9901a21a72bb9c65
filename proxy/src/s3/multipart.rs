//! Multipart uploads. Parts are staged by the gateway's own identity under
//! `/.alluvium_s3/uploads/<upload-id>/` (hidden from listings) as files named
//! `<part number, 5 digits>-<md5 hex>`, so the part list needs no other record; `upload.json`
//! there says which bucket, key and user the upload belongs to. Completion streams the parts in
//! order into a temporary file created as the user, then swaps it into place.

use std::collections::BTreeMap;

use alluvium_client::{
    CreateDirectoryOptions, CreateFileOptions, DeleteOptions, FileSystem, OpenFileOptions,
};
use alluvium_common::ErrorCode;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::error::{S3Error, S3Result};
use super::meta::{self, ObjectMeta};
use super::objects::{
    commit, create_object_file, read_small_body, temp_beside, user_meta, write_body,
};
use super::xml::escape;
use super::{empty, xml_response, Request};
use crate::server::GatewayState;

const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: u64 = 5 << 20;
const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Upload {
    bucket: String,
    key: String,
    user: String,
    content_type: Option<String>,
    meta: BTreeMap<String, String>,
    initiated_ms: i64,
}

fn upload_dir(id: &str) -> String {
    format!("{}/uploads/{id}", crate::STATE_DIR)
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit())
}

async fn load_upload(service: &FileSystem, id: &str) -> Option<Upload> {
    if !valid_id(id) {
        return None;
    }
    let mut input = service
        .open_file(
            &format!("{}/upload.json", upload_dir(id)),
            OpenFileOptions::default(),
        )
        .await
        .ok()?;
    let mut buf = vec![0u8; (input.len() as usize).min(256 * 1024)];
    let n = input.read_at(0, &mut buf).await.ok()?;
    let _ = input.close().await;
    serde_json::from_slice(&buf[..n]).ok()
}

/// The upload named by the request, if it belongs to this bucket, key and user.
async fn upload_of(st: &GatewayState, req: &Request) -> S3Result<(String, Upload)> {
    let id = req.param("uploadId").unwrap_or("").to_string();
    match load_upload(st.fss.service(), &id).await {
        Some(u) if u.bucket == req.bucket && u.key == req.key && u.user == req.user => Ok((id, u)),
        _ => Err(S3Error::no_such_upload(&id)),
    }
}

/// The staged parts: (number, md5 hex, size, path), sorted by number.
async fn parts(service: &FileSystem, id: &str) -> S3Result<Vec<(u32, String, u64, String)>> {
    let mut out = Vec::new();
    for i in service.list_status(&upload_dir(id), false).await? {
        let Some((n, md5)) = i.name.split_once('-') else {
            continue;
        };
        let (Ok(n), true) = (n.parse::<u32>(), md5.len() == 32) else {
            continue;
        };
        out.push((n, md5.to_string(), i.length, i.path.clone()));
    }
    out.sort();
    Ok(out)
}

pub async fn create(st: &GatewayState, fs: &FileSystem, req: &Request) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    if req.key.ends_with('/') {
        return Err(S3Error::invalid_request(
            "a key ending in '/' is a folder and cannot hold data",
        ));
    }
    let id = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let service = st.fss.service();
    service
        .create_directory(
            &upload_dir(&id),
            CreateDirectoryOptions {
                recursive: true,
                allow_exists: false,
                mode: 0o700,
            },
        )
        .await?;
    let u = Upload {
        bucket: req.bucket.clone(),
        key: req.key.clone(),
        user: req.user.clone(),
        content_type: req.header("content-type").map(str::to_string),
        meta: user_meta(req),
        initiated_ms: crate::time::now_ms(),
    };
    let mut out = service
        .create_file(
            &format!("{}/upload.json", upload_dir(&id)),
            CreateFileOptions {
                mode: 0o600,
                ..Default::default()
            },
        )
        .await?;
    out.write(&serde_json::to_vec(&u).unwrap_or_default())
        .await?;
    out.close().await?;
    tracing::info!(bucket = %req.bucket, key = %req.key, upload = %id, "multipart upload started");
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "<InitiateMultipartUploadResult {NS}><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
            escape(&req.bucket),
            escape(&req.key)
        ),
    ))
}

pub async fn upload_part(
    st: &GatewayState,
    _fs: &FileSystem,
    req: &Request,
    body: Body,
) -> S3Result<Response> {
    if req.headers.contains_key("x-amz-copy-source") {
        return Err(S3Error::not_implemented(
            "UploadPartCopy is not supported; copy objects with CopyObject",
        ));
    }
    let number: u32 = req
        .param("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })?;
    let (id, _) = upload_of(st, req).await?;
    let service = st.fss.service();
    let dir = upload_dir(&id);
    let tmp = format!(
        "{dir}/.alluvium-tmp-{number}-{:016x}",
        rand::random::<u64>()
    );
    let w = write_body(st, service, &tmp, req, body).await?;
    for (n, _, _, path) in parts(service, &id).await? {
        if n == number {
            let _ = service.delete(&path, DeleteOptions::default()).await;
        }
    }
    let final_path = format!("{dir}/{number:05}-{}", w.md5_hex);
    if let Err(e) = service.rename(&tmp, &final_path).await {
        let _ = service.delete(&tmp, DeleteOptions::default()).await;
        return Err(e.into());
    }
    let mut r = empty(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", w.md5_hex)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

pub async fn list_parts(st: &GatewayState, _fs: &FileSystem, req: &Request) -> S3Result<Response> {
    let (id, _) = upload_of(st, req).await?;
    let marker: u32 = req
        .param("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let max: usize = req
        .param("max-parts")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let all: Vec<_> = parts(st.fss.service(), &id)
        .await?
        .into_iter()
        .filter(|p| p.0 > marker)
        .collect();
    let truncated = all.len() > max;
    let page: Vec<_> = all.into_iter().take(max).collect();
    let mut out = format!(
        "<ListPartsResult {NS}><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId><PartNumberMarker>{marker}</PartNumberMarker><MaxParts>{max}</MaxParts><IsTruncated>{truncated}</IsTruncated>",
        escape(&req.bucket),
        escape(&req.key)
    );
    if let Some(last) = page.last() {
        out.push_str(&format!(
            "<NextPartNumberMarker>{}</NextPartNumberMarker>",
            last.0
        ));
    }
    for (n, md5, size, _) in &page {
        out.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>\"{md5}\"</ETag><Size>{size}</Size></Part>"
        ));
    }
    out.push_str("</ListPartsResult>");
    Ok(xml_response(StatusCode::OK, out))
}

pub async fn abort(st: &GatewayState, _fs: &FileSystem, req: &Request) -> S3Result<Response> {
    let (id, _) = upload_of(st, req).await?;
    st.fss
        .service()
        .delete(
            &upload_dir(&id),
            DeleteOptions {
                recursive: true,
                alluvium_only: false,
            },
        )
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn list_uploads(st: &GatewayState, fs: &FileSystem, req: &Request) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    let service = st.fss.service();
    let prefix = req.param("prefix").unwrap_or("");
    let mut found = Vec::new();
    let dirs = match service
        .list_status(&format!("{}/uploads", crate::STATE_DIR), false)
        .await
    {
        Ok(d) => d,
        Err(e) if e.code == ErrorCode::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    for d in dirs {
        if let Some(u) = load_upload(service, &d.name).await {
            if u.bucket == req.bucket && u.user == req.user && u.key.starts_with(prefix) {
                found.push((u.key.clone(), d.name.clone(), u.initiated_ms));
            }
        }
    }
    found.sort();
    let mut out = format!(
        "<ListMultipartUploadsResult {NS}><Bucket>{}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>{}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>",
        escape(&req.bucket),
        escape(prefix)
    );
    for (key, id, at) in found.iter().take(1000) {
        out.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{id}</UploadId><Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
            escape(key),
            crate::time::iso8601(*at)
        ));
    }
    out.push_str("</ListMultipartUploadsResult>");
    Ok(xml_response(StatusCode::OK, out))
}

pub async fn complete(
    st: &GatewayState,
    fs: &FileSystem,
    req: &Request,
    body: Body,
) -> S3Result<Response> {
    let (id, upload) = upload_of(st, req).await?;
    let body = read_small_body(req, body).await?;
    let nodes = super::xml::parse(&body)?;
    // (number, etag) in request order.
    let mut wanted: Vec<(u32, String)> = Vec::new();
    let mut current: (Option<u32>, Option<String>) = (None, None);
    for n in &nodes {
        match (n.parent.as_str(), n.name.as_str(), n.text.as_deref()) {
            ("CompleteMultipartUpload", "Part", None) => {
                if let (Some(num), Some(tag)) = current.clone() {
                    wanted.push((num, tag));
                }
                current = (None, None);
            }
            ("Part", "PartNumber", Some(t)) => {
                current.0 = Some(t.trim().parse().map_err(|_| {
                    S3Error::malformed_xml(format!("PartNumber '{t}' is not a number"))
                })?)
            }
            ("Part", "ETag", Some(t)) => {
                current.1 = Some(t.trim().trim_matches('"').to_ascii_lowercase())
            }
            _ => {}
        }
    }
    if let (Some(num), Some(tag)) = current {
        wanted.push((num, tag));
    }
    if wanted.is_empty() {
        return Err(S3Error::malformed_xml(
            "CompleteMultipartUpload names no parts",
        ));
    }
    if wanted.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidPartOrder",
            "The list of parts was not in ascending order.",
        ));
    }
    let staged = parts(st.fss.service(), &id).await?;
    let mut chosen = Vec::new();
    for (i, (num, tag)) in wanted.iter().enumerate() {
        let Some(p) = staged.iter().find(|p| p.0 == *num && p.1 == *tag) else {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPart",
                format!("part {num} with ETag {tag} was not uploaded or its ETag does not match"),
            ));
        };
        if i + 1 < wanted.len() && p.2 < MIN_PART_SIZE {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "EntityTooSmall",
                format!(
                    "part {num} is {} bytes; every part but the last must be at least 5 MiB",
                    p.2
                ),
            ));
        }
        chosen.push(p.clone());
    }
    super::bucket_info(fs, req).await?;
    let dst = req.object_path();
    let tmp = temp_beside(&dst);
    let mut out = create_object_file(fs, &tmp).await?;
    let mut etag_md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let copied: alluvium_common::Result<()> = async {
        for (_, md5, _, path) in &chosen {
            etag_md5.update(hex::decode(md5).unwrap_or_default());
            let mut input = st
                .fss
                .service()
                .open_file(path, OpenFileOptions::default())
                .await?;
            loop {
                let n = input.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                out.write(&buf[..n]).await?;
            }
            let _ = input.close().await;
        }
        Ok(())
    }
    .await;
    if let Err(e) = copied {
        let _ = out.cancel().await;
        let _ = fs.delete(&tmp, DeleteOptions::default()).await;
        return Err(e.into());
    }
    let info = out.close().await?;
    commit(fs, &tmp, &dst).await?;
    let etag = format!("{}-{}", hex::encode(etag_md5.finalize()), chosen.len());
    let m = ObjectMeta {
        file_id: info.file_id,
        etag: etag.clone(),
        content_type: upload.content_type,
        user: upload.meta,
    };
    meta::store(st.fss.service(), &req.bucket, &req.key, &m).await?;
    meta::remove(st.fss.service(), &upload_dir(&id)).await;
    tracing::info!(bucket = %req.bucket, key = %req.key, upload = %id, parts = chosen.len(), bytes = info.length, "multipart upload completed");
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "<CompleteMultipartUploadResult {NS}><Location>/{}/{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>\"{etag}\"</ETag></CompleteMultipartUploadResult>",
            escape(&req.bucket), escape(&req.key), escape(&req.bucket), escape(&req.key)
        ),
    ))
}
