//! `fsadmin report`.

use alluvium_common::{ByteSize, Result};
use serde_json::json;

use super::format;
use super::metrics_report;
use super::out;
use super::ReportCategory;
use alluvium_client::FileSystem;

pub async fn report(fs: &FileSystem, category: ReportCategory, json: bool) -> Result<()> {
    match category {
        ReportCategory::Summary => {
            let m = fs.master_info().await?;
            if json {
                print(&format::master_json(&m));
            } else {
                out::line(format::report_summary(&m));
            }
        }
        ReportCategory::Capacity => {
            let workers = fs.workers().await?;
            if json {
                print(&serde_json::Value::Array(
                    workers.iter().map(format::worker_json).collect(),
                ));
            } else {
                out::line(format::report_capacity(
                    &workers,
                    alluvium_common::time::now_ms(),
                ));
            }
        }
        ReportCategory::Ufs => {
            let mounts = fs.mount_table().await?;
            if json {
                print(&serde_json::Value::Array(
                    mounts.iter().map(format::mount_json).collect(),
                ));
            } else {
                for m in &mounts {
                    out::line(format::mount_line(m));
                }
            }
        }
        ReportCategory::Metrics => {
            let m = fs.master_info().await?;
            let workers = fs.workers().await?;
            let blocks: u64 = workers.iter().map(|w| w.block_count).sum();
            let text = fs.master_metrics_text().await?;
            let families = metrics_report::parse(&text);
            if json {
                print(&json!({
                    "files": m.file_count,
                    "directories": m.directory_count,
                    "blocks": m.block_count,
                    "cachedBlockCopies": blocks,
                    "capacityBytes": m.capacity_bytes,
                    "usedBytes": m.used_bytes,
                    "liveWorkers": m.live_workers,
                    "lostWorkers": m.lost_workers,
                    "metrics": metrics_report::to_json(&families),
                }));
            } else {
                out::line("Cluster metrics:");
                out::line(format!("    Files: {}", m.file_count));
                out::line(format!("    Directories: {}", m.directory_count));
                out::line(format!("    Blocks: {}", m.block_count));
                out::line(format!("    Cached block copies: {blocks}"));
                out::line(format!(
                    "    Used: {} of {} ({}%)",
                    ByteSize::human(m.used_bytes),
                    ByteSize::human(m.capacity_bytes),
                    format::percent(m.used_bytes, m.capacity_bytes)
                ));
                for t in &m.tiers {
                    out::line(format!(
                        "    Tier {}: {} blocks, {} of {}",
                        t.alias,
                        t.block_count,
                        ByteSize::human(t.used_bytes),
                        ByteSize::human(t.capacity_bytes)
                    ));
                }
                out::line("");
                out::line(metrics_report::render(&families));
            }
        }
    }
    Ok(())
}

fn print(v: &serde_json::Value) {
    out::line(serde_json::to_string_pretty(v).unwrap_or_default());
}
