//! What a volume is, from the CO's strings: volume ids, StorageClass parameters, volume context
//! (`volumeAttributes` of static PVs), and volume capabilities.
//!
//! Keys (StorageClass `parameters` and PV `volumeAttributes`):
//! - `master`: gRPC address of the cluster's master (default: the plugin's `--master`).
//! - `basePath` (StorageClass): parent of provisioned volume directories (default `/pvc`).
//! - `path` (volume context): the Alluvium directory the volume shows.
//! - `readType`, `writeType`: Alluvium read/write types of files used through the volume.
//! - `mountOptions`: FUSE options (`alluvium fuse mount -o` syntax), comma-separated.
//! - `capacityBytes` (volume context of provisioned volumes): the recorded quota.
//!
//! The cluster secret is not a parameter (parameters are not secret): it comes in the calls'
//! `secrets` map, see [`crate::secrets`].

use std::collections::HashMap;

use alluvium_common::config::{parse_read_type, parse_write_type};
use alluvium_common::path::normalize;
use alluvium_fuse::FuseOptions;
use alluvium_proto::csi::v1::volume_capability::access_mode::Mode;
use alluvium_proto::csi::v1::volume_capability::AccessType;
use alluvium_proto::csi::v1::VolumeCapability;
use tonic::Status;

use crate::invalid;

pub const MASTER: &str = "master";
pub const BASE_PATH: &str = "basePath";
pub const PATH: &str = "path";
pub const READ_TYPE: &str = "readType";
pub const WRITE_TYPE: &str = "writeType";
pub const MOUNT_OPTIONS: &str = "mountOptions";
pub const CAPACITY_BYTES: &str = "capacityBytes";
pub const DIRECTORY_MODE: &str = "directoryMode";

/// Permission bits of a provisioned volume's directory when the StorageClass says none: any pod
/// using the PVC may write, whatever uid it runs as (as NFS provisioners do). A StorageClass
/// can narrow it (`directoryMode: "0770"`).
pub const DEFAULT_DIRECTORY_MODE: u32 = 0o777;

/// Parent of provisioned volumes when the StorageClass names no `basePath`.
pub const DEFAULT_BASE_PATH: &str = "/pvc";

/// Keys the external-provisioner adds or reserves (`csi.storage.k8s.io/pvc/name`, secrets
/// references, ...): not ours to validate.
const RESERVED_PREFIX: &str = "csi.storage.k8s.io/";

const VOLUME_ID_SCHEME: &str = "alluvium://";

/// The id of a provisioned volume: `alluvium://<master><path>`. It carries everything
/// `DeleteVolume` needs, which receives nothing but the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeId {
    pub master: String,
    pub path: String,
}

impl VolumeId {
    pub fn encode(&self) -> String {
        format!("{VOLUME_ID_SCHEME}{}{}", self.master, self.path)
    }

    /// `None` for ids this controller did not make (static PVs use the operator's own handles).
    pub fn parse(id: &str) -> Option<VolumeId> {
        let rest = id.strip_prefix(VOLUME_ID_SCHEME)?;
        let slash = rest.find('/')?;
        let (master, path) = rest.split_at(slash);
        if master.is_empty() {
            return None;
        }
        let path = normalize(path).ok()?;
        if path == "/" {
            return None;
        }
        Some(VolumeId {
            master: master.to_string(),
            path,
        })
    }
}

/// Options shared by provisioning parameters and volume context: how files are read and written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessOptions {
    pub read_type: Option<String>,
    pub write_type: Option<String>,
    pub mount_options: Vec<String>,
}

impl AccessOptions {
    fn from_map(m: &HashMap<String, String>) -> Result<Self, Status> {
        let read_type = non_empty(m, READ_TYPE);
        if let Some(r) = &read_type {
            parse_read_type(r).map_err(|e| invalid(format!("{READ_TYPE}: {}", e.message)))?;
        }
        let write_type = non_empty(m, WRITE_TYPE);
        if let Some(w) = &write_type {
            parse_write_type(w).map_err(|e| invalid(format!("{WRITE_TYPE}: {}", e.message)))?;
        }
        let mount_options: Vec<String> = non_empty(m, MOUNT_OPTIONS)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        FuseOptions::parse(&mount_options)
            .map_err(|e| invalid(format!("{MOUNT_OPTIONS}: {}", e.message)))?;
        Ok(Self {
            read_type,
            write_type,
            mount_options,
        })
    }

