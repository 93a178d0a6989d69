//! Compiles `proto/` with `protox` (pure Rust, no system `protoc`) and generates tonic code.
//!
//! The encoded descriptor set is written next to the generated code so that the server can offer
//! gRPC reflection (`pb::FILE_DESCRIPTOR_SET`).

use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/ringkit/idgen/v1/idgen.proto"];
    println!("cargo:rerun-if-changed=proto");

    let fds = protox::compile(protos, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out_dir.join("idgen_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
