//! Generates the tonic/prost code from every `.proto` under `alluvium/v1` with protox (a pure-Rust
//! protobuf compiler), so building needs no system `protoc`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from("alluvium/v1");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    // The CSI spec's `csi.v1` package (the subset the CSI driver serves), for `alluvium-csi`.
    files.push(PathBuf::from("csi/v1/csi.proto"));
    println!("cargo:rerun-if-changed=alluvium");
    println!("cargo:rerun-if-changed=csi");
    let fds = protox::compile(&files, ["."])?;
    tonic_prost_build::configure()
        // `bytes` fields decode into `bytes::Bytes`: chunks are slices of the receive buffer, and
        // a worker can send slices of an mmapped block without copying them first.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