    fn write_into(&self, m: &mut HashMap<String, String>) {
        if let Some(r) = &self.read_type {
            m.insert(READ_TYPE.into(), r.clone());
        }
        if let Some(w) = &self.write_type {
            m.insert(WRITE_TYPE.into(), w.clone());
        }
        if !self.mount_options.is_empty() {
            m.insert(MOUNT_OPTIONS.into(), self.mount_options.join(","));
        }
    }
}

fn non_empty(m: &HashMap<String, String>, key: &str) -> Option<String> {
    m.get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// CreateVolume's parameters (the StorageClass's), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionParams {
    /// Empty = the plugin's default master.
    pub master: Option<String>,
    pub base_path: String,
    pub access: AccessOptions,
    /// Mode of the volume's directory.
    pub directory_mode: u32,
}

impl ProvisionParams {
    pub fn parse(m: &HashMap<String, String>) -> Result<Self, Status> {
        for k in m.keys() {
            let known = [
                MASTER,
                BASE_PATH,
                READ_TYPE,
                WRITE_TYPE,
                MOUNT_OPTIONS,
                DIRECTORY_MODE,
            ];
            if !known.contains(&k.as_str()) && !k.starts_with(RESERVED_PREFIX) {
                return Err(invalid(format!(
                    "unknown StorageClass parameter {k:?} (known: {})",
                    known.join(", ")
                )));
            }
        }
        let base_path = non_empty(m, BASE_PATH).unwrap_or_else(|| DEFAULT_BASE_PATH.into());
        let base_path =
            normalize(&base_path).map_err(|e| invalid(format!("{BASE_PATH}: {}", e.message)))?;
        let directory_mode = match non_empty(m, DIRECTORY_MODE) {
            None => DEFAULT_DIRECTORY_MODE,
            Some(v) => u32::from_str_radix(&v, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    invalid(format!(
                        "{DIRECTORY_MODE} {v:?}: expected octal permission bits such as 0770"
                    ))
                })?,
        };
        Ok(Self {
            master: non_empty(m, MASTER),
            base_path,
            access: AccessOptions::from_map(m)?,
            directory_mode,
        })
    }
}

/// Where a volume lives and how to mount it, from NodeStage/NodePublish's volume context and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub master: String,
    pub path: String,
    pub access: AccessOptions,
    /// 0 = none recorded.
    pub capacity_bytes: u64,
}

impl VolumeSpec {
    /// `path` comes from the context (static PVs and provisioned ones) or, failing that, from a
    /// provisioned volume's id; `master` likewise, else the plugin's default.
    pub fn resolve(
        volume_id: &str,
        context: &HashMap<String, String>,
        default_master: &str,
    ) -> Result<Self, Status> {
        let from_id = VolumeId::parse(volume_id);
        let path = match (non_empty(context, PATH), &from_id) {
            (Some(p), _) => p,
            (None, Some(id)) => id.path.clone(),
            (None, None) => {
                return Err(invalid(format!(
                    "volume {volume_id}: volume context has no '{PATH}' (the Alluvium directory to mount)"
                )))
            }
        };
        let path = normalize(&path).map_err(|e| invalid(format!("{PATH}: {}", e.message)))?;
        let master = non_empty(context, MASTER)
            .or_else(|| from_id.map(|id| id.master))
            .unwrap_or_else(|| default_master.to_string());
        let capacity_bytes = match non_empty(context, CAPACITY_BYTES) {
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| invalid(format!("{CAPACITY_BYTES}={v:?}: not a number of bytes")))?,
            None => 0,
        };
        Ok(Self {
            master,
            path,
            access: AccessOptions::from_map(context)?,
            capacity_bytes,
        })
    }

    /// The volume context CreateVolume returns, so nodes need nothing else.
    pub fn context(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert(MASTER.into(), self.master.clone());
        m.insert(PATH.into(), self.path.clone());
        if self.capacity_bytes > 0 {
            m.insert(CAPACITY_BYTES.into(), self.capacity_bytes.to_string());
        }
        self.access.write_into(&mut m);
        m
    }

    /// The FUSE options of the staging mount, as `-o` strings (kept in the state record so a
    /// restart mounts exactly the same way). Pods run as any user, hence `allow_other`.
    pub fn fuse_option_strings(&self, mount_flags: &[String], read_only: bool) -> Vec<String> {
        let mut v = vec!["allow_other".to_string()];
        v.extend(self.access.mount_options.iter().cloned());
        v.extend(
            mount_flags
                .iter()
                .flat_map(|f| f.split(','))
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(String::from),
        );
        if let Some(r) = &self.access.read_type {
            v.push(format!("read_type={r}"));
        }
        if let Some(w) = &self.access.write_type {
            v.push(format!("write_type={w}"));
        }
        if read_only {
            v.push("ro".into());
        }
        v
    }
}

