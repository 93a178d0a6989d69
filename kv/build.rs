//! Compiles `proto/ringkit/kv/v1/kv.proto` with protox (pure Rust, no system `protoc`) and
//! generates the tonic server and client, plus the descriptor set that gRPC reflection serves.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/ringkit/kv/v1/kv.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("kv_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .bytes(".ringkit.kv.v1")
        .compile_fds(fds)?;
    Ok(())
}
