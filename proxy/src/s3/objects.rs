//! Object operations: put (streamed, verified, swapped into place), get with ranges, head,
//! delete, copy, multi-object delete.

use std::collections::BTreeMap;

use alluvium_client::{CreateFileOptions, DeleteOptions, FileSystem, OpenFileOptions};
use alluvium_common::path::parent;
use alluvium_common::ErrorCode;
use alluvium_proto::FileInfo;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::chunked::BodyError;
use super::error::{S3Error, S3Result};
use super::meta::{self, ObjectMeta};
use super::xml::escape;
use super::{empty, xml_response, Request, GATEWAY};
use crate::server::GatewayState;

/// Largest XML request body read (DeleteObjects allows 1000 keys).
pub const MAX_XML_BODY: usize = 2 << 20;

/// The request body as data: `aws-chunked` framing removed (and its chunk signatures checked)
/// when the client used it.
pub fn data_stream(
    req: &Request,
    body: Body,
) -> std::pin::Pin<Box<dyn Stream<Item = S3Result<Bytes>> + Send>> {
    let chunked = req.payload_hash.starts_with("STREAMING-")
        || req
            .header("content-encoding")
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "aws-chunked"));
    let raw = body.into_data_stream();
    if chunked {
        let decoded = super::chunked::decode(raw, req.chunk_signer.clone());
        Box::pin(decoded.map(|r| r.map_err(body_error)))
    } else {
        Box::pin(raw.map(|r| r.map_err(|e| incomplete_body(e.to_string()))))
    }
}

fn body_error(e: BodyError) -> S3Error {
    match e {
        BodyError::Signature(m) => S3Error::new(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", m),
        BodyError::Framing(_) => incomplete_body(e.to_string()),
    }
}

fn incomplete_body(m: String) -> S3Error {
    S3Error::new(
        StatusCode::BAD_REQUEST,
        "IncompleteBody",
        format!("reading the request body failed: {m}"),
    )
}

/// What a streamed upload produced.
pub struct Written {
    pub info: FileInfo,
    pub md5_hex: String,
}

/// Streams the body into a new file at `path` (created by `fs`), checking a signed payload hash.
/// On any failure the partial file is removed.
pub async fn write_body(
    st: &GatewayState,
    fs: &FileSystem,
    path: &str,
    req: &Request,
    body: Body,
) -> S3Result<Written> {
    let expect_sha = (req.payload_hash.len() == 64
        && req.payload_hash.bytes().all(|c| c.is_ascii_hexdigit()))
    .then(|| req.payload_hash.to_ascii_lowercase());
    let mut out = create_object_file(fs, path).await?;
    let mut md5 = Md5::new();
    let mut sha = expect_sha.as_ref().map(|_| Sha256::new());
    let mut stream = data_stream(req, body);
    let failed = loop {
        match stream.next().await {
            None => break None,
            Some(Err(e)) => break Some(e),
            Some(Ok(chunk)) => {
                md5.update(&chunk);
                if let Some(s) = sha.as_mut() {
                    s.update(&chunk);
                }
                st.metrics.bytes_in(GATEWAY, chunk.len() as u64);
                if let Err(e) = out.write_bytes(chunk).await {
                    break Some(e.into());
                }
            }
        }
    };
    let failed = failed.or_else(|| {
        let got = hex::encode(sha.take()?.finalize());
        (Some(&got) != expect_sha.as_ref()).then(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )
        })
    });
    if let Some(e) = failed {
        let _ = out.cancel().await;
        let _ = fs.delete(path, DeleteOptions::default()).await;
        return Err(e);
    }
    let info = out.close().await?;
    Ok(Written {
        info,
        md5_hex: hex::encode(md5.finalize()),
    })
}

/// A hidden temporary name beside `path` (listings skip it).
/// Opens a file for an object's bytes (a temporary file or a staged part): parents made as
/// needed, an earlier file there replaced, the client's configured write type.
pub async fn create_object_file(
    fs: &FileSystem,
    path: &str,
) -> alluvium_common::Result<alluvium_client::FileOutStream> {
    fs.create_file(
        path,
        CreateFileOptions {
            recursive: true,
            overwrite: true,
            ..CreateFileOptions::from_config(fs.config())?
        },
    )
    .await
}