/// Filesystem types a mount capability may name: none, or ours.
const FS_TYPES: [&str; 4] = ["", "alluvium", "fuse", "fuse.alluvium"];

/// Why a capability cannot be served, or `None` when it can.
pub fn unsupported(cap: &VolumeCapability) -> Option<String> {
    match &cap.access_type {
        None => return Some("volume capability has no access type (mount or block)".into()),
        Some(AccessType::Block(_)) => {
            return Some(
                "block volumes are not supported: Alluvium volumes are file systems".into(),
            )
        }
        Some(AccessType::Mount(m)) => {
            if !FS_TYPES.contains(&m.fs_type.as_str()) {
                return Some(format!(
                    "fs_type {:?} is not supported (leave it empty: volumes are Alluvium FUSE mounts)",
                    m.fs_type
                ));
            }
        }
    }
    match cap.access_mode.as_ref().map(|a| Mode::try_from(a.mode)) {
        None => Some("volume capability has no access mode".into()),
        Some(Ok(Mode::Unknown)) | Some(Err(_)) => Some("access mode is UNKNOWN".into()),
        Some(Ok(_)) => None,
    }
}

/// Checks a required capability; INVALID_ARGUMENT when absent or unusable.
pub fn require_capability(cap: Option<&VolumeCapability>) -> Result<&VolumeCapability, Status> {
    let cap = cap.ok_or_else(|| invalid("volume_capability is required"))?;
    if let Some(why) = unsupported(cap) {
        return Err(invalid(why));
    }
    Ok(cap)
}

/// Whether the capability only ever reads.
pub fn read_only_mode(cap: &VolumeCapability) -> bool {
    matches!(
        cap.access_mode.as_ref().map(|a| Mode::try_from(a.mode)),
        Some(Ok(Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly))
    )
}

/// The mount flags of a mount capability.
pub fn mount_flags(cap: &VolumeCapability) -> Vec<String> {
    match &cap.access_type {
        Some(AccessType::Mount(m)) => m.mount_flags.clone(),
        _ => Vec::new(),
    }
}

