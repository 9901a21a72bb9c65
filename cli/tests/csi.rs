//! `alluvium csi` from the real binary, driven the way the kubelet and external-provisioner drive
//! it: gRPC over its unix socket against a real cluster (master and worker processes), real FUSE
//! mounts, real bind mounts into temp "pod" directories. Prints a transcript of the calls.
//!
//! Run: `cargo test -p alluvium-cli --test csi -- --nocapture --test-threads=1` (as root, with
//! /dev/fuse).

mod csi_support;
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alluvium_client::FileSystem;
use alluvium_proto::csi::v1::controller_client::ControllerClient;
use alluvium_proto::csi::v1::identity_client::IdentityClient;
use alluvium_proto::csi::v1::node_client::NodeClient;
use alluvium_proto::csi::v1::volume_capability::access_mode::Mode;
use alluvium_proto::csi::v1::volume_capability::{
    AccessMode, AccessType, BlockVolume, MountVolume,
};
use alluvium_proto::csi::v1::*;
use csi_support::{Local, Plugin, UnmountUnder};
use support::*;
use tonic::transport::Channel;
use tonic::Code;

const MIB: i64 = 1 << 20;

struct Clients {
    identity: IdentityClient<Channel>,
    controller: ControllerClient<Channel>,
    node: NodeClient<Channel>,
}

impl Clients {
    fn new(ch: Channel) -> Self {
        Self {
            identity: IdentityClient::new(ch.clone()),
            controller: ControllerClient::new(ch.clone()),
            node: NodeClient::new(ch),
        }
    }
}

fn mount_cap(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

fn block_cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: Mode::SingleNodeWriter as i32,
        }),
    }
}

/// One transcript line per call: `-> Call(args): OK ...` or the gRPC code.
fn show<T: std::fmt::Debug>(call: &str, r: &Result<tonic::Response<T>, tonic::Status>) {
    match r {
        Ok(resp) => {
            let body = format!("{:?}", resp.get_ref());
            let body: String = body.chars().take(220).collect();
            println!("-> {call}: OK {body}");
        }
        Err(s) => println!("-> {call}: {:?} ({})", s.code(), s.message()),
    }
}

fn ok<T: std::fmt::Debug>(call: &str, r: Result<tonic::Response<T>, tonic::Status>) -> T {
    show(call, &r);
    match r {
        Ok(resp) => resp.into_inner(),
        Err(s) => panic!("{call} failed: {s:?}"),
    }
}

fn code<T: std::fmt::Debug>(call: &str, r: Result<tonic::Response<T>, tonic::Status>, want: Code) {
    show(call, &r);
    match r {
        Ok(v) => panic!("{call}: expected {want:?}, got OK {:?}", v.get_ref()),
        Err(s) => assert_eq!(s.code(), want, "{call}: {}", s.message()),
    }
}

fn create_req(name: &str, required: i64, params: &[(&str, &str)]) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange {
            required_bytes: required,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_cap(Mode::MultiNodeMultiWriter)],
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn stage_req(v: &Volume, staging: &Path) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(mount_cap(Mode::MultiNodeMultiWriter)),
        volume_context: v.volume_context.clone(),
        ..Default::default()
    }
}

fn publish_req(v: &Volume, staging: &Path, target: &Path, ro: bool) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(mount_cap(Mode::MultiNodeMultiWriter)),
        readonly: ro,
        volume_context: v.volume_context.clone(),
        ..Default::default()
    }
}

fn unpublish_req(v: &Volume, target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: v.volume_id.clone(),
        target_path: target.display().to_string(),
    }
}

fn unstage_req(v: &Volume, staging: &Path) -> NodeUnstageVolumeRequest {
    NodeUnstageVolumeRequest {
        volume_id: v.volume_id.clone(),
        staging_target_path: staging.display().to_string(),
    }
}

fn mount_count(path: &Path) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap()))
        .count()
}

/// A kubelet-like layout: `<dir>/kubelet/plugins/.../globalmount` and
/// `<dir>/kubelet/pods/<pod>/volumes/.../mount`.
fn kubelet_paths(dir: &Path, vol: &str) -> (PathBuf, PathBuf, PathBuf) {
    let kubelet = dir.join("kubelet");
    let staging = kubelet
        .join("plugins/kubernetes.io/csi/csi.alluvium.io")
        .join(vol)
        .join("globalmount");
    std::fs::create_dir_all(&staging).unwrap();
    let pod = |p: &str| {
        let parent = kubelet
            .join("pods")
            .join(p)
            .join("volumes/kubernetes.io~csi")
            .join(vol);
        // The kubelet makes the parent; the plugin makes (and removes) `mount` itself.
        std::fs::create_dir_all(&parent).unwrap();
        parent.join("mount")
    };
    (staging, pod("pod-a"), pod("pod-b"))
}

fn connect_fs(rt: &tokio::runtime::Runtime, cluster: &Cluster) -> FileSystem {
    rt.block_on(FileSystem::connect(&cluster.client_config()))
        .unwrap()
}

