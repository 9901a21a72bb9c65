//! Bucket operations and listings (ListBuckets, ListObjects v1 and v2).

use alluvium_client::{CreateDirectoryOptions, DeleteOptions, FileSystem};
use alluvium_common::ErrorCode;
use axum::http::StatusCode;
use axum::response::Response;
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::{S3Error, S3Result};
use super::xml::escape;
use super::{empty, meta, xml_response, Request};
use crate::server::GatewayState;

const NS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";
const URL_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

pub async fn list_buckets(fs: &FileSystem, req: &Request) -> S3Result<Response> {
    let mut items = fs.list_status("/", false).await?;
    items
        .retain(|i| i.is_folder && super::valid_bucket(&i.name) && !crate::is_hidden_name(&i.name));
    items.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!(
        "<ListAllMyBucketsResult {NS}><Owner><ID>{u}</ID><DisplayName>{u}</DisplayName></Owner><Buckets>",
        u = escape(&req.user)
    );
    for b in items {
        out.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
            escape(&b.name),
            crate::time::iso8601(b.creation_time_ms)
        ));
    }
    out.push_str("</Buckets></ListAllMyBucketsResult>");
    Ok(xml_response(StatusCode::OK, out))
}

pub async fn create_bucket(fs: &FileSystem, req: &Request) -> S3Result<Response> {
    match fs.get_status(&req.bucket_path()).await {
        Ok(i) => {
            return Err(if i.owner == req.user {
                S3Error::new(
                    StatusCode::CONFLICT,
                    "BucketAlreadyOwnedByYou",
                    format!("you already own bucket {}", req.bucket),
                )
            } else {
                S3Error::new(
                    StatusCode::CONFLICT,
                    "BucketAlreadyExists",
                    format!("bucket {} exists and belongs to another user", req.bucket),
                )
            })
        }
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    fs.create_directory(
        &req.bucket_path(),
        CreateDirectoryOptions {
            recursive: false,
            allow_exists: false,
            mode: 0o755,
        },
    )
    .await?;
    let mut r = empty(StatusCode::OK);
    if let Ok(v) = axum::http::HeaderValue::from_str(&req.bucket_path()) {
        r.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    Ok(r)
}

pub async fn delete_bucket(
    st: &GatewayState,
    fs: &FileSystem,
    req: &Request,
) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    let children = fs.list_status(&req.bucket_path(), false).await?;
    if children.iter().any(|c| !crate::is_hidden_name(&c.name)) {
        return Err(S3Error::new(
            StatusCode::CONFLICT,
            "BucketNotEmpty",
            format!(
                "The bucket you tried to delete is not empty: {}",
                req.bucket
            ),
        ));
    }
    fs.delete(
        &req.bucket_path(),
        DeleteOptions {
            recursive: true,
            alluvium_only: false,
        },
    )
    .await?;
    meta::remove(
        st.fss.service(),
        &format!("{}/meta/{}", crate::STATE_DIR, req.bucket),
    )
    .await;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// One listed entry: an object, or (with a delimiter) a common prefix.
struct Entry {
    key: String,
    info: Option<alluvium_proto::FileInfo>,
}

pub async fn list_objects(st: &GatewayState, fs: &FileSystem, req: &Request) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    let v2 = req.param("list-type") == Some("2");
    let prefix = req.param("prefix").unwrap_or("");
    let delimiter = req.param("delimiter").unwrap_or("");
    let url = req.param("encoding-type") == Some("url");
    let max_keys: usize = match req.param("max-keys") {
        None => 1000,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| {
                S3Error::invalid_argument(format!("max-keys '{v}' is not a non-negative integer"))
            })?
            .min(1000),
    };
    let marker = if v2 {
        match req.param("continuation-token") {
            Some(t) => String::from_utf8(hex::decode(t).map_err(|_| {
                S3Error::invalid_argument("The continuation token provided is incorrect")
            })?)
            .map_err(|_| {
                S3Error::invalid_argument("The continuation token provided is incorrect")
            })?,
            None => req.param("start-after").unwrap_or("").to_string(),
        }
    } else {
        req.param("marker").unwrap_or("").to_string()
    };
    let bucket_path = req.bucket_path();
    // With "/" as delimiter only the prefix's directory is listed; otherwise everything below it.
    let dir_part = match prefix.rfind('/') {
        Some(i) => &prefix[..i],
        None => "",
    };
    let list_root = if dir_part.is_empty() {
        bucket_path.clone()
    } else {
        format!("{bucket_path}/{dir_part}")
    };
    let recursive = delimiter != "/";
    let mut raw = Vec::new();
    match fs
        .list_status_each(&list_root, recursive, |i| raw.push(i))
        .await
    {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::NotFound || e.code == ErrorCode::InvalidArgument => {}
        Err(e) => return Err(e.into()),
    }
    let mut entries: Vec<Entry> = Vec::new();
    for i in raw {
        let Some(rel) = i.path.strip_prefix(&format!("{bucket_path}/")) else {
            continue;
        };
        if rel.split('/').any(crate::is_hidden_name) {
            continue;
        }
        let key = if i.is_folder {
            // Directories appear as folder keys only when empty (or as prefixes with "/").
            if recursive && i.child_count > 0 {
                continue;
            }
            format!("{rel}/")
        } else {
            rel.to_string()
        };
        if !key.starts_with(prefix) {
            continue;
        }
        let info = if i.is_folder && !recursive {
            None
        } else {
            Some(i)
        };
        entries.push(Entry { key, info });
    }
    // Group by delimiter into common prefixes.
    let mut items: Vec<Entry> = Vec::new();
    for e in entries {
        if !delimiter.is_empty() {
            if let Some(pos) = e.key[prefix.len()..].find(delimiter) {
                let cp = e.key[..prefix.len() + pos + delimiter.len()].to_string();
                if cp != e.key || e.info.is_none() {
                    items.push(Entry {
                        key: cp,
                        info: None,
                    });
                    continue;
                }
            }
        }
        items.push(e);
    }
    items.sort_by(|a, b| a.key.cmp(&b.key));
    items.dedup_by(|a, b| a.key == b.key && a.info.is_none() && b.info.is_none());
    let items: Vec<Entry> = items
        .into_iter()
        .filter(|e| marker.is_empty() || e.key.as_str() > marker.as_str())
        .collect();
    let truncated = items.len() > max_keys;
    let page: Vec<Entry> = items.into_iter().take(max_keys).collect();
    let enc = |s: &str| {
        if url {
            utf8_percent_encode(s, URL_KEY).to_string()
        } else {
            escape(s)
        }
    };
    // ETags of the page's objects, fetched concurrently.
    let service = st.fss.service().clone();
    let jobs: Vec<(String, Option<alluvium_proto::FileInfo>)> = page
        .iter()
        .map(|e| (e.key.clone(), e.info.clone()))
        .collect();
    let bucket = req.bucket.clone();
    let etags: Vec<String> = futures::stream::iter(jobs.into_iter().map(move |(key, info)| {
        let service = service.clone();
        let bucket = bucket.clone();
        async move {
            match info {
                Some(i) if !i.is_folder => {
                    meta::load_or_default(&service, &bucket, &key, &i)
                        .await
                        .etag
                }
                _ => "d41d8cd98f00b204e9800998ecf8427e".to_string(),
            }
        }
    }))
    .buffered(16)
    .collect()
    .await;
    let root = "ListBucketResult";
    let mut out = format!(
        "<{root} {NS}><Name>{}</Name><Prefix>{}</Prefix>",
        escape(&req.bucket),
        enc(prefix)
    );
    if v2 {
        out.push_str(&format!("<KeyCount>{}</KeyCount>", page.len()));
        if let Some(t) = req.param("continuation-token") {
            out.push_str(&format!(
                "<ContinuationToken>{}</ContinuationToken>",
                escape(t)
            ));
        }
        if let Some(s) = req.param("start-after") {
            out.push_str(&format!("<StartAfter>{}</StartAfter>", enc(s)));
        }
    } else {
        out.push_str(&format!("<Marker>{}</Marker>", enc(&marker)));
    }
    out.push_str(&format!("<MaxKeys>{max_keys}</MaxKeys>"));
    if !delimiter.is_empty() {
        out.push_str(&format!("<Delimiter>{}</Delimiter>", enc(delimiter)));
    }
    if url {
        out.push_str("<EncodingType>url</EncodingType>");
    }
    out.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    if truncated {
        if let Some(last) = page.last() {
            if v2 {
                out.push_str(&format!(
                    "<NextContinuationToken>{}</NextContinuationToken>",
                    hex::encode(&last.key)
                ));
            } else {
                out.push_str(&format!("<NextMarker>{}</NextMarker>", enc(&last.key)));
            }
        }
    }
    for (e, etag) in page.iter().zip(etags) {
        match &e.info {
            Some(i) => out.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>\"{}\"</ETag><Size>{}</Size><Owner><ID>{o}</ID><DisplayName>{o}</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>",
                enc(&e.key),
                crate::time::iso8601(i.last_modification_time_ms),
                etag,
                if i.is_folder { 0 } else { i.length },
                o = escape(&i.owner),
            )),
            None => out.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", enc(&e.key))),
        }
    }
    out.push_str(&format!("</{root}>"));
    Ok(xml_response(StatusCode::OK, out))
}
