//! Compiles every ringkit service proto, client side only, with `protox` (pure Rust, no system
//! `protoc`). The protos stay in the service crates that own them; this crate reads them in place
//! so that an application calling ringkit links neither SQLite nor any server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let roots = ["../idgen/proto", "../ratelimit/proto", "../kv/proto"];
    let protos = [
        "ringkit/idgen/v1/idgen.proto",
        "ringkit/ratelimit/v1/ratelimit.proto",
        "ringkit/kv/v1/kv.proto",
        // The cluster admin API only (ringctl's `kv admin`); the internal protocols stay internal.
        "ringkit/kv/cluster/v1/admin.proto",
    ];
    for root in roots {
        println!("cargo:rerun-if-changed={root}");
    }
    let fds = protox::compile(protos, roots)?;
    tonic_prost_build::configure()
        .build_server(false)
        // The same mapping as the kv server, so values and keys are `Bytes` on both sides.
        .bytes(".ringkit.kv.v1")
        .compile_fds(fds)?;
    Ok(())
}
