//! S3 and WebHDFS gateway GET of the sequential file, through `alluvium_proxy::ProxyServer`
//! started in this process against the bench cluster, beside a native client read of the same
//! file in the same run. Bodies are streamed and counted, never held.

use std::time::Instant;

use alluvium_common::{Error, Result};
use alluvium_proxy::ProxyServer;
use axum::http::Method;

use super::{client_read, ensure_seq_file, SEQ_FILE};
use crate::baseline;
use crate::cluster::{current_user, gateway_addrs, BenchCluster, S3_KEY, S3_REGION, S3_SECRET};
use crate::report::{Report, Stat};
use crate::s3sign;
use crate::Plan;

pub async fn run(c: &BenchCluster, report: &mut Report, plan: &Plan) -> Result<()> {
    ensure_seq_file(c, plan.size).await?;
    let proxy = c.start_gateways().await?;
    let measured = measure(c, &proxy, plan).await;
    let stopped = proxy.shutdown().await;
    let (native, s3, webhdfs) = measured?;
    stopped?;
    let mib = plan.size >> 20;
    for (name, values) in [("S3", &s3), ("WebHDFS", &webhdfs)] {
        report.add(
            format!("{name} gateway GET of the {mib} MiB file"),
            "MiB/s",
            Stat::of(values),
            "native client read of the same file",
            Some(Stat::of(&native)),
            None,
        );
        if name == "S3" {
            report.note(
                "gateways in the bench process on loopback HTTP/1.1 (S3 signed with SigV4, \
                 WebHDFS OPEN with user.name), bodies streamed by reqwest; the gateways and the \
                 native client both read short-circuit from the same worker",
            );
        }
    }
    Ok(())
}

async fn measure(
    c: &BenchCluster,
    proxy: &ProxyServer,
    plan: &Plan,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let fs = c.client(true).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
    let (s3_addr, webhdfs_addr) = gateway_addrs(proxy)?;
    let s3_host = s3_addr.to_string();
    let webhdfs = format!(
        "http://{webhdfs_addr}/webhdfs/v1{SEQ_FILE}?op=OPEN&user.name={}",
        current_user()
    );
    let (mut native, mut s3, mut hdfs) = (vec![], vec![], vec![]);
    for _ in 0..plan.runs {
        native.push(client_read(&fs, SEQ_FILE).await?);

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let headers = s3sign::signed_headers(
            &Method::GET,
            &s3_host,
            SEQ_FILE,
            S3_KEY,
            S3_SECRET,
            S3_REGION,
            now,
        )?;
        let start = Instant::now();
        let req = http
            .get(format!("http://{s3_host}{SEQ_FILE}"))
            .headers(headers);
        s3.push(get_rate(req, plan.size, start, "S3 GetObject").await?);

        let start = Instant::now();
        hdfs.push(get_rate(http.get(&webhdfs), plan.size, start, "WebHDFS OPEN").await?);
    }
    Ok((native, s3, hdfs))
}

/// Sends `req`, streams the body counting bytes, and returns MiB/s since `start`.
async fn get_rate(
    req: reqwest::RequestBuilder,
    expected: u64,
    start: Instant,
    what: &str,
) -> Result<f64> {
    let mut resp = req
        .send()
        .await
        .map_err(|e| Error::unavailable(format!("{what}: {e}")))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(Error::internal(format!(
            "{what} of {SEQ_FILE}: HTTP {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    let mut total = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| Error::unavailable(format!("{what}: body: {e}")))?
    {
        total += chunk.len() as u64;
    }
    if total != expected {
        return Err(Error::internal(format!(
            "{what} of {SEQ_FILE}: {total} of {expected} bytes"
        )));
    }
    Ok(baseline::mib_per_s(total, start))
}
