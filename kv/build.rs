//! Compiles every `.proto` under `proto/` with protox (pure Rust, no system `protoc`) and
//! generates the tonic servers and clients, plus the descriptor sets that gRPC reflection serves.
//!
//! Each package lands in one generated file, included once: `ringkit.kv.v1` as `crate::grpc::pb`,
//! `ringkit.kv.cluster.v1` as `crate::cluster::pb`. The internal protocols may import the client
//! types; an extern path makes those references resolve to `crate::grpc::pb`.

use std::path::{Path, PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut protos = Vec::new();
    collect_protos(Path::new("proto"), &mut protos)?;
    protos.sort();
    println!("cargo:rerun-if-changed=proto");
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // The client API's own descriptor set: what single-node reflection serves.
    let client = protox::compile(["proto/ringkit/kv/v1/kv.proto"], ["proto"])?;
    std::fs::write(out.join("kv_descriptor.bin"), client.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".ringkit.kv.v1")
        .compile_fds(client)?;
    // Everything else, with the client package left out of generation (it is generated once,
    // above) and referenced through its module instead.
    let mut fds = protox::compile(&protos, ["proto"])?;
    std::fs::write(out.join("kv_cluster_descriptor.bin"), fds.encode_to_vec())?;
    fds.file.retain(|f| f.package() != "ringkit.kv.v1");
    tonic_prost_build::configure()
        .bytes(".ringkit.kv")
        .extern_path(".ringkit.kv.v1", "crate::grpc::pb")
        .compile_fds(fds)?;
    Ok(())
}

/// Every `.proto` file below `dir`, recursively.
fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