pub fn temp_beside(path: &str) -> String {
    let dir = parent(path).unwrap_or("/");
    format!(
        "{}/.alluvium-tmp-{:016x}",
        dir.trim_end_matches('/'),
        rand::random::<u64>()
    )
}

/// Moves a finished temporary file onto `dst`, replacing an object there. A directory at `dst`
/// is refused (an object and a prefix cannot share a name in a file system).
pub async fn commit(fs: &FileSystem, tmp: &str, dst: &str) -> S3Result<()> {
    match fs.get_status(dst).await {
        Ok(i) if i.is_folder => {
            let _ = fs.delete(tmp, DeleteOptions::default()).await;
            return Err(S3Error::new(
                StatusCode::CONFLICT,
                "InvalidRequest",
                format!(
                    "{dst} is a directory holding other objects; an object cannot have its name"
                ),
            ));
        }
        Ok(_) => fs.delete(dst, DeleteOptions::default()).await?,
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = fs.rename(tmp, dst).await {
        let _ = fs.delete(tmp, DeleteOptions::default()).await;
        return Err(e.into());
    }
    Ok(())
}

/// `x-amz-meta-*` headers of a request.
pub fn user_meta(req: &Request) -> BTreeMap<String, String> {
    req.headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix("x-amz-meta-")?;
            Some((name.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect()
}

pub async fn put_object(
    st: &GatewayState,
    fs: &FileSystem,
    req: &Request,
    body: Body,
) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    let dst = req.object_path();
    if req.key.ends_with('/') {
        // A folder marker: a directory in the namespace. Its body must be empty.
        let mut stream = data_stream(req, body);
        while let Some(c) = stream.next().await {
            if !c?.is_empty() {
                return Err(S3Error::invalid_request(
                    "a key ending in '/' is a folder and cannot hold data",
                ));
            }
        }
        fs.create_directory(
            &dst,
            alluvium_client::CreateDirectoryOptions {
                recursive: true,
                allow_exists: true,
                mode: 0o755,
            },
        )
        .await?;
        let mut r = empty(StatusCode::OK);
        r.headers_mut().insert(
            header::ETAG,
            HeaderValue::from_static("\"d41d8cd98f00b204e9800998ecf8427e\""),
        );
        return Ok(r);
    }
    let tmp = temp_beside(&dst);
    let w = write_body(st, fs, &tmp, req, body).await?;
    commit(fs, &tmp, &dst).await?;
    let m = ObjectMeta {
        file_id: w.info.file_id,
        etag: w.md5_hex.clone(),
        content_type: req.header("content-type").map(str::to_string),
        user: user_meta(req),
    };
    meta::store(st.fss.service(), &req.bucket, &req.key, &m).await?;
    tracing::info!(bucket = %req.bucket, key = %req.key, user = %req.user, bytes = w.info.length, "put object");
    let mut r = empty(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", w.md5_hex)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    Ok(r)
}

pub async fn object_info(fs: &FileSystem, req: &Request) -> S3Result<FileInfo> {
    match fs.get_status(&req.object_path()).await {
        Ok(i) if i.is_folder && !req.key.ends_with('/') => {
            Err(S3Error::no_such_key(&req.bucket, &req.key))
        }
        Ok(i) => Ok(i),
        Err(e) if e.code == ErrorCode::NotFound => {
            super::bucket_info(fs, req).await?;
            Err(S3Error::no_such_key(&req.bucket, &req.key))
        }
        Err(e) => Err(e.into()),
    }
}

/// Parses a single `bytes=` range against a length: `Ok(None)` = the whole object (no header, or
/// a form S3 ignores), `Err` = unsatisfiable.
pub fn parse_range(h: Option<&str>, len: u64) -> S3Result<Option<(u64, u64)>> {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || {
        S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            format!("The requested range '{spec}' is not satisfiable for an object of {len} bytes"),
        )
    };
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(unsatisfiable());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ok(None);
        };
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if start >= len {
            return Err(unsatisfiable());
        }
        (start, end)
    };
    Ok(Some(range))
}

