//! End-to-end tests of both gateways: a real master and worker in this process (RocksDB, a
//! local-fs UFS and a MEM tier in temp dirs, ports chosen by the OS), the gateway in front, and
//! plain HTTP requests, S3 ones signed with Signature V4 exactly as AWS clients sign them.

use alluvium_common::config::S3Credential;
use alluvium_common::{ByteSize, Config};
use alluvium_local::{loopback_config, LocalCluster};
use alluvium_master::MasterServer;
use alluvium_proxy::s3::auth::{canonical_request, sign, signing_key};
use alluvium_proxy::s3::chunk_signature::ChunkSigner;
use alluvium_proxy::ProxyServer;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use sha2::{Digest, Sha256};

const KEY: &str = "AKIDTEST";
const SECRET: &str = "secret/key+test";

struct Gateway {
    _dir: tempfile::TempDir,
    cluster: Option<LocalCluster>,
    http: reqwest::Client,
    user: String,
}

impl Gateway {
    async fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let mut c = loopback_config(dir.path(), &dir.path().join("mem"), ByteSize(256 << 20));
        c.master.default_block_size = ByteSize(1 << 20);
        c.client.write_type = "CACHE_THROUGH".into();
        c.proxy.s3_enabled = true;
        c.proxy.webhdfs_enabled = true;
        let user = alluvium_common::identity::Caller::current_process().user;
        c.proxy.s3_credentials.push(S3Credential {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
            user: user.clone(),
        });
        let cluster = LocalCluster::start(c).await.unwrap();
        Gateway {
            _dir: dir,
            cluster: Some(cluster),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            user,
        }
    }

    fn proxy(&self) -> &ProxyServer {
        self.cluster.as_ref().unwrap().proxy().unwrap()
    }

    fn hdfs(&self, path: &str, op: &str, extra: &str) -> String {
        format!(
            "http://{}/webhdfs/v1{path}?op={op}&user.name={}{extra}",
            self.proxy().webhdfs_addr().unwrap(),
            self.user
        )
    }

    async fn s3(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        self.s3_with(method, path_and_query, body, extra, KEY, SECRET)
            .await
    }

    async fn s3_with(
        &self,
        method: Method,
        path_and_query: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
        key: &str,
        secret: &str,
    ) -> reqwest::Response {
        let payload = hex::encode(Sha256::digest(&body));
        let (headers, _) = self.sign(&method, path_and_query, &payload, extra, key, secret);
        self.send(method, path_and_query, headers, body).await
    }

    /// A signed streaming upload (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) of `chunks`, each chunk
    /// signed in the chain; `tamper` changes one byte of the last data chunk after signing.
    async fn s3_streaming(
        &self,
        path: &str,
        chunks: &[Vec<u8>],
        tamper: bool,
    ) -> reqwest::Response {
        let decoded: usize = chunks.iter().map(Vec::len).sum();
        let decoded = decoded.to_string();
        let extra = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
        ];
        let (headers, mut chain) = self.sign(
            &Method::PUT,
            path,
            alluvium_proxy::s3::auth::STREAMING_SIGNED,
            &extra,
            KEY,
            SECRET,
        );
        let mut body = Vec::new();
        let empty = Vec::new();
        for (i, c) in chunks.iter().chain([&empty]).enumerate() {
            let sha = Sha256::digest(c);
            let sig = chain.expected_chunk(&sha);
            chain.verify_chunk(&sha, &sig).unwrap();
            body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", c.len()).as_bytes());
            let mut c = c.clone();
            if tamper && i + 1 == chunks.len() {
                c[0] ^= 1;
            }
            body.extend_from_slice(&c);
            body.extend_from_slice(b"\r\n");
        }
        self.send(Method::PUT, path, headers, body).await
    }

    /// SigV4 header signing as a client does it: the headers to send, and the chunk chain seeded
    /// with the request's signature.
    fn sign(
        &self,
        method: &Method,
        path_and_query: &str,
        payload: &str,
        extra: &[(&str, &str)],
        key: &str,
        secret: &str,
    ) -> (HeaderMap, ChunkSigner) {
        let addr = self.proxy().s3_addr().unwrap();
        let uri: axum::http::Uri = path_and_query.parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let amz_date = amz_date(now);
        let date = &amz_date[..8];
        let mut h = axum::http::HeaderMap::new();
        h.insert("host", addr.to_string().parse().unwrap());
        h.insert("x-amz-date", amz_date.parse().unwrap());
        h.insert("x-amz-content-sha256", payload.parse().unwrap());
        for (k, v) in extra {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let mut names: Vec<String> = h.keys().map(|k| k.as_str().to_string()).collect();
        names.sort();
        let signed = names.join(";");
        let query = alluvium_proxy::s3::auth::parse_query(uri.query().unwrap_or(""));
        let m: axum::http::Method = method.as_str().parse().unwrap();
        let canonical = canonical_request(&m, &uri, &h, &query, &signed, payload).unwrap();
        let scope = format!("{date}/us-east-1/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let sig = sign(secret, date, "us-east-1", &to_sign);
        let mut headers = HeaderMap::new();
        for (k, v) in h.iter() {
            if k != "host" {
                headers.insert(
                    reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
                    HeaderValue::from_bytes(v.as_bytes()).unwrap(),
                );
            }
        }
        headers.insert(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={key}/{scope},SignedHeaders={signed},Signature={sig}"
            )
            .parse()
            .unwrap(),
        );
        let chain = ChunkSigner::new(
            signing_key(secret, date, "us-east-1"),
            &amz_date,
            &scope,
            &sig,
            false,
        );
        (headers, chain)
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let addr = self.proxy().s3_addr().unwrap();
        self.http
            .request(method, format!("http://{addr}{path_and_query}"))
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        self.cluster.take().unwrap().shutdown().await.unwrap();
    }
}

