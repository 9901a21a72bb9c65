//! Metadata operations (create, get status, list, rename, delete) at concurrency 1 and 40, beside
//! a loopback TCP round trip.

use alluvium_client::DeleteOptions;
use alluvium_common::Result;

use super::{blocking, create_opts, run_ops};
use crate::baseline::{self, percentile};
use crate::cluster::BenchCluster;
use crate::report::{Report, Stat};
use crate::Plan;

pub async fn run(c: &BenchCluster, report: &mut Report, plan: &Plan) -> Result<()> {
    let files = plan.files;
    let rtt = blocking(|| baseline::tcp_round_trips(10_000)).await?;
    let rtt_p50 = percentile(&rtt, 50.0);
    let rtt_qps = 1e6 / rtt_p50.max(1e-3);
    report.add_absolute(
        "loopback TCP round trip (baseline)",
        "µs p50",
        Stat::of(&[rtt_p50]),
        format!("p99 {:.1} µs", percentile(&rtt, 99.0)),
        None,
        None,
    );
    let fs = c.client(true).await?;
    for concurrency in [1usize, 40] {
        let dir = format!("/meta-c{concurrency}");
        // 100 files per directory.
        let path = {
            let dir = dir.clone();
            move |i: usize| format!("{dir}/d{}/f{i}", i / 100)
        };
        let mut rows: Vec<(&str, f64, Vec<f64>)> = Vec::new();

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, p) = (f.clone(), p(i));
            async move {
                f.create_file(&p, create_opts())
                    .await?
                    .close()
                    .await
                    .map(|_| ())
            }
        })
        .await?;
        rows.push(("create", qps, lat));

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, p) = (f.clone(), p(i));
            async move { f.get_status(&p).await.map(|_| ()) }
        })
        .await?;
        rows.push(("get status", qps, lat));

        let (f, d) = (fs.clone(), dir.clone());
        let dirs = files.div_ceil(100);
        let (qps, lat) = run_ops(dirs.max(1) * 10, concurrency, move |i| {
            let (f, p) = (f.clone(), format!("{d}/d{}", i % dirs.max(1)));
            async move { f.list_status(&p, false).await.map(|_| ()) }
        })
        .await?;
        rows.push(("list (100 entries)", qps, lat));

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, from) = (f.clone(), p(i));
            async move { f.rename(&from, &format!("{from}.r")).await }
        })
        .await?;
        rows.push(("rename", qps, lat));

        let (f, p) = (fs.clone(), path.clone());
        let (qps, lat) = run_ops(files, concurrency, move |i| {
            let (f, p) = (f.clone(), format!("{}.r", p(i)));
            async move { f.delete(&p, DeleteOptions::default()).await }
        })
        .await?;
        rows.push(("delete", qps, lat));

        for (name, qps, lat) in rows {
            let p50 = percentile(&lat, 50.0);
            let p99 = percentile(&lat, 99.0);
            let target = match (concurrency, name) {
                (1, _) => Some(("p50 <= 5x RTT".to_string(), p50 <= 5.0 * rtt_p50)),
                (40, "create") => Some((">= 10000/s".to_string(), qps >= 10_000.0)),
                (40, "get status") => Some((">= 30000/s".to_string(), qps >= 30_000.0)),
                _ => None,
            };
            report.add_absolute(
                format!(
                    "metadata {name}, concurrency {concurrency} (p50 {p50:.0} µs, p99 {p99:.0} µs)"
                ),
                "ops/s",
                Stat::of(&[qps]),
                "loopback round trips/s at concurrency 1",
                Some(Stat::of(&[rtt_qps])),
                target,
            );
        }
        fs.delete(
            &dir,
            DeleteOptions {
                recursive: true,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}
