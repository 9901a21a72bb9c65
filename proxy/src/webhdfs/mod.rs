//! The WebHDFS REST API v1 (`/webhdfs/v1/<path>?op=...`), as Hadoop's `WebHdfsFileSystem` and
//! HdfsCLI use it.
//!
//! Like Hadoop's HttpFS (an application-level gateway), this server answers `OPEN` and
//! `GETFILECHECKSUM` itself instead of redirecting to a datanode; `CREATE` keeps the two-step
//! flow clients expect: step one answers 307 with a `Location` on this gateway carrying
//! `data=true`, step two streams the body into the file.
//!
//! JSON answers carry no `Content-Type`: the Hadoop client shaded into pip-installed pyspark fails
//! to parse any media type (its shaded JAX-RS has no runtime delegate), and skips the check only
//! when the header is absent. Other clients parse the body regardless.

pub mod error;
pub mod status;

use std::collections::HashMap;

use alluvium_client::{
    CreateDirectoryOptions, CreateFileOptions, DeleteOptions, FileSystem, OpenFileOptions,
    SetAttributeOptions,
};
use alluvium_common::path::{join, name, normalize};
use alluvium_common::ErrorCode;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::server::GatewayState;
use error::RemoteException;

const GATEWAY: &str = "webhdfs";
const PREFIX: &str = "/webhdfs/v1";
/// User of requests without `user.name`, as Hadoop's simple authentication names it.
const ANONYMOUS: &str = "dr.who";
/// Entries per `LISTSTATUS_BATCH` page.
const BATCH: usize = 1000;

type WResult<T> = Result<T, RemoteException>;

/// A JSON body without `Content-Type` (see the module comment).
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r
}

fn ok_json(value: Value) -> WResult<Response> {
    Ok(json_response(StatusCode::OK, &value))
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(0));
    r
}

/// Query parameters; names are matched case-insensitively as Hadoop does.
struct Params(HashMap<String, String>);

impl Params {
    fn parse(uri: &Uri) -> Self {
        let q = uri.query().unwrap_or("");
        Params(
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Booleans as `true`/`false` in any case (HdfsCLI sends `True`).
    fn bool(&self, k: &str, default: bool) -> WResult<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(RemoteException::illegal_argument(format!(
                "Invalid value for webhdfs parameter \"{k}\": \"{v}\" is not true or false"
            ))),
        }
    }

    fn u64(&self, k: &str) -> WResult<Option<u64>> {
        self.get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    RemoteException::illegal_argument(format!(
                        "Invalid value for webhdfs parameter \"{k}\": \"{v}\" is not a non-negative integer"
                    ))
                })
            })
            .transpose()
    }

    /// A time in ms since the epoch; `-1` or absent means "leave unchanged".
    fn time(&self, k: &str) -> WResult<Option<i64>> {
        match self.get(k) {
            None | Some("-1") => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(t) if t >= 0 => Ok(Some(t)),
                _ => Err(RemoteException::illegal_argument(format!(
                    "Invalid value for webhdfs parameter \"{k}\": \"{v}\" is not a time in milliseconds or -1"
                ))),
            },
        }
    }

    fn permission(&self, default: u32) -> WResult<u32> {
        match self.get("permission") {
            None => Ok(default),
            Some(v) => match u32::from_str_radix(v, 8) {
                Ok(m) if m <= 0o1777 => Ok(m),
                _ => Err(RemoteException::illegal_argument(format!(
                    "Invalid value for webhdfs parameter \"permission\": \"{v}\" is not an octal mode of at most 1777"
                ))),
            },
        }
    }
}

/// The namespace path of a request: the part after `/webhdfs/v1`, percent-decoded and
/// normalized (a `..` above the root is refused).
fn request_path(uri: &Uri) -> WResult<String> {
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or("");
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| RemoteException::illegal_argument("path is not valid UTF-8"))?;
    let path = if decoded.is_empty() {
        "/".to_string()
    } else {
        decoded.into_owned()
    };
    Ok(normalize(&path)?)
}