pub async fn get_object(
    st: &GatewayState,
    fs: &FileSystem,
    req: &Request,
    head: bool,
) -> S3Result<Response> {
    let info = object_info(fs, req).await?;
    let m = if info.is_folder {
        ObjectMeta {
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            ..Default::default()
        }
    } else {
        meta::load_or_default(st.fss.service(), &req.bucket, &req.key, &info).await
    };
    let len = if info.is_folder { 0 } else { info.length };
    let range = parse_range(req.header("range"), len)?;
    let (start, count) = match range {
        Some((a, b)) => (a, b - a + 1),
        None => (0, len),
    };
    let body = if head || count == 0 || info.is_folder {
        Body::empty()
    } else {
        let input = fs
            .open_file(&req.object_path(), OpenFileOptions::default())
            .await?;
        Body::from_stream(crate::body::file_stream(
            input,
            start,
            count,
            st.metrics.clone(),
            GATEWAY,
        ))
    };
    let mut r = Response::new(body);
    *r.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((a, b)) = range {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", m.etag)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&crate::time::http_date(info.last_modification_time_ms)) {
        h.insert(header::LAST_MODIFIED, v);
    }
    let ct = m
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    if let Ok(v) = HeaderValue::from_str(ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    for (k, v) in &m.user {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    Ok(r)
}

pub async fn delete_object(
    st: &GatewayState,
    fs: &FileSystem,
    req: &Request,
) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    delete_key(st, fs, &req.bucket, &req.key).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Deletes one key; a missing key is success, as in S3. A folder key removes an empty directory.
async fn delete_key(st: &GatewayState, fs: &FileSystem, bucket: &str, key: &str) -> S3Result<()> {
    let path = format!("/{bucket}/{}", key.trim_end_matches('/'));
    match fs.get_status(&path).await {
        Ok(i) if i.is_folder && !key.ends_with('/') => return Ok(()),
        Ok(_) => {}
        Err(e) if e.code == ErrorCode::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    match fs.delete(&path, DeleteOptions::default()).await {
        Ok(()) => {}
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    meta::remove(st.fss.service(), &meta::meta_path(bucket, key)).await;
    prune_empty_parents(fs, bucket, &path).await;
    Ok(())
}

/// In S3 a prefix exists only while objects live under it: after a delete, the directories it
/// left empty (up to the bucket) go too, so `aws s3 rm --recursive` leaves no `PRE dir/` behind.
/// A non-recursive delete refuses non-empty directories, which is where this stops.
async fn prune_empty_parents(fs: &FileSystem, bucket: &str, path: &str) {
    let bucket_dir = format!("/{bucket}");
    let mut dir = alluvium_common::path::parent(path).map(str::to_string);
    while let Some(d) = dir {
        if d == bucket_dir || !alluvium_common::path::is_ancestor_or_self(&bucket_dir, &d) {
            break;
        }
        if fs.delete(&d, DeleteOptions::default()).await.is_err() {
            break;
        }
        dir = alluvium_common::path::parent(&d).map(str::to_string);
    }
}

pub async fn copy_object(st: &GatewayState, fs: &FileSystem, req: &Request) -> S3Result<Response> {
    let raw = req.header("x-amz-copy-source").unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(raw.split('?').next().unwrap_or(""))
        .decode_utf8_lossy()
        .into_owned();
    let src = decoded.trim_start_matches('/');
    let (sb, sk) = src.split_once('/').ok_or_else(|| {
        S3Error::invalid_argument(format!("x-amz-copy-source '{raw}' is not <bucket>/<key>"))
    })?;
    super::check_key(sk)?;
    let src_req = Request {
        bucket: sb.to_string(),
        key: sk.to_string(),
        method: req.method.clone(),
        uri: req.uri.clone(),
        headers: req.headers.clone(),
        query: Vec::new(),
        user: req.user.clone(),
        payload_hash: String::new(),
        chunk_signer: None,
    };
    let info = object_info(fs, &src_req).await?;
    if info.is_folder {
        return Err(S3Error::invalid_request(
            "copying a folder is not supported",
        ));
    }
    super::bucket_info(fs, req).await?;
    let src_meta = meta::load_or_default(st.fss.service(), sb, sk, &info).await;
    let dst = req.object_path();
    if dst == src_req.object_path() && req.header("x-amz-metadata-directive") != Some("REPLACE") {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata.",
        ));
    }
    let tmp = temp_beside(&dst);
    let mut input = fs
        .open_file(&src_req.object_path(), OpenFileOptions::default())
        .await?;
    let mut out = create_object_file(fs, &tmp).await?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let copied: alluvium_common::Result<()> = async {
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            md5.update(&buf[..n]);
            out.write(&buf[..n]).await?;
        }
    }
    .await;
    let _ = input.close().await;
    if let Err(e) = copied {
        let _ = out.cancel().await;
        let _ = fs.delete(&tmp, DeleteOptions::default()).await;
        return Err(e.into());
    }
    let new_info = out.close().await?;
    commit(fs, &tmp, &dst).await?;
    let replace = req.header("x-amz-metadata-directive") == Some("REPLACE");
    // A copy keeps the source's ETag when it was a single-part MD5; a multipart ETag does not
    // describe the copy's content, so the copy gets its MD5.
    let m = ObjectMeta {
        file_id: new_info.file_id,
        etag: hex::encode(md5.finalize()),
        content_type: if replace {
            req.header("content-type").map(str::to_string)
        } else {
            src_meta.content_type
        },
        user: if replace {
            user_meta(req)
        } else {
            src_meta.user
        },
    };
    meta::store(st.fss.service(), &req.bucket, &req.key, &m).await?;
    Ok(xml_response(
        StatusCode::OK,
        format!(
            "<CopyObjectResult><LastModified>{}</LastModified><ETag>\"{}\"</ETag></CopyObjectResult>",
            crate::time::iso8601(new_info.last_modification_time_ms),
            m.etag
        ),
    ))
}

pub async fn read_small_body(req: &Request, body: Body) -> S3Result<Vec<u8>> {
    let mut stream = data_stream(req, body);
    let mut out = Vec::new();
    while let Some(c) = stream.next().await {
        let c = c?;
        if out.len() + c.len() > MAX_XML_BODY {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "MaxMessageLengthExceeded",
                format!("the XML body is larger than {MAX_XML_BODY} bytes"),
            ));
        }
        out.extend_from_slice(&c);
    }
    Ok(out)
}