#[test]
fn kubelet_order_stage_publish_use_unpublish_unstage() {
    let cluster = Cluster::start(ClusterOptions::default());
    let master = format!("127.0.0.1:{}", cluster.master_rpc);
    let dir = cluster.dir.path().to_path_buf();
    let rt = runtime();
    let fs = connect_fs(&rt, &cluster);
    let _unmount = UnmountUnder(dir.clone());
    let mut plugin = Plugin::start(&dir, &master, &dir.join("state"), &[]);
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    println!(
        "== kubelet-order transcript (socket {}) ==",
        plugin.socket.display()
    );

    // Registration and start-up: what node-driver-registrar, the kubelet and the provisioner ask.
    let info = ok(
        "GetPluginInfo",
        rt.block_on(c.identity.get_plugin_info(GetPluginInfoRequest {})),
    );
    assert_eq!(info.name, "csi.alluvium.io");
    assert!(!info.vendor_version.is_empty());
    let caps = ok(
        "GetPluginCapabilities",
        rt.block_on(
            c.identity
                .get_plugin_capabilities(GetPluginCapabilitiesRequest {}),
        ),
    );
    assert!(caps.capabilities.iter().any(|c| matches!(
        &c.r#type,
        Some(plugin_capability::Type::Service(s))
            if s.r#type == plugin_capability::service::Type::ControllerService as i32
    )));
    let probe = ok("Probe", rt.block_on(c.identity.probe(ProbeRequest {})));
    assert_eq!(probe.ready, Some(true));
    let ni = ok(
        "NodeGetInfo",
        rt.block_on(c.node.node_get_info(NodeGetInfoRequest {})),
    );
    assert_eq!(ni.node_id, "node-1");
    assert_eq!(
        ni.accessible_topology.unwrap().segments["topology.csi.alluvium.io/node"],
        "node-1"
    );
    let ncaps = ok(
        "NodeGetCapabilities",
        rt.block_on(c.node.node_get_capabilities(NodeGetCapabilitiesRequest {})),
    );
    let ncap_types: Vec<i32> = ncaps
        .capabilities
        .iter()
        .filter_map(|c| {
            c.r#type
                .as_ref()
                .map(|node_service_capability::Type::Rpc(r)| r.r#type)
        })
        .collect();
    use node_service_capability::rpc::Type as NodeCap;
    assert!(ncap_types.contains(&(NodeCap::StageUnstageVolume as i32)));
    assert!(ncap_types.contains(&(NodeCap::GetVolumeStats as i32)));
    let ccaps = ok(
        "ControllerGetCapabilities",
        rt.block_on(
            c.controller
                .controller_get_capabilities(ControllerGetCapabilitiesRequest {}),
        ),
    );
    assert_eq!(ccaps.capabilities.len(), 1);

    // Provisioning (external-provisioner): a directory per PVC under basePath, idempotent.
    let params = [("basePath", "/pvc"), ("writeType", "CACHE_THROUGH")];
    let req = create_req("pvc-kubelet-order", 64 * MIB, &params);
    let vol = ok(
        "CreateVolume(pvc-kubelet-order, 64MiB)",
        rt.block_on(c.controller.create_volume(req.clone())),
    )
    .volume
    .unwrap();
    assert_eq!(
        vol.volume_id,
        format!("alluvium://{master}/pvc/pvc-kubelet-order")
    );
    assert_eq!(vol.capacity_bytes, 64 * MIB);
    assert_eq!(vol.volume_context["path"], "/pvc/pvc-kubelet-order");
    assert_eq!(vol.volume_context["capacityBytes"], (64 * MIB).to_string());
    let again = ok(
        "CreateVolume(same name, same capacity)",
        rt.block_on(c.controller.create_volume(req.clone())),
    )
    .volume
    .unwrap();
    assert_eq!(again, vol);
    code(
        "CreateVolume(same name, 128MiB)",
        rt.block_on(c.controller.create_volume(create_req(
            "pvc-kubelet-order",
            128 * MIB,
            &params,
        ))),
        Code::AlreadyExists,
    );
    let st = rt
        .block_on(fs.get_status("/pvc/pvc-kubelet-order"))
        .unwrap();
    assert!(st.is_folder);
    assert!(rt
        .block_on(fs.exists("/pvc/.alluvium-csi/pvc-kubelet-order"))
        .unwrap());
    let valid = ok(
        "ValidateVolumeCapabilities",
        rt.block_on(
            c.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: vol.volume_id.clone(),
                    volume_context: vol.volume_context.clone(),
                    volume_capabilities: vec![mount_cap(Mode::MultiNodeMultiWriter)],
                    ..Default::default()
                }),
        ),
    );
    assert!(valid.confirmed.is_some());

    // The kubelet: stage once, publish per pod.
    let (staging, target_a, target_b) = kubelet_paths(&dir, "pv-order");
    ok(
        "NodeStageVolume",
        rt.block_on(c.node.node_stage_volume(stage_req(&vol, &staging))),
    );
    ok(
        "NodeStageVolume(again)",
        rt.block_on(c.node.node_stage_volume(stage_req(&vol, &staging))),
    );
    assert_eq!(
        mount_count(&staging),
        1,
        "one FUSE mount at the staging path"
    );
    ok(
        "NodePublishVolume(pod-a, rw)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_a, false)),
        ),
    );
    ok(
        "NodePublishVolume(pod-a, rw, again)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_a, false)),
        ),
    );
    assert_eq!(mount_count(&target_a), 1);
    code(
        "NodePublishVolume(pod-a, ro: conflicts)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_a, true)),
        ),
        Code::AlreadyExists,
    );

    // The pod reads and writes plain files; they land in the Alluvium namespace.
    let small = b"hello from pod-a\n".to_vec();
    std::fs::write(target_a.join("hello.txt"), &small).unwrap();
    std::fs::create_dir(target_a.join("out")).unwrap();
    let big = data(3 * (1 << 20) + 12345, 7);
    std::fs::write(target_a.join("out/part-0000"), &big).unwrap();
    assert_eq!(std::fs::read(target_a.join("out/part-0000")).unwrap(), big);
    let cat = cluster.fs(&["cat", "/pvc/pvc-kubelet-order/hello.txt"]);
    assert!(cat.status.success(), "{}", stderr(&cat));
    assert_eq!(cat.stdout, small);
    let st = rt
        .block_on(fs.get_status("/pvc/pvc-kubelet-order/out/part-0000"))
        .unwrap();
    assert_eq!(st.length, big.len() as u64);
    println!(
        "   pod-a wrote hello.txt ({} B) and out/part-0000 ({} B); `alluvium fs cat` and the client API see them",
        small.len(),
        big.len()
    );
    // And the other way: a file written through Alluvium shows up in the pod.
    let local = dir.join("from-alluvium.txt");
    std::fs::write(&local, b"written with alluvium fs\n").unwrap();
    let cp = cluster.fs(&[
        "copyFromLocal",
        local.to_str().unwrap(),
        "/pvc/pvc-kubelet-order/from-alluvium.txt",
    ]);
    assert!(cp.status.success(), "{}", stderr(&cp));
    assert_eq!(
        std::fs::read(target_a.join("from-alluvium.txt")).unwrap(),
        b"written with alluvium fs\n"
    );

    let stats = ok(
        "NodeGetVolumeStats(pod-a)",
        rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: target_a.display().to_string(),
            ..Default::default()
        })),
    );
    let usage = &stats.usage[0];
    let used = (small.len() + big.len() + 25) as i64;
    assert_eq!(usage.total, 64 * MIB);
    assert_eq!(usage.used, used);
    assert_eq!(usage.available, 64 * MIB - used);
    assert!(!stats.volume_condition.unwrap().abnormal);

    // A read-only publish for another pod: reads work, writes fail with EROFS.
    ok(
        "NodePublishVolume(pod-b, readonly)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_b, true)),
        ),
    );
    assert_eq!(std::fs::read(target_b.join("hello.txt")).unwrap(), small);
    let err = std::fs::write(target_b.join("nope.txt"), b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ReadOnlyFilesystem, "{err}");
    println!("   pod-b (read-only) reads hello.txt; writing nope.txt fails: {err}");
    assert!(!rt
        .block_on(fs.exists("/pvc/pvc-kubelet-order/nope.txt"))
        .unwrap());
    code(
        "NodeUnstageVolume(while published)",
        rt.block_on(c.node.node_unstage_volume(unstage_req(&vol, &staging))),
        Code::FailedPrecondition,
    );

    // Tear-down in the kubelet's order, each call twice (idempotency).
    for (name, target) in [("pod-a", &target_a), ("pod-b", &target_b)] {
        ok(
            &format!("NodeUnpublishVolume({name})"),
            rt.block_on(c.node.node_unpublish_volume(unpublish_req(&vol, target))),
        );
        ok(
            &format!("NodeUnpublishVolume({name}, again)"),
            rt.block_on(c.node.node_unpublish_volume(unpublish_req(&vol, target))),
        );
        assert_eq!(mount_count(target), 0);
        assert!(!target.exists(), "the plugin removes the target it made");
    }
    ok(
        "NodeUnstageVolume",
        rt.block_on(c.node.node_unstage_volume(unstage_req(&vol, &staging))),
    );
    ok(
        "NodeUnstageVolume(again)",
        rt.block_on(c.node.node_unstage_volume(unstage_req(&vol, &staging))),
    );
    assert_eq!(mount_count(&staging), 0);
    code(
        "NodeGetVolumeStats(after unstage)",
        rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: staging.display().to_string(),
            ..Default::default()
        })),
        Code::NotFound,
    );
    let del = DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        ..Default::default()
    };
    ok(
        "DeleteVolume",
        rt.block_on(c.controller.delete_volume(del.clone())),
    );
    ok(
        "DeleteVolume(again)",
        rt.block_on(c.controller.delete_volume(del)),
    );
    assert!(!rt.block_on(fs.exists("/pvc/pvc-kubelet-order")).unwrap());
    assert!(!rt
        .block_on(fs.exists("/pvc/.alluvium-csi/pvc-kubelet-order"))
        .unwrap());
    assert!(std::fs::read_dir(dir.join("state/staged"))
        .unwrap()
        .next()
        .is_none());

    let m = plugin.metrics();
    assert!(
        m.contains("alluvium_csi_operations_total{operation=\"NodePublishVolume\",code=\"OK\"} 3"),
        "{m}"
    );
    assert!(m.contains("alluvium_csi_operation_duration_seconds_bucket{"));
    println!("== done ==");
}