/// This gateway's own `host:port` (requests reach this module only when WebHDFS is on).
fn gateway_host(st: &GatewayState) -> String {
    st.webhdfs_addr.map(|a| a.to_string()).unwrap_or_default()
}

/// Every request to the WebHDFS port.
pub async fn handle(
    State(st): State<GatewayState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = Params::parse(&uri);
    let op = params.get("op").unwrap_or("").to_ascii_uppercase();
    let user = params.get("user.name").unwrap_or(ANONYMOUS).to_string();
    let started = std::time::Instant::now();
    let header_bytes = crate::limits::header_section_bytes(&headers);
    let result = if header_bytes > crate::limits::WEBHDFS_MAX_HEADER_BYTES {
        Err(RemoteException::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "java.lang.IllegalArgumentException",
            format!(
                "the request headers are {header_bytes} bytes; the maximum is {}",
                crate::limits::WEBHDFS_MAX_HEADER_BYTES
            ),
        ))
    } else if !uri.path().starts_with(PREFIX)
        || !matches!(uri.path().as_bytes().get(PREFIX.len()), None | Some(b'/'))
    {
        Err(RemoteException::not_found(format!(
            "{}: not a WebHDFS path (expected {PREFIX}/...)",
            uri.path()
        )))
    } else {
        dispatch(&st, &method, &uri, &headers, &params, &op, &user, body).await
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let status = response.status().as_u16();
    st.metrics.request(GATEWAY, &op, status);
    tracing::debug!(%method, path = %uri.path(), %op, %user, status, elapsed_ms = started.elapsed().as_millis() as u64, "webhdfs");
    response
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    st: &GatewayState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    p: &Params,
    op: &str,
    user: &str,
    body: Body,
) -> WResult<Response> {
    if op.is_empty() {
        return Err(RemoteException::illegal_argument(
            "Invalid value for webhdfs parameter \"op\": the op parameter is missing",
        ));
    }
    let path = request_path(uri)?;
    let fs = st.fss.for_user(user).await?;
    match (method.as_str(), op) {
        ("GET", "GETFILESTATUS") => {
            let info = stat(&fs, &path).await?;
            ok_json(json!({ "FileStatus": status::file_status(&info, "") }))
        }
        ("GET", "LISTSTATUS") => {
            let entries = list(&fs, &path).await?;
            ok_json(json!({ "FileStatuses": { "FileStatus": entries } }))
        }
        ("GET", "LISTSTATUS_BATCH") => list_batch(&fs, &path, p).await,
        ("GET", "GETCONTENTSUMMARY") => content_summary(&fs, &path).await,
        ("GET", "GETFILECHECKSUM") => checksum(&fs, &path).await,
        ("GET", "GETHOMEDIRECTORY") => ok_json(json!({ "Path": format!("/user/{user}") })),
        ("GET", "GETTRASHROOT") => ok_json(json!({ "Path": format!("/user/{user}/.Trash") })),
        ("GET", "GETFILEBLOCKLOCATIONS") => {
            let info = stat(&fs, &path).await?;
            let offset = p.u64("offset")?.unwrap_or(0);
            let length = p.u64("length")?.unwrap_or(info.length);
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            ok_json(status::block_locations(&info, offset, length, &host))
        }
        ("GET", "GETXATTRS") => {
            stat(&fs, &path).await?;
            ok_json(json!({ "XAttrs": [] }))
        }
        ("GET", "LISTXATTRS") => {
            stat(&fs, &path).await?;
            ok_json(json!({ "XAttrNames": "[]" }))
        }
        ("GET", "GETACLSTATUS") => {
            let info = stat(&fs, &path).await?;
            ok_json(json!({ "AclStatus": {
                "entries": [], "group": info.group, "owner": info.owner,
                "permission": format!("{:o}", info.mode & 0o7777), "stickyBit": info.mode & 0o1000 != 0,
            }}))
        }
        ("GET", "OPEN") => open(st, &fs, &path, p).await,
        ("PUT", "CREATE") => create(st, &fs, &path, uri, headers, p, body).await,
        ("PUT", "MKDIRS") => {
            let mode = p.permission(0o755)?;
            fs.create_directory(
                &path,
                CreateDirectoryOptions {
                    recursive: true,
                    allow_exists: true,
                    mode,
                },
            )
            .await?;
            ok_json(json!({ "boolean": true }))
        }
        ("PUT", "RENAME") => rename(&fs, &path, p).await,
        ("PUT", "SETPERMISSION") => {
            let mode = p.permission(0o755)?;
            fs.set_attribute(
                &path,
                SetAttributeOptions {
                    mode: Some(mode),
                    ..Default::default()
                },
            )
            .await?;
            Ok(empty(StatusCode::OK))
        }
        ("PUT", "SETOWNER") => {
            let owner = p.get("owner").map(str::to_string);
            let group = p.get("group").map(str::to_string);
            if owner.is_none() && group.is_none() {
                return Err(RemoteException::illegal_argument(
                    "SETOWNER needs an owner or a group parameter",
                ));
            }
            fs.set_attribute(
                &path,
                SetAttributeOptions {
                    owner,
                    group,
                    ..Default::default()
                },
            )
            .await?;
            Ok(empty(StatusCode::OK))
        }
        ("PUT", "SETTIMES") => {
            // Hadoop sends -1 (or nothing) for a time it leaves unchanged.
            let mtime_ms = p.time("modificationtime")?;
            let atime_ms = p.time("accesstime")?;
            if mtime_ms.is_none() && atime_ms.is_none() {
                stat(&fs, &path).await?;
                return Ok(empty(StatusCode::OK));
            }
            fs.set_attribute(
                &path,
                SetAttributeOptions {
                    mtime_ms,
                    atime_ms,
                    ..Default::default()
                },
            )
            .await?;
            Ok(empty(StatusCode::OK))
        }
        ("DELETE", "DELETE") => {
            if path == "/" {
                return ok_json(json!({ "boolean": false }));
            }
            let recursive = p.bool("recursive", false)?;
            match fs
                .delete(
                    &path,
                    DeleteOptions {
                        recursive,
                        alluvium_only: false,
                    },
                )
                .await
            {
                Ok(()) => ok_json(json!({ "boolean": true })),
                Err(e) if e.code == ErrorCode::NotFound => ok_json(json!({ "boolean": false })),
                Err(e) => Err(e.into()),
            }
        }
        ("POST", "APPEND") => Err(RemoteException::unsupported(format!(
            "APPEND to {path}: Alluvium files are write-once; write a new file instead"
        ))),
        ("POST", "CONCAT") | ("POST", "TRUNCATE") | ("PUT", "CREATESYMLINK") => {
            Err(RemoteException::unsupported(format!(
                "{op} on {path}: not supported by Alluvium (files are write-once)"
            )))
        }
        (
            "PUT",
            "SETREPLICATION" | "SETXATTR" | "REMOVEXATTR" | "SETACL" | "MODIFYACLENTRIES"
            | "REMOVEACLENTRIES" | "REMOVEDEFAULTACL" | "REMOVEACL" | "CREATESNAPSHOT"
            | "RENAMESNAPSHOT" | "SETSTORAGEPOLICY" | "ALLOWSNAPSHOT" | "DISALLOWSNAPSHOT"
            | "SETQUOTA",
        )
        | ("GET", "GETDELEGATIONTOKEN" | "GET_BLOCK_LOCATIONS" | "GETSTORAGEPOLICY")
        | ("DELETE", "DELETESNAPSHOT") => Err(RemoteException::unsupported(format!(
            "{op} on {path}: not supported by the Alluvium WebHDFS gateway"
        ))),
        (m, op) => Err(RemoteException::illegal_argument(format!(
            "Invalid value for webhdfs parameter \"op\": No enum constant {op} for HTTP method {m}"
        ))),
    }
}