fn amz_date(secs: i64) -> String {
    // Reuse the gateway's own formatter through ISO 8601: 2009-10-12T17:50:30.000Z.
    let iso = alluvium_proxy::time::iso8601(secs * 1000);
    format!(
        "{}{}{}T{}{}{}Z",
        &iso[0..4],
        &iso[5..7],
        &iso[8..10],
        &iso[11..13],
        &iso[14..16],
        &iso[17..19]
    )
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhdfs_operations_and_errors() {
    let g = Gateway::start().await;
    let c = &g.http;
    // MKDIRS, two-step CREATE, GETFILESTATUS, OPEN with offset and length.
    let r = c
        .put(g.hdfs("/data/in", "MKDIRS", "&permission=755"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-type").is_none(),
        "JSON must carry no content type"
    );
    assert_eq!(r.text().await.unwrap(), r#"{"boolean":true}"#);
    let r = c
        .put(g.hdfs("/data/in/a.bin", "CREATE", "&overwrite=False"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.contains("data=true"), "{loc}");
    let body = data(3 << 20);
    let r = c.put(&loc).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: serde_json::Value = c
        .get(g.hdfs("/data/in/a.bin", "GETFILESTATUS", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["FileStatus"]["length"], 3 << 20);
    assert_eq!(v["FileStatus"]["type"], "FILE");
    let got = c
        .get(g.hdfs("/data/in/a.bin", "OPEN", "&offset=1000&length=5000"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&got[..], &body[1000..6000]);
    let got = c
        .get(g.hdfs("/data/in/a.bin", "OPEN", ""))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), body.len());
    assert!(got[..] == body[..]);
    // Second CREATE without overwrite: FileAlreadyExistsException, nothing changed.
    let r = c
        .put(g.hdfs("/data/in/a.bin", "CREATE", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["RemoteException"]["exception"],
        "FileAlreadyExistsException"
    );
    // LISTSTATUS, LISTSTATUS_BATCH, GETCONTENTSUMMARY, GETFILECHECKSUM, GETHOMEDIRECTORY.
    let v: serde_json::Value = c
        .get(g.hdfs("/data/in", "LISTSTATUS", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["FileStatuses"]["FileStatus"][0]["pathSuffix"], "a.bin");
    let v: serde_json::Value = c
        .get(g.hdfs("/data/in", "LISTSTATUS_BATCH", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["DirectoryListing"]["remainingEntries"], 0);
    let v: serde_json::Value = c
        .get(g.hdfs("/data", "GETCONTENTSUMMARY", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["ContentSummary"]["fileCount"], 1);
    assert_eq!(v["ContentSummary"]["directoryCount"], 2);
    let v: serde_json::Value = c
        .get(g.hdfs("/data/in/a.bin", "GETFILECHECKSUM", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["FileChecksum"]["length"], 28);
    let v: serde_json::Value = c
        .get(g.hdfs("/", "GETHOMEDIRECTORY", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["Path"], format!("/user/{}", g.user));
    // SETPERMISSION, RENAME, DELETE.
    let r = c
        .put(g.hdfs("/data/in/a.bin", "SETPERMISSION", "&permission=600"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = c
        .get(g.hdfs("/data/in/a.bin", "GETFILESTATUS", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["FileStatus"]["permission"], "600");
    // SETTIMES: both times, then only the access time (-1 leaves the other unchanged); a bad
    // value is refused with nothing changed.
    let r = c
        .put(g.hdfs(
            "/data/in/a.bin",
            "SETTIMES",
            "&modificationtime=1600000000000&accesstime=1600000001000",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .put(g.hdfs(
            "/data/in/a.bin",
            "SETTIMES",
            "&modificationtime=-1&accesstime=1600000002000",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .put(g.hdfs("/data/in/a.bin", "SETTIMES", "&modificationtime=soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = c
        .get(g.hdfs("/data/in/a.bin", "GETFILESTATUS", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["FileStatus"]["modificationTime"], 1_600_000_000_000i64);
    assert_eq!(v["FileStatus"]["accessTime"], 1_600_000_002_000i64);
    let v: serde_json::Value = c
        .put(g.hdfs("/data/in/a.bin", "RENAME", "&destination=/data/b.bin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["boolean"], true);
    let v: serde_json::Value = c
        .put(g.hdfs("/data/missing", "RENAME", "&destination=/data/c.bin"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["boolean"], false);
    // Errors: APPEND, unknown op, bad offsets, paths above the root, missing files.
    let r = c
        .post(g.hdfs("/data/b.bin", "APPEND", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["RemoteException"]["javaClassName"],
        "java.lang.UnsupportedOperationException"
    );
    let r = c
        .get(g.hdfs("/data", "FROBNICATE", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["RemoteException"]["exception"],
        "IllegalArgumentException"
    );
    // An oversized header section: Hadoop's RemoteException with 431, and nothing created.
    let r = c
        .put(g.hdfs("/data/huge", "MKDIRS", ""))
        .header("x-pad", "p".repeat(70_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["RemoteException"]["exception"],
        "IllegalArgumentException"
    );
    let r = c
        .get(g.hdfs("/data/huge", "GETFILESTATUS", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for bad in ["&offset=-1", "&offset=abc", "&offset=999999999"] {
        let r = c
            .get(g.hdfs("/data/b.bin", "OPEN", bad))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = c
        .get(g.hdfs("/a/..%2F..%2Fetc", "GETFILESTATUS", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(g.hdfs("/nope", "GETFILESTATUS", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["RemoteException"]["exception"], "FileNotFoundException");
    let v: serde_json::Value = c
        .delete(g.hdfs("/data", "DELETE", "&recursive=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["boolean"], true);
    let v: serde_json::Value = c
        .delete(g.hdfs("/data", "DELETE", ""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["boolean"], false);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_objects_multipart_and_auth() {
    let g = Gateway::start().await;
    assert_eq!(g.s3(Method::PUT, "/bkt", vec![], &[]).await.status(), 200);
    assert_eq!(g.s3(Method::HEAD, "/bkt", vec![], &[]).await.status(), 200);
    let r = g.s3(Method::PUT, "/bkt", vec![], &[]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("BucketAlreadyOwnedByYou"));
    // Put, head, get with ranges, metadata.
    let body = data(100_000);
    let r = g
        .s3(
            Method::PUT,
            "/bkt/dir/obj.bin",
            body.clone(),
            &[("x-amz-meta-color", "blue"), ("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(
        etag,
        format!("\"{}\"", hex::encode(md5::Md5::digest(&body)))
    );
    let r = g.s3(Method::HEAD, "/bkt/dir/obj.bin", vec![], &[]).await;
    assert_eq!(r.headers()["x-amz-meta-color"], "blue");
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    let r = g
        .s3(
            Method::GET,
            "/bkt/dir/obj.bin",
            vec![],
            &[("range", "bytes=10-19")],
        )
        .await;
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], &body[10..20]);
    let r = g
        .s3(
            Method::GET,
            "/bkt/dir/obj.bin",
            vec![],
            &[("range", "bytes=200000-")],
        )
        .await;
    assert_eq!(r.status(), 416);
    let r = g.s3(Method::GET, "/bkt/dir/obj.bin", vec![], &[]).await;
    assert!(r.bytes().await.unwrap()[..] == body[..]);
    // A signed streaming (aws-chunked) upload: stored when every chunk signature holds; a
    // byte changed after signing is refused with SignatureDoesNotMatch and leaves no object.
    let chunks = vec![data(70_000), data(1000)];
    let r = g.s3_streaming("/bkt/streamed.bin", &chunks, false).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = g.s3(Method::GET, "/bkt/streamed.bin", vec![], &[]).await;
    assert_eq!(r.bytes().await.unwrap().len(), 71_000);
    let r = g.s3_streaming("/bkt/tampered.bin", &chunks, true).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>SignatureDoesNotMatch</Code>"));
    let r = g.s3(Method::HEAD, "/bkt/tampered.bin", vec![], &[]).await;
    assert_eq!(r.status(), 404);
    // Oversized header sections and metadata: S3's XML errors, and no object appears.
    let big = "v".repeat(9000);
    let r = g
        .s3(
            Method::PUT,
            "/bkt/big-header",
            b"x".to_vec(),
            &[("x-pad", &big)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>RequestHeaderSectionTooLarge</Code>"));
    let meta = "m".repeat(2100);
    let r = g
        .s3(
            Method::PUT,
            "/bkt/big-meta",
            b"x".to_vec(),
            &[("x-amz-meta-notes", &meta)],
        )
        .await;
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<Code>MetadataTooLarge</Code>"));
    for key in ["/bkt/big-header", "/bkt/big-meta"] {
        assert_eq!(g.s3(Method::HEAD, key, vec![], &[]).await.status(), 404);
    }
    // Listings: v2 with delimiter, v1.
    g.s3(Method::PUT, "/bkt/top.txt", b"hi".to_vec(), &[]).await;
    let t = g
        .s3(Method::GET, "/bkt?list-type=2&delimiter=%2F", vec![], &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("<Key>top.txt</Key>") && t.contains("<Prefix>dir/</Prefix>"),
        "{t}"
    );
    assert!(!t.contains("alluvium"), "{t}");
    let t = g
        .s3(Method::GET, "/bkt?list-type=2&max-keys=1", vec![], &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("<IsTruncated>true</IsTruncated>") && t.contains("<Key>dir/obj.bin</Key>"),
        "{t}"
    );
    let t = g
        .s3(Method::GET, "/bkt?prefix=dir", vec![], &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("<Key>dir/obj.bin</Key>") && !t.contains("top.txt"),
        "{t}"
    );
    let t = g
        .s3(Method::GET, "/", vec![], &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        t.contains("<Name>bkt</Name>") && !t.contains("alluvium_s3"),
        "{t}"
    );
    // Copy.
    let r = g
        .s3(
            Method::PUT,
            "/bkt/copy.bin",
            vec![],
            &[("x-amz-copy-source", "/bkt/dir/obj.bin")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = g.s3(Method::HEAD, "/bkt/copy.bin", vec![], &[]).await;
    assert_eq!(r.headers()["x-amz-meta-color"], "blue");
    // Multipart: two parts (5 MiB + 1 KiB), list parts, complete, multipart ETag.
    let t = g
        .s3(Method::POST, "/bkt/big.bin?uploads", vec![], &[])
        .await
        .text()
        .await
        .unwrap();
    let id = t
        .split("<UploadId>")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let p1 = data(5 << 20);
    let p2 = data(1024);
    let e1 = g
        .s3(
            Method::PUT,
            &format!("/bkt/big.bin?partNumber=1&uploadId={id}"),
            p1.clone(),
            &[],
        )
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let e2 = g
        .s3(
            Method::PUT,
            &format!("/bkt/big.bin?partNumber=2&uploadId={id}"),
            p2.clone(),
            &[],
        )
        .await
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let t = g
        .s3(
            Method::GET,
            &format!("/bkt/big.bin?uploadId={id}"),
            vec![],
            &[],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(t.contains("<PartNumber>2</PartNumber>"), "{t}");
    let t = g
        .s3(Method::GET, "/bkt?uploads", vec![], &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(t.contains(&id), "{t}");
    let xml = format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>");
    let r = g
        .s3(
            Method::POST,
            &format!("/bkt/big.bin?uploadId={id}"),
            xml.into_bytes(),
            &[],
        )
        .await;
    assert_eq!(r.status(), 200);
    let t = r.text().await.unwrap();
    assert!(
        t.contains("-2&quot;</ETag>") || t.contains("-2\"</ETag>"),
        "{t}"
    );
    let got = g
        .s3(Method::GET, "/bkt/big.bin", vec![], &[])
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(got.len(), p1.len() + p2.len());
    assert!(got[..p1.len()] == p1[..] && got[p1.len()..] == p2[..]);
    // Abort of an unknown upload.
    let r = g
        .s3(
            Method::DELETE,
            &format!("/bkt/big.bin?uploadId={id}"),
            vec![],
            &[],
        )
        .await;
    assert_eq!(r.status(), 404);
    // Auth: wrong secret, unknown key, no signature. Nothing is written.
    let r = g
        .s3_with(Method::PUT, "/bkt/evil", b"x".to_vec(), &[], KEY, "wrong")
        .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SignatureDoesNotMatch"));
    let r = g
        .s3_with(
            Method::PUT,
            "/bkt/evil",
            b"x".to_vec(),
            &[],
            "NOKEY",
            SECRET,
        )
        .await;
    assert!(r.text().await.unwrap().contains("InvalidAccessKeyId"));
    let addr = g.proxy().s3_addr().unwrap();
    let r = g
        .http
        .put(format!("http://{addr}/bkt/evil"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("AccessDenied"));
    assert_eq!(
        g.s3(Method::HEAD, "/bkt/evil", vec![], &[]).await.status(),
        404
    );
    // Bad keys, unsupported sub-resources, DeleteObjects, non-empty bucket.
    assert_eq!(
        g.s3(Method::GET, "/bkt/a/..%2F..%2Fx", vec![], &[])
            .await
            .status(),
        400
    );
    assert_eq!(
        g.s3(Method::GET, "/bkt?acl", vec![], &[]).await.status(),
        501
    );
    assert_eq!(
        g.s3(Method::DELETE, "/bkt", vec![], &[]).await.status(),
        409
    );
    let xml = "<Delete><Object><Key>top.txt</Key></Object><Object><Key>dir/obj.bin</Key></Object><Object><Key>copy.bin</Key></Object><Object><Key>big.bin</Key></Object><Object><Key>streamed.bin</Key></Object></Delete>";
    let t = g
        .s3(Method::POST, "/bkt?delete", xml.as_bytes().to_vec(), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(t.contains("<Deleted><Key>top.txt</Key></Deleted>"), "{t}");
    // The now-empty "dir" directory remains as a folder; delete it, then the bucket.
    g.s3(Method::DELETE, "/bkt/dir/", vec![], &[]).await;
    assert_eq!(
        g.s3(Method::DELETE, "/bkt", vec![], &[]).await.status(),
        204
    );
    assert_eq!(g.s3(Method::HEAD, "/bkt", vec![], &[]).await.status(), 404);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gateway_can_be_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.master.bind_host = "127.0.0.1".into();
    c.master.rpc_port = 0;
    c.master.web_port = 0;
    c.master.metastore_dir = dir.path().join("meta");
    c.master.root_ufs = dir.path().join("ufs").display().to_string();
    let master = MasterServer::start(c.clone()).await.unwrap();
    c.master_address = master.rpc_addr().to_string();
    c.proxy.bind_host = "127.0.0.1".into();
    c.proxy.s3_port = 0;
    c.proxy.webhdfs_port = 0;
    c.proxy.s3_enabled = false;
    let proxy = ProxyServer::start(c.clone()).await.unwrap();
    assert_eq!(proxy.s3_addr(), None);
    let addr = proxy.webhdfs_addr().expect("WebHDFS stays on");
    let r = reqwest::get(format!(
        "http://{addr}/webhdfs/v1/?op=GETFILESTATUS&user.name=root"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    proxy.shutdown().await.unwrap();
    c.proxy.webhdfs_enabled = false;
    let e = ProxyServer::start(c).await.err().expect("nothing to serve");
    assert_eq!(e.code, alluvium_common::ErrorCode::InvalidArgument);
    master.shutdown().await.unwrap();
}