pub async fn delete_objects(
    st: &GatewayState,
    fs: &FileSystem,
    req: &Request,
    body: Body,
) -> S3Result<Response> {
    super::bucket_info(fs, req).await?;
    let body = read_small_body(req, body).await?;
    let nodes = super::xml::parse(&body)?;
    let quiet = nodes
        .iter()
        .any(|n| n.name == "Quiet" && n.text.as_deref().is_some_and(|t| t.trim() == "true"));
    let keys: Vec<String> = nodes
        .iter()
        .filter(|n| n.name == "Key" && n.parent == "Object")
        .filter_map(|n| n.text.clone())
        .collect();
    if keys.is_empty() || keys.len() > 1000 {
        return Err(S3Error::malformed_xml(
            "a Delete request names 1 to 1000 objects",
        ));
    }
    let mut out = String::from("<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for key in keys {
        let result = match super::check_key(&key) {
            Ok(()) => delete_key(st, fs, &req.bucket, &key).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) if !quiet => {
                out.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(&key)))
            }
            Ok(()) => {}
            Err(e) => out.push_str(&format!(
                "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
                escape(&key),
                e.code,
                escape(&e.message)
            )),
        }
    }
    out.push_str("</DeleteResult>");
    Ok(xml_response(StatusCode::OK, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-3"), 10).unwrap(), Some((0, 3)));
        assert_eq!(parse_range(Some("bytes=5-"), 10).unwrap(), Some((5, 9)));
        assert_eq!(parse_range(Some("bytes=-3"), 10).unwrap(), Some((7, 9)));
        assert_eq!(parse_range(Some("bytes=8-100"), 10).unwrap(), Some((8, 9)));
        assert_eq!(parse_range(Some("bytes=-100"), 10).unwrap(), Some((0, 9)));
        assert_eq!(parse_range(Some("bytes=3-1"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10).unwrap(), None);
        assert_eq!(parse_range(Some("bytes=x-1"), 10).unwrap(), None);
        assert_eq!(
            parse_range(Some("bytes=10-"), 10).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(
            parse_range(Some("bytes=0-0"), 0).unwrap_err().code,
            "InvalidRange"
        );
    }
}