async fn stat(fs: &FileSystem, path: &str) -> WResult<alluvium_proto::FileInfo> {
    match fs.get_status(path).await {
        Ok(i) => Ok(i),
        Err(e) if e.code == ErrorCode::NotFound => Err(RemoteException::not_found(format!(
            "File does not exist: {path}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The statuses of a directory's children, sorted by name, without the gateways' own state.
async fn list(fs: &FileSystem, path: &str) -> WResult<Vec<Value>> {
    let info = stat(fs, path).await?;
    if !info.is_folder {
        return Ok(vec![status::file_status(&info, "")]);
    }
    let mut items = fs.list_status(path, false).await?;
    items.retain(|i| !(path == "/" && crate::is_hidden_name(&i.name)));
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(items
        .iter()
        .map(|i| status::file_status(i, &i.name))
        .collect())
}

async fn list_batch(fs: &FileSystem, path: &str, p: &Params) -> WResult<Response> {
    let after = p.get("startafter").unwrap_or("");
    let all = list(fs, path).await?;
    let rest: Vec<Value> = all
        .into_iter()
        .filter(|v| v["pathSuffix"].as_str().unwrap_or("") > after || after.is_empty())
        .collect();
    let remaining = rest.len().saturating_sub(BATCH);
    let page: Vec<Value> = rest.into_iter().take(BATCH).collect();
    ok_json(json!({ "DirectoryListing": {
        "partialListing": { "FileStatuses": { "FileStatus": page } },
        "remainingEntries": remaining,
    }}))
}

async fn content_summary(fs: &FileSystem, path: &str) -> WResult<Response> {
    let info = stat(fs, path).await?;
    let (mut dirs, mut files, mut length) = (0u64, 0u64, 0u64);
    if info.is_folder {
        dirs = 1;
        fs.list_status_each(path, true, |i| {
            if path == "/" && crate::is_hidden_name(&i.name) {
                return;
            }
            if i.path.starts_with(crate::STATE_DIR) {
                return;
            }
            if i.is_folder {
                dirs += 1;
            } else {
                files += 1;
                length += i.length;
            }
        })
        .await?;
    } else {
        files = 1;
        length = info.length;
    }
    ok_json(json!({ "ContentSummary": {
        "directoryCount": dirs, "fileCount": files, "length": length,
        "quota": -1, "spaceConsumed": length, "spaceQuota": -1, "typeQuota": {},
    }}))
}

/// An MD5 of the content, in the `MD5MD5CRC32FileChecksum` shape Hadoop's client decodes
/// (bytesPerCRC, crcPerBlock, 16-byte digest). It identifies content; it is not HDFS's own
/// block-CRC checksum, so it compares equal only between Alluvium files.
async fn checksum(fs: &FileSystem, path: &str) -> WResult<Response> {
    let info = stat(fs, path).await?;
    if info.is_folder {
        return Err(RemoteException::not_found(format!(
            "Path is not a file: {path}"
        )));
    }
    let mut input = fs.open_file(path, OpenFileOptions::default()).await?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
    }
    let _ = input.close().await;
    let mut bytes = Vec::with_capacity(28);
    bytes.extend_from_slice(&512u32.to_be_bytes());
    bytes.extend_from_slice(&0u64.to_be_bytes());
    bytes.extend_from_slice(&md5.finalize());
    ok_json(json!({ "FileChecksum": {
        "algorithm": "MD5-of-0MD5-of-512CRC32C",
        "bytes": hex::encode(bytes),
        "length": 28,
    }}))
}

async fn open(st: &GatewayState, fs: &FileSystem, path: &str, p: &Params) -> WResult<Response> {
    let input = fs.open_file(path, OpenFileOptions::default()).await?;
    let len = input.len();
    let offset = p.u64("offset")?.unwrap_or(0);
    if offset > len {
        return Err(RemoteException::illegal_argument(format!(
            "OPEN {path}: offset {offset} is past the end of the file ({len} bytes)"
        )));
    }
    let length = p
        .u64("length")?
        .map_or(len - offset, |l| l.min(len - offset));
    let stream = crate::body::file_stream(input, offset, length, st.metrics.clone(), GATEWAY);
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, header::HeaderValue::from(length));
    Ok(r)
}

async fn create(
    st: &GatewayState,
    fs: &FileSystem,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    p: &Params,
    body: Body,
) -> WResult<Response> {
    let overwrite = p.bool("overwrite", false)?;
    let mode = p.permission(0o644)?;
    let block_size = p.u64("blocksize")?.unwrap_or(0);
    if block_size != 0 && block_size < 4096 {
        return Err(RemoteException::illegal_argument(format!(
            "CREATE {path}: blocksize {block_size} is below the minimum of 4096"
        )));
    }
    if path == "/" {
        return Err(RemoteException::illegal_argument(
            "CREATE /: the root is a directory",
        ));
    }
    if !p.bool("data", false)? {
        // Step one: check what can be checked now, then send the client to step two.
        if !overwrite {
            if let Ok(existing) = fs.get_status(path).await {
                return Err(RemoteException::new(
                    StatusCode::FORBIDDEN,
                    "org.apache.hadoop.fs.FileAlreadyExistsException",
                    format!(
                        "{path} already exists as a {}",
                        if existing.is_folder {
                            "directory"
                        } else {
                            "file"
                        }
                    ),
                ));
            }
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| gateway_host(st));
        let query = uri.query().unwrap_or("");
        let location = format!("http://{host}{}?{query}&data=true", uri.path());
        if p.bool("noredirect", false)? {
            return ok_json(json!({ "Location": location }));
        }
        let mut r = empty(StatusCode::TEMPORARY_REDIRECT);
        r.headers_mut().insert(
            header::LOCATION,
            header::HeaderValue::from_str(&location).map_err(|_| {
                RemoteException::illegal_argument(
                    "CREATE: the redirect location is not a valid header",
                )
            })?,
        );
        return Ok(r);
    }
    let opts = CreateFileOptions {
        overwrite,
        mode,
        block_size,
        recursive: true,
        ..CreateFileOptions::from_config(fs.config())?
    };
    let mut out = fs.create_file(path, opts).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = out.cancel().await;
                return Err(RemoteException::new(
                    StatusCode::BAD_REQUEST,
                    "java.io.IOException",
                    format!("CREATE {path}: reading the request body failed: {e}"),
                ));
            }
        };
        st.metrics.bytes_in(GATEWAY, chunk.len() as u64);
        if let Err(e) = out.write_bytes(chunk).await {
            let _ = out.cancel().await;
            return Err(e.into());
        }
    }
    out.close().await?;
    let mut r = empty(StatusCode::CREATED);
    if let Ok(v) = header::HeaderValue::from_str(&format!("webhdfs://{}{path}", gateway_host(st))) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

/// Hadoop's rename: into an existing directory moves the source under it; failures a caller can
/// expect (missing source, taken destination) answer `false` rather than an exception.
async fn rename(fs: &FileSystem, src: &str, p: &Params) -> WResult<Response> {
    let dst = p
        .get("destination")
        .ok_or_else(|| RemoteException::illegal_argument("RENAME needs a destination parameter"))?;
    let mut dst = normalize(dst)?;
    if let Ok(d) = fs.get_status(&dst).await {
        if d.is_folder && dst != src {
            dst = join(&dst, name(src));
        }
    }
    match fs.rename(src, &dst).await {
        Ok(()) => ok_json(json!({ "boolean": true })),
        Err(e)
            if matches!(
                e.code,
                ErrorCode::NotFound
                    | ErrorCode::AlreadyExists
                    | ErrorCode::FailedPrecondition
                    | ErrorCode::InvalidArgument
            ) =>
        {
            tracing::debug!(%src, %dst, error = %e, "rename refused");
            ok_json(json!({ "boolean": false }))
        }
        Err(e) => Err(e.into()),
    }
}