#[test]
fn invalid_and_missing_arguments_get_the_spec_codes() {
    let cluster = Cluster::start(ClusterOptions::default());
    let master = format!("127.0.0.1:{}", cluster.master_rpc);
    let dir = cluster.dir.path().to_path_buf();
    let rt = runtime();
    let _unmount = UnmountUnder(dir.clone());
    let mut plugin = Plugin::start(&dir, &master, &dir.join("state"), &[]);
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    println!("== error codes ==");

    let mut no_name = create_req("", MIB, &[]);
    code(
        "CreateVolume(no name)",
        rt.block_on(c.controller.create_volume(no_name.clone())),
        Code::InvalidArgument,
    );
    no_name.name = "pvc-x".into();
    no_name.volume_capabilities.clear();
    code(
        "CreateVolume(no capabilities)",
        rt.block_on(c.controller.create_volume(no_name)),
        Code::InvalidArgument,
    );
    let mut block = create_req("pvc-x", MIB, &[]);
    block.volume_capabilities = vec![block_cap()];
    code(
        "CreateVolume(block)",
        rt.block_on(c.controller.create_volume(block)),
        Code::InvalidArgument,
    );
    code(
        "CreateVolume(unknown parameter)",
        rt.block_on(
            c.controller
                .create_volume(create_req("pvc-x", MIB, &[("basepath", "/x")])),
        ),
        Code::InvalidArgument,
    );
    let mut inverted = create_req("pvc-x", 2 * MIB, &[]);
    inverted.capacity_range.as_mut().unwrap().limit_bytes = MIB;
    code(
        "CreateVolume(required > limit)",
        rt.block_on(c.controller.create_volume(inverted)),
        Code::OutOfRange,
    );
    code(
        "DeleteVolume(no id)",
        rt.block_on(c.controller.delete_volume(DeleteVolumeRequest::default())),
        Code::InvalidArgument,
    );
    for id in [
        format!("alluvium://{master}/pvc/never-made"),
        "default/demo/datasets".to_string(),
    ] {
        ok(
            &format!("DeleteVolume({id}: absent)"),
            rt.block_on(c.controller.delete_volume(DeleteVolumeRequest {
                volume_id: id.clone(),
                ..Default::default()
            })),
        );
    }
    code(
        "ValidateVolumeCapabilities(no id)",
        rt.block_on(
            c.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_capabilities: vec![mount_cap(Mode::SingleNodeWriter)],
                    ..Default::default()
                }),
        ),
        Code::InvalidArgument,
    );
    code(
        "ValidateVolumeCapabilities(no capabilities)",
        rt.block_on(
            c.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: format!("alluvium://{master}/pvc/none"),
                    ..Default::default()
                }),
        ),
        Code::InvalidArgument,
    );
    code(
        "ValidateVolumeCapabilities(absent volume)",
        rt.block_on(
            c.controller
                .validate_volume_capabilities(ValidateVolumeCapabilitiesRequest {
                    volume_id: format!("alluvium://{master}/pvc/none"),
                    volume_capabilities: vec![mount_cap(Mode::SingleNodeWriter)],
                    ..Default::default()
                }),
        ),
        Code::NotFound,
    );

    // Node calls. A static volume: the operator's PV names the path in volumeAttributes.
    assert!(cluster.fs(&["mkdir", "/datasets"]).status.success());
    let static_vol = Volume {
        volume_id: "default/demo/datasets".into(),
        volume_context: HashMap::from([
            ("path".to_string(), "/datasets".to_string()),
            ("master".to_string(), master.clone()),
        ]),
        ..Default::default()
    };
    let (staging, target, _) = kubelet_paths(&dir, "pv-static");
    let mut r = stage_req(&static_vol, &staging);
    r.volume_id.clear();
    code(
        "NodeStageVolume(no volume_id)",
        rt.block_on(c.node.node_stage_volume(r)),
        Code::InvalidArgument,
    );
    let mut r = stage_req(&static_vol, &staging);
    r.staging_target_path.clear();
    code(
        "NodeStageVolume(no staging_target_path)",
        rt.block_on(c.node.node_stage_volume(r)),
        Code::InvalidArgument,
    );
    let mut r = stage_req(&static_vol, &staging);
    r.volume_capability = None;
    code(
        "NodeStageVolume(no volume_capability)",
        rt.block_on(c.node.node_stage_volume(r)),
        Code::InvalidArgument,
    );
    let mut r = stage_req(&static_vol, &staging);
    r.volume_context.remove("path");
    code(
        "NodeStageVolume(static PV without 'path')",
        rt.block_on(c.node.node_stage_volume(r)),
        Code::InvalidArgument,
    );
    let mut r = stage_req(&static_vol, &staging);
    r.volume_context
        .insert("path".into(), "/no/such/dir".into());
    code(
        "NodeStageVolume(path missing in Alluvium)",
        rt.block_on(c.node.node_stage_volume(r)),
        Code::NotFound,
    );
    assert_eq!(mount_count(&staging), 0);
    code(
        "NodePublishVolume(not staged)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&static_vol, &staging, &target, false)),
        ),
        Code::FailedPrecondition,
    );
    ok(
        "NodeStageVolume(static)",
        rt.block_on(c.node.node_stage_volume(stage_req(&static_vol, &staging))),
    );
    let mut other = stage_req(&static_vol, &staging);
    other.volume_capability = Some(mount_cap(Mode::MultiNodeReaderOnly));
    code(
        "NodeStageVolume(same path, other capability)",
        rt.block_on(c.node.node_stage_volume(other)),
        Code::AlreadyExists,
    );
    let mut r = publish_req(&static_vol, &staging, &target, false);
    r.target_path.clear();
    code(
        "NodePublishVolume(no target_path)",
        rt.block_on(c.node.node_publish_volume(r)),
        Code::InvalidArgument,
    );
    let mut r = publish_req(&static_vol, &staging, &target, false);
    r.staging_target_path.clear();
    code(
        "NodePublishVolume(no staging_target_path)",
        rt.block_on(c.node.node_publish_volume(r)),
        Code::InvalidArgument,
    );
    let mut r = publish_req(&static_vol, &staging, &target, false);
    r.volume_capability = Some(block_cap());
    code(
        "NodePublishVolume(block capability)",
        rt.block_on(c.node.node_publish_volume(r)),
        Code::InvalidArgument,
    );
    code(
        "NodeUnpublishVolume(no target_path)",
        rt.block_on(c.node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            volume_id: static_vol.volume_id.clone(),
            ..Default::default()
        })),
        Code::InvalidArgument,
    );
    code(
        "NodeUnpublishVolume(no volume_id)",
        rt.block_on(c.node.node_unpublish_volume(NodeUnpublishVolumeRequest {
            target_path: target.display().to_string(),
            ..Default::default()
        })),
        Code::InvalidArgument,
    );
    code(
        "NodeUnstageVolume(no staging_target_path)",
        rt.block_on(c.node.node_unstage_volume(NodeUnstageVolumeRequest {
            volume_id: static_vol.volume_id.clone(),
            ..Default::default()
        })),
        Code::InvalidArgument,
    );
    code(
        "NodeGetVolumeStats(no volume_path)",
        rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: static_vol.volume_id.clone(),
            ..Default::default()
        })),
        Code::InvalidArgument,
    );
    code(
        "NodeGetVolumeStats(unknown volume)",
        rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "nope".into(),
            volume_path: staging.display().to_string(),
            ..Default::default()
        })),
        Code::NotFound,
    );
    // A path the volume is not at is NOT_FOUND, a relative one included (the spec's "volume
    // does not exist on the specified volume_path"; csi-sanity sends "some/path").
    for (call, volume_id, path) in [
        (
            "NodeGetVolumeStats(unknown volume, relative path)",
            "nope",
            "some/path",
        ),
        (
            "NodeGetVolumeStats(staged volume, relative path)",
            static_vol.volume_id.as_str(),
            "some/path",
        ),
        (
            "NodeGetVolumeStats(staged volume, a path it is not at)",
            static_vol.volume_id.as_str(),
            target.to_str().unwrap(),
        ),
    ] {
        code(
            call,
            rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
                volume_id: volume_id.into(),
                volume_path: path.into(),
                ..Default::default()
            })),
            Code::NotFound,
        );
    }
    // A static volume has no recorded quota: its total is the cluster's capacity.
    let stats = ok(
        "NodeGetVolumeStats(static, staging path)",
        rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: static_vol.volume_id.clone(),
            volume_path: staging.display().to_string(),
            ..Default::default()
        })),
    );
    assert_eq!(stats.usage[0].total, 64 * MIB);
    ok(
        "NodeUnstageVolume(static)",
        rt.block_on(
            c.node
                .node_unstage_volume(unstage_req(&static_vol, &staging)),
        ),
    );
    assert_eq!(mount_count(&staging), 0);
    drop(plugin);

    // Probe follows the master: a plugin whose master is down answers ready=false.
    let dead = format!("127.0.0.1:{}", free_port());
    let mut lonely = Plugin::start(
        &dir.join("lonely"),
        &dead,
        &dir.join("lonely-state"),
        &["--mode=controller"],
    );
    let mut id = IdentityClient::new(lonely.channel(&rt, Duration::from_secs(30)));
    let probe = ok("Probe(master down)", rt.block_on(id.probe(ProbeRequest {})));
    assert_eq!(probe.ready, Some(false));
    let caps = ok(
        "GetPluginCapabilities(--mode=controller)",
        rt.block_on(id.get_plugin_capabilities(GetPluginCapabilitiesRequest {})),
    );
    assert!(!caps.capabilities.is_empty());
    let mut node = NodeClient::new(lonely.channel(&rt, Duration::from_secs(5)));
    code(
        "NodeGetInfo(--mode=controller)",
        rt.block_on(node.node_get_info(NodeGetInfoRequest {})),
        Code::Unimplemented,
    );
    println!("== done ==");
}

