//! The operator's gRPC view of a master (`GrpcMasters`) against a real master: RocksDB in a temp
//! dir, a local-directory UFS, gRPC on 127.0.0.1:0.

use std::time::Duration;

use alluvium_common::identity::Caller;
use alluvium_common::Config;
use alluvium_common::ErrorCode;
use alluvium_master::MasterServer;
use alluvium_operator::master_api::{
    GrpcMasters, MasterApi, MasterErrorKind, MasterTarget, MountRequest,
};

async fn master(dir: &std::path::Path) -> MasterServer {
    let mut config = Config::default();
    config.master.bind_host = "127.0.0.1".into();
    config.master.hostname = "127.0.0.1".into();
    config.master.rpc_port = 0;
    config.master.web_port = 0;
    config.master.metastore_dir = dir.join("meta");
    config.master.root_ufs = dir.join("root").display().to_string();
    MasterServer::start(config).await.expect("master starts")
}

fn request(ufs: &str, read_only: bool) -> MountRequest {
    MountRequest {
        path: "/data".into(),
        ufs: ufs.into(),
        read_only,
        shared: false,
        options: [("sync_interval".to_string(), "0s".to_string())].into(),
    }
}

#[tokio::test]
async fn mount_is_idempotent_usage_is_summed_and_unmount_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let ufs_dir = dir.path().join("bucket");
    std::fs::create_dir_all(ufs_dir.join("sub")).unwrap();
    std::fs::write(ufs_dir.join("a.bin"), vec![1u8; 1000]).unwrap();
    std::fs::write(ufs_dir.join("sub/b.bin"), vec![2u8; 500]).unwrap();
    let server = master(dir.path()).await;
    let target = MasterTarget {
        endpoint: server.rpc_addr().to_string(),
        secret: None,
    };
    // The master's own user is its superuser, as `alluvium` is in the image.
    let masters = GrpcMasters::new(&Caller::current_process().user);
    let ufs = format!("file://{}", ufs_dir.display());

    let id = masters
        .ensure_mount(&target, request(&ufs, false), true)
        .await
        .unwrap();
    assert_eq!(
        masters
            .ensure_mount(&target, request(&ufs, false), false)
            .await
            .unwrap(),
        id,
        "mounting the same UFS again is a no-op"
    );
    // A changed spec updates the mount in place: same id.
    assert_eq!(
        masters
            .ensure_mount(&target, request(&ufs, true), true)
            .await
            .unwrap(),
        id
    );

    let usage = masters.path_usage(&target, "/data").await.unwrap();
    assert_eq!(usage.total_bytes, 1500);
    assert_eq!(usage.cached_bytes, 0, "no worker holds anything");

    let info = masters.usage(&target).await.unwrap();
    assert_eq!(info.live_workers, 0);

    masters.unmount(&target, "/data").await.unwrap();
    masters
        .unmount(&target, "/data")
        .await
        .expect("unmounting twice is fine");
    let err = masters.path_usage(&target, "/data").await.unwrap_err();
    assert!(err.to_string().contains("/data"), "{err}");
    // The master answered: a refusal by its code, not an outage.
    assert_eq!(
        err.kind,
        MasterErrorKind::Rejected(ErrorCode::NotFound),
        "{err}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unreachable_master_is_a_clear_error() {
    let target = MasterTarget {
        // Nothing listens on port 1.
        endpoint: "127.0.0.1:1".into(),
        secret: None,
    };
    let masters = GrpcMasters::new("alluvium");
    let err = tokio::time::timeout(Duration::from_secs(20), masters.usage(&target))
        .await
        .expect("fails fast")
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("master 127.0.0.1:1: cannot connect"),
        "{err}"
    );
    assert!(err.is_unreachable(), "{err:?}");
}

fn mount_table_entry(
    table: &alluvium_proto::GetMountTableResponse,
    path: &str,
) -> alluvium_proto::MountInfo {
    table
        .mounts
        .iter()
        .find(|m| m.path == path)
        .cloned()
        .unwrap_or_else(|| panic!("{path} not in {:?}", table.mounts))
}

async fn mount_table(addr: &str) -> alluvium_proto::GetMountTableResponse {
    let caller = Caller::current_process();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let interceptor = alluvium_common::identity::IdentityInterceptor::new(&caller, None).unwrap();
    let mut c = alluvium_proto::file_system_master_client::FileSystemMasterClient::with_interceptor(
        channel,
        interceptor,
    );
    c.get_mount_table(alluvium_proto::Empty {})
        .await
        .unwrap()
        .into_inner()
}

/// A Mount whose path is nested (`/mnt/logs/2026`) gets its parents made; a later change of its
/// options reaches the master in place (same mount id, new sync interval and read-only flag).
#[tokio::test]
async fn nested_paths_get_parents_and_option_changes_update_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let ufs_dir = dir.path().join("logs");
    std::fs::create_dir_all(&ufs_dir).unwrap();
    std::fs::write(ufs_dir.join("day1.log"), b"one").unwrap();
    let server = master(dir.path()).await;
    let addr = server.rpc_addr().to_string();
    let target = MasterTarget {
        endpoint: addr.clone(),
        secret: None,
    };
    let masters = GrpcMasters::new(&Caller::current_process().user);
    let ufs = format!("file://{}", ufs_dir.display());
    let mut req = request(&ufs, false);
    req.path = "/mnt/logs/2026".into();
    let id = masters
        .ensure_mount(&target, req.clone(), true)
        .await
        .expect("parents of a nested mount path are made");
    let before = mount_table_entry(&mount_table(&addr).await, "/mnt/logs/2026");
    assert_eq!(before.sync_interval_ms, 0);

    req.options.insert("sync_interval".into(), "17m".into());
    // Unchanged fingerprint: nothing is sent.
    masters
        .ensure_mount(&target, req.clone(), false)
        .await
        .unwrap();
    let same = mount_table_entry(&mount_table(&addr).await, "/mnt/logs/2026");
    assert_eq!(
        same.sync_interval_ms, 0,
        "no update without a changed fingerprint"
    );
    req.read_only = true;
    assert_eq!(masters.ensure_mount(&target, req, true).await.unwrap(), id);
    let after = mount_table_entry(&mount_table(&addr).await, "/mnt/logs/2026");
    assert_eq!(after.mount_id, id, "updated in place, not remounted");
    assert_eq!(after.sync_interval_ms, 17 * 60 * 1000);
    assert!(after.read_only);
    assert_eq!(after.mounted_at_ms, before.mounted_at_ms);
    server.shutdown().await.unwrap();
}