/// A CreateVolume name usable as a directory name: the provisioner's `pvc-<uid>`, or any name
/// without `/`, NUL or control characters, not starting with `.` (those are ours), and short
/// enough for an id.
pub fn check_volume_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(invalid("name is required"));
    }
    if name.len() > 128 {
        return Err(invalid(format!(
            "name is {} bytes long; at most 128 are allowed",
            name.len()
        )));
    }
    if name.starts_with('.') || name.contains('/') || name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "name {name:?} cannot be a directory name (no '/', control characters or leading '.')"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alluvium_proto::csi::v1::volume_capability::{AccessMode, BlockVolume, MountVolume};

    fn cap(mode: Mode, fs_type: &str) -> VolumeCapability {
        VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume {
                fs_type: fs_type.into(),
                ..Default::default()
            })),
            access_mode: Some(AccessMode { mode: mode as i32 }),
        }
    }

    #[test]
    fn volume_ids_round_trip() {
        let id = VolumeId {
            master: "m.default.svc:19998".into(),
            path: "/pvc/pvc-1".into(),
        };
        assert_eq!(id.encode(), "alluvium://m.default.svc:19998/pvc/pvc-1");
        assert_eq!(VolumeId::parse(&id.encode()), Some(id));
        assert_eq!(VolumeId::parse("default/demo/datasets"), None);
        assert_eq!(VolumeId::parse("alluvium://m:1/"), None);
        assert_eq!(VolumeId::parse("alluvium:///x"), None);
    }

    #[test]
    fn provision_params_are_checked() {
        let m = HashMap::from([
            ("master".to_string(), "m:1".to_string()),
            ("basePath".to_string(), "/a//b/".to_string()),
            ("csi.storage.k8s.io/pvc/name".to_string(), "x".to_string()),
        ]);
        let p = ProvisionParams::parse(&m).unwrap();
        assert_eq!(p.base_path, "/a/b");
        assert_eq!(p.master.as_deref(), Some("m:1"));
        let bad = HashMap::from([("basepath".to_string(), "/x".to_string())]);
        assert_eq!(
            ProvisionParams::parse(&bad).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let bad = HashMap::from([("writeType".to_string(), "SOMETIMES".to_string())]);
        assert!(ProvisionParams::parse(&bad).is_err());
        let bad = HashMap::from([("mountOptions".to_string(), "threads=0".to_string())]);
        assert!(ProvisionParams::parse(&bad).is_err());
    }

    /// A provisioned volume's directory is writable by pods of any uid unless the StorageClass
    /// narrows it; a mode that is not octal bits is refused.
    #[test]
    fn directory_mode_defaults_to_world_writable_and_is_checked() {
        assert_eq!(
            ProvisionParams::parse(&HashMap::new())
                .unwrap()
                .directory_mode,
            0o777
        );
        let m = HashMap::from([("directoryMode".to_string(), "0770".to_string())]);
        assert_eq!(ProvisionParams::parse(&m).unwrap().directory_mode, 0o770);
        for bad in ["rwx", "0999", "17777"] {
            let m = HashMap::from([("directoryMode".to_string(), bad.to_string())]);
            assert!(ProvisionParams::parse(&m).is_err(), "{bad}");
        }
    }

    #[test]
    fn specs_resolve_from_context_or_id() {
        let ctx = HashMap::from([("path".to_string(), "/datasets".to_string())]);
        let s = VolumeSpec::resolve("default/demo/datasets", &ctx, "dflt:1").unwrap();
        assert_eq!(
            (s.master.as_str(), s.path.as_str()),
            ("dflt:1", "/datasets")
        );
        let s = VolumeSpec::resolve("alluvium://m:2/pvc/v", &HashMap::new(), "dflt:1").unwrap();
        assert_eq!((s.master.as_str(), s.path.as_str()), ("m:2", "/pvc/v"));
        assert!(VolumeSpec::resolve("static", &HashMap::new(), "d:1").is_err());
        let s = VolumeSpec {
            master: "m:1".into(),
            path: "/p".into(),
            access: AccessOptions {
                write_type: Some("CACHE_THROUGH".into()),
                ..Default::default()
            },
            capacity_bytes: 5,
        };
        let again = VolumeSpec::resolve("x", &s.context(), "other:1").unwrap();
        assert_eq!(again, s);
        let opts = s.fuse_option_strings(&["attr_timeout=2s".into()], true);
        let parsed = FuseOptions::parse(&opts).unwrap();
        assert!(parsed.read_only && parsed.allow_other);
    }

    #[test]
    fn capabilities() {
        assert_eq!(unsupported(&cap(Mode::MultiNodeMultiWriter, "")), None);
        assert!(unsupported(&cap(Mode::Unknown, "")).is_some());
        assert!(unsupported(&cap(Mode::SingleNodeWriter, "ext4")).is_some());
        let block = VolumeCapability {
            access_type: Some(AccessType::Block(BlockVolume {})),
            access_mode: Some(AccessMode {
                mode: Mode::SingleNodeWriter as i32,
            }),
        };
        assert!(unsupported(&block).is_some());
        assert!(read_only_mode(&cap(Mode::MultiNodeReaderOnly, "")));
        assert!(!read_only_mode(&cap(Mode::SingleNodeWriter, "")));
    }

    #[test]
    fn names() {
        assert!(check_volume_name("pvc-0f0e").is_ok());
        assert!(check_volume_name("").is_err());
        assert!(check_volume_name("a/b").is_err());
        assert!(check_volume_name(".alluvium-csi").is_err());
    }
}