/// A pod's view of a target: a bind of it made a slave, as a container runtime does for a volume
/// mounted with `mountPropagation: HostToContainer` (rslave). The kubelet directory is made a
/// shared mount first, as it is on a Kubernetes node.
struct PodView {
    path: PathBuf,
}

impl PodView {
    fn shared_kubelet_dir(dir: &Path) -> PathBuf {
        let kubelet = dir.join("kubelet");
        std::fs::create_dir_all(&kubelet).unwrap();
        run_mount(&[
            "--bind",
            kubelet.to_str().unwrap(),
            kubelet.to_str().unwrap(),
        ]);
        run_mount(&["--make-shared", kubelet.to_str().unwrap()]);
        kubelet
    }

    fn new(target: &Path, path: PathBuf) -> PodView {
        std::fs::create_dir_all(&path).unwrap();
        run_mount(&["--bind", target.to_str().unwrap(), path.to_str().unwrap()]);
        run_mount(&["--make-slave", path.to_str().unwrap()]);
        PodView { path }
    }
}

impl Drop for PodView {
    fn drop(&mut self) {
        while mount_count(&self.path) > 0 {
            let ok = Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                break;
            }
        }
    }
}

fn run_mount(args: &[&str]) {
    let out = Command::new("mount")
        .args(args)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls a read until it returns `want`; the time it took.
fn time_to_readable(path: &Path, want: &[u8], timeout: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let last = match std::fs::read(path) {
            Ok(b) if b == want => return start.elapsed(),
            Ok(b) => format!("read {} bytes, not the {} expected", b.len(), want.len()),
            Err(e) => e.to_string(),
        };
        assert!(
            start.elapsed() < timeout,
            "{} not readable within {timeout:?}: {last}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn published_volumes_survive_a_plugin_kill_9() {
    let cluster = Cluster::start(ClusterOptions::default());
    let master = format!("127.0.0.1:{}", cluster.master_rpc);
    let dir = cluster.dir.path().to_path_buf();
    let state = dir.join("state");
    let rt = runtime();
    let _unmount = UnmountUnder(dir.clone());
    PodView::shared_kubelet_dir(&dir);
    let mut plugin = Plugin::start(&dir, &master, &state, &[]);
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    println!("== recovery ==");

    let vol = ok(
        "CreateVolume(pvc-recovery, 16MiB)",
        rt.block_on(
            c.controller
                .create_volume(create_req("pvc-recovery", 16 * MIB, &[])),
        ),
    )
    .volume
    .unwrap();
    let (staging, target_a, target_b) = kubelet_paths(&dir, "pv-recovery");
    ok(
        "NodeStageVolume",
        rt.block_on(c.node.node_stage_volume(stage_req(&vol, &staging))),
    );
    ok(
        "NodePublishVolume(pod-a, rw)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_a, false)),
        ),
    );
    ok(
        "NodePublishVolume(pod-b, readonly)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_b, true)),
        ),
    );
    let body = data(1 << 20, 11);
    std::fs::write(target_a.join("model.bin"), &body).unwrap();
    let view = PodView::new(&target_a, dir.join("kubelet/pod-a-container/data"));
    assert_eq!(std::fs::read(view.path.join("model.bin")).unwrap(), body);

    plugin.kill9();
    let err = std::fs::read(target_a.join("model.bin")).unwrap_err();
    println!("   after kill -9: reading pod-a's target fails: {err}");
    assert_eq!(err.raw_os_error(), Some(107), "ENOTCONN expected: {err}");
    assert!(std::fs::read(view.path.join("model.bin")).is_err());

    // Measured from the spawn of the new process (exec, config, state records, FUSE mount,
    // bind) to the first successful read of the whole file through pod-a's target.
    let restart = Instant::now();
    plugin.spawn(&master, &state, &[]);
    time_to_readable(&target_a.join("model.bin"), &body, Duration::from_secs(60));
    let to_target = restart.elapsed();
    println!(
        "   plugin restart -> pod-a target readable again: {:.1} ms",
        to_target.as_secs_f64() * 1000.0
    );
    let to_view = time_to_readable(&view.path.join("model.bin"), &body, Duration::from_secs(10));
    println!(
        "   the pod's own (rslave) view of the target reads again {:.1} ms later, without a pod restart",
        to_view.as_secs_f64() * 1000.0
    );
    assert_eq!(std::fs::read(target_b.join("model.bin")).unwrap(), body);
    let err = std::fs::write(target_b.join("w"), b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ReadOnlyFilesystem, "{err}");
    std::fs::write(target_a.join("after-restart.txt"), b"still writable\n").unwrap();
    assert_eq!(
        stdout(&cluster.fs(&["cat", "/pvc/pvc-recovery/after-restart.txt"])),
        "still writable\n"
    );

    // The restarted plugin knows the volumes: calls are idempotent and tear-down cleans every
    // layer (the dead mounts under the recovered ones included).
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    ok(
        "NodeStageVolume(after restart)",
        rt.block_on(c.node.node_stage_volume(stage_req(&vol, &staging))),
    );
    ok(
        "NodePublishVolume(pod-a, after restart)",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target_a, false)),
        ),
    );
    let m = plugin.metrics();
    assert!(
        m.contains("alluvium_csi_recovered_mounts_total{kind=\"staged\"} 1"),
        "{m}"
    );
    drop(view);
    for t in [&target_a, &target_b] {
        ok(
            "NodeUnpublishVolume",
            rt.block_on(c.node.node_unpublish_volume(unpublish_req(&vol, t))),
        );
        assert_eq!(mount_count(t), 0);
    }
    ok(
        "NodeUnstageVolume",
        rt.block_on(c.node.node_unstage_volume(unstage_req(&vol, &staging))),
    );
    assert_eq!(mount_count(&staging), 0);
    ok(
        "DeleteVolume",
        rt.block_on(c.controller.delete_volume(DeleteVolumeRequest {
            volume_id: vol.volume_id.clone(),
            ..Default::default()
        })),
    );
    println!("== done ==");
}

