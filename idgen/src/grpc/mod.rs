//! The `ringkit.idgen.v1` gRPC service: generated types, the service, and `serve`.

pub mod convert;
pub mod server;
pub mod service;

/// Generated protobuf and tonic code for `ringkit.idgen.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("ringkit.idgen.v1");

    /// The encoded descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/idgen_descriptor.bin"));
}

pub use server::{DRAIN_GRACE, serve, serve_listener};
pub use service::{IdGenService, MAX_BATCH};