/// `secrets` carrying `clusterSecret`, as Kubernetes fills them from a StorageClass's
/// provisioner/node-stage Secret.
fn with_secret(secret: &str) -> HashMap<String, String> {
    HashMap::from([("clusterSecret".to_string(), secret.to_string())])
}

fn code_in<T: std::fmt::Debug>(
    call: &str,
    r: Result<tonic::Response<T>, tonic::Status>,
    want: &[Code],
) {
    show(call, &r);
    match r {
        Ok(v) => panic!("{call}: expected one of {want:?}, got OK {:?}", v.get_ref()),
        Err(s) => assert!(want.contains(&s.code()), "{call}: {s:?}"),
    }
}

const REFUSED: [Code; 2] = [Code::PermissionDenied, Code::Unauthenticated];

#[test]
fn cluster_secret_in_the_volume_secrets_reaches_the_master() {
    let secret = format!("csi-e2e-{:016x}", rand::random::<u64>());
    let local = Local::start(Some(&secret));
    let dir = local.dir.path().to_path_buf();
    let state = dir.join("state");
    let rt = runtime();
    let fs = rt
        .block_on(FileSystem::connect(&local.client_config()))
        .unwrap();
    let _unmount = UnmountUnder(dir.clone());
    PodView::shared_kubelet_dir(&dir);
    // The plugin itself holds no secret: only the volumes' `secrets` reach the master.
    let mut plugin = Plugin::start(&dir, &local.master, &state, &[]);
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    println!("== cluster secret from the CSI secrets ==");
    let probe = ok(
        "Probe(no secret)",
        rt.block_on(c.identity.probe(ProbeRequest {})),
    );
    // The master answers (it refuses the plugin's missing secret): the plugin is ready. A
    // Probe that said "not ready" here would keep external-provisioner waiting forever.
    assert_eq!(
        probe.ready,
        Some(true),
        "a master refusing the plugin is still reachable"
    );

    let create = create_req("pvc-secret", 8 * MIB, &[]);
    code_in(
        "CreateVolume(no secrets)",
        rt.block_on(c.controller.create_volume(create.clone())),
        &REFUSED,
    );
    let mut wrong = create.clone();
    wrong.secrets = with_secret("not-the-secret");
    code_in(
        "CreateVolume(wrong clusterSecret)",
        rt.block_on(c.controller.create_volume(wrong)),
        &REFUSED,
    );
    let mut bad = create.clone();
    bad.secrets = with_secret("caf\u{e9}");
    code(
        "CreateVolume(non-ASCII clusterSecret)",
        rt.block_on(c.controller.create_volume(bad)),
        Code::InvalidArgument,
    );
    let mut create = create;
    create.secrets = with_secret(&secret);
    let vol = ok(
        "CreateVolume(clusterSecret)",
        rt.block_on(c.controller.create_volume(create)),
    )
    .volume
    .unwrap();
    assert!(rt.block_on(fs.exists("/pvc/pvc-secret")).unwrap());
    let mut validate = ValidateVolumeCapabilitiesRequest {
        volume_id: vol.volume_id.clone(),
        volume_context: vol.volume_context.clone(),
        volume_capabilities: vec![mount_cap(Mode::MultiNodeMultiWriter)],
        ..Default::default()
    };
    code_in(
        "ValidateVolumeCapabilities(no secrets)",
        rt.block_on(c.controller.validate_volume_capabilities(validate.clone())),
        &REFUSED,
    );
    validate.secrets = with_secret(&secret);
    ok(
        "ValidateVolumeCapabilities(clusterSecret)",
        rt.block_on(c.controller.validate_volume_capabilities(validate)),
    );

    // Staging makes the FUSE mount: without the secret the master refuses it, and nothing is
    // left mounted or recorded.
    let (staging, target, _) = kubelet_paths(&dir, "pv-secret");
    code_in(
        "NodeStageVolume(no secrets)",
        rt.block_on(c.node.node_stage_volume(stage_req(&vol, &staging))),
        &REFUSED,
    );
    let mut wrong = stage_req(&vol, &staging);
    wrong.secrets = with_secret("not-the-secret");
    code_in(
        "NodeStageVolume(wrong clusterSecret)",
        rt.block_on(c.node.node_stage_volume(wrong)),
        &REFUSED,
    );
    assert_eq!(mount_count(&staging), 0);
    assert!(std::fs::read_dir(state.join("staged"))
        .unwrap()
        .next()
        .is_none());
    let mut stage = stage_req(&vol, &staging);
    stage.secrets = with_secret(&secret);
    ok(
        "NodeStageVolume(clusterSecret)",
        rt.block_on(c.node.node_stage_volume(stage.clone())),
    );
    let mut publish = publish_req(&vol, &staging, &target, false);
    publish.secrets = with_secret(&secret);
    ok(
        "NodePublishVolume",
        rt.block_on(c.node.node_publish_volume(publish.clone())),
    );
    let body = data(300_000, 5);
    std::fs::write(target.join("data.bin"), &body).unwrap();
    assert_eq!(std::fs::read(target.join("data.bin")).unwrap(), body);
    let st = rt
        .block_on(fs.get_status("/pvc/pvc-secret/data.bin"))
        .unwrap();
    assert_eq!(st.length, body.len() as u64);
    // NodeGetVolumeStats carries no secrets: it uses the one the volume was staged with.
    let stats = ok(
        "NodeGetVolumeStats",
        rt.block_on(c.node.node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: vol.volume_id.clone(),
            volume_path: target.display().to_string(),
            ..Default::default()
        })),
    );
    assert_eq!(stats.usage[0].used, body.len() as i64);

    // The staged record keeps the secret for recovery, readable by root alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state.join("staged")), 0o700);
    let records: Vec<PathBuf> = std::fs::read_dir(state.join("staged"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(mode(&records[0]), 0o600);
    assert!(std::fs::read_to_string(&records[0])
        .unwrap()
        .contains(&secret));

    // kill -9: recovery re-mounts with the recorded secret, and the target reads again.
    let view = PodView::new(&target, dir.join("kubelet/pod-secret-container/data"));
    plugin.kill9();
    assert!(std::fs::read(target.join("data.bin")).is_err());
    plugin.spawn(&local.master, &state, &[]);
    time_to_readable(&target.join("data.bin"), &body, Duration::from_secs(60));
    time_to_readable(&view.path.join("data.bin"), &body, Duration::from_secs(10));
    println!(
        "   after kill -9 the restarted plugin re-mounted the volume with its recorded secret"
    );
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    ok(
        "NodeStageVolume(after restart, clusterSecret)",
        rt.block_on(c.node.node_stage_volume(stage.clone())),
    );
    drop(view);

    // Staging again with another secret (rotated in the Kubernetes Secret) is the same volume:
    // the live mount stays, and the record (recovery, stats) takes the newest secret.
    let mut rotated = stage.clone();
    rotated.secrets = with_secret("rotated-secret");
    ok(
        "NodeStageVolume(another clusterSecret)",
        rt.block_on(c.node.node_stage_volume(rotated)),
    );
    let record = std::fs::read_to_string(&records[0]).unwrap();
    assert!(record.contains("rotated-secret") && !record.contains(&secret));
    assert_eq!(mode(&records[0]), 0o600);
    assert_eq!(std::fs::read(target.join("data.bin")).unwrap(), body);
    let stats = NodeGetVolumeStatsRequest {
        volume_id: vol.volume_id.clone(),
        volume_path: target.display().to_string(),
        ..Default::default()
    };
    code_in(
        "NodeGetVolumeStats(recorded secret is now wrong)",
        rt.block_on(c.node.node_get_volume_stats(stats.clone())),
        &REFUSED,
    );
    ok(
        "NodeStageVolume(clusterSecret again)",
        rt.block_on(c.node.node_stage_volume(stage)),
    );
    ok(
        "NodeGetVolumeStats(recorded secret is right again)",
        rt.block_on(c.node.node_get_volume_stats(stats)),
    );

    ok(
        "NodeUnpublishVolume",
        rt.block_on(c.node.node_unpublish_volume(unpublish_req(&vol, &target))),
    );
    ok(
        "NodeUnstageVolume",
        rt.block_on(c.node.node_unstage_volume(unstage_req(&vol, &staging))),
    );
    assert_eq!(mount_count(&staging), 0);
    let mut delete = DeleteVolumeRequest {
        volume_id: vol.volume_id.clone(),
        ..Default::default()
    };
    code_in(
        "DeleteVolume(no secrets)",
        rt.block_on(c.controller.delete_volume(delete.clone())),
        &REFUSED,
    );
    delete.secrets = with_secret(&secret);
    ok(
        "DeleteVolume(clusterSecret)",
        rt.block_on(c.controller.delete_volume(delete)),
    );
    assert!(!rt.block_on(fs.exists("/pvc/pvc-secret")).unwrap());
    let log = plugin.log_text();
    assert!(
        !log.contains(&secret),
        "the plugin logged the secret:\n{log}"
    );
    drop(plugin);

    // The plugin's own secret (config or ALLUVIUM_SECURITY__CLUSTER_SECRET) serves volumes
    // that bring none; a volume's own secret wins over it.
    let (staging, _, _) = kubelet_paths(&dir, "pv-driver-secret");
    let static_vol = Volume {
        volume_id: "default/secret/datasets".into(),
        volume_context: HashMap::from([("path".to_string(), "/datasets".to_string())]),
        ..Default::default()
    };
    let mkdir = alluvium_client::CreateDirectoryOptions::from_config(fs.config());
    rt.block_on(fs.create_directory("/datasets", mkdir))
        .unwrap();
    for (name, plugin_secret, volume_secret) in [
        ("plugin's secret", secret.as_str(), None),
        (
            "wrong plugin secret, volume's secret",
            "stale",
            Some(&secret),
        ),
    ] {
        let pdir = dir.join(name.replace([' ', '\'', ','], "-"));
        let mut plugin = Plugin::start_with_env(
            &pdir,
            &local.master,
            &pdir.join("state"),
            &[],
            &[("ALLUVIUM_SECURITY__CLUSTER_SECRET", plugin_secret)],
        );
        let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
        let ready = ok(
            &format!("Probe({name})"),
            rt.block_on(c.identity.probe(ProbeRequest {})),
        )
        .ready;
        // Reachable either way: a wrong plugin secret is refused by a master that answers.
        assert_eq!(ready, Some(true));
        let mut stage = stage_req(&static_vol, &staging);
        if let Some(s) = volume_secret {
            code_in(
                &format!("NodeStageVolume({name}, no secrets)"),
                rt.block_on(c.node.node_stage_volume(stage.clone())),
                &REFUSED,
            );
            stage.secrets = with_secret(s);
        }
        ok(
            &format!("NodeStageVolume({name})"),
            rt.block_on(c.node.node_stage_volume(stage)),
        );
        assert_eq!(mount_count(&staging), 1);
        ok(
            &format!("NodeUnstageVolume({name})"),
            rt.block_on(
                c.node
                    .node_unstage_volume(unstage_req(&static_vol, &staging)),
            ),
        );
        assert_eq!(mount_count(&staging), 0);
        assert!(!plugin.log_text().contains(&secret));
    }
    println!("== done ==");
}

/// The kernel answers stat(2) on a FUSE mount from its attribute cache without asking the
/// daemon, so right after a crash a dead target still stats fine. Recovery must see through
/// that (the kubelet stats volumes all the time, e.g. for NodeGetVolumeStats) and re-publish.
#[test]
fn recovery_is_not_fooled_by_cached_attributes_of_a_dead_mount() {
    let local = Local::start(None);
    let dir = local.dir.path().to_path_buf();
    let state = dir.join("state");
    let rt = runtime();
    let _unmount = UnmountUnder(dir.clone());
    let mut plugin = Plugin::start(&dir, &local.master, &state, &[]);
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    println!("== recovery with warm attribute caches ==");
    // A long attribute cache makes the window the whole test, not a second.
    let params = [("mountOptions", "attr_timeout=60s,entry_timeout=60s")];
    let vol = ok(
        "CreateVolume(pvc-cached, attr_timeout=60s)",
        rt.block_on(
            c.controller
                .create_volume(create_req("pvc-cached", MIB, &params)),
        ),
    )
    .volume
    .unwrap();
    let (staging, target, _) = kubelet_paths(&dir, "pv-cached");
    ok(
        "NodeStageVolume",
        rt.block_on(c.node.node_stage_volume(stage_req(&vol, &staging))),
    );
    ok(
        "NodePublishVolume",
        rt.block_on(
            c.node
                .node_publish_volume(publish_req(&vol, &staging, &target, false)),
        ),
    );
    std::fs::write(target.join("f.txt"), b"cached\n").unwrap();
    let stats = NodeGetVolumeStatsRequest {
        volume_id: vol.volume_id.clone(),
        volume_path: target.display().to_string(),
        ..Default::default()
    };
    ok(
        "NodeGetVolumeStats",
        rt.block_on(c.node.node_get_volume_stats(stats.clone())),
    );
    // What the kubelet's own stat does: the target's attributes are now in the kernel's cache.
    std::fs::metadata(&target).unwrap();

    plugin.kill9();
    assert!(
        std::fs::metadata(&target).is_ok(),
        "the dead target still stats fine from the kernel's cache"
    );
    let err = std::fs::read(target.join("f.txt")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(107), "ENOTCONN expected: {err}");
    plugin.spawn(&local.master, &state, &[]);
    let took = time_to_readable(&target.join("f.txt"), b"cached\n", Duration::from_secs(20));
    println!(
        "   target readable again {:.1} ms after the restart",
        took.as_secs_f64() * 1000.0
    );
    let mut c = Clients::new(plugin.channel(&rt, Duration::from_secs(30)));
    let stats = ok(
        "NodeGetVolumeStats(after restart)",
        rt.block_on(c.node.node_get_volume_stats(stats)),
    );
    assert!(!stats.volume_condition.unwrap().abnormal);
    ok(
        "NodeUnpublishVolume",
        rt.block_on(c.node.node_unpublish_volume(unpublish_req(&vol, &target))),
    );
    ok(
        "NodeUnstageVolume",
        rt.block_on(c.node.node_unstage_volume(unstage_req(&vol, &staging))),
    );
    assert_eq!(mount_count(&staging), 0);
    assert_eq!(mount_count(&target), 0);
    println!("== done ==");
}
