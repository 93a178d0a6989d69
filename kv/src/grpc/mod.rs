//! The gRPC edge: generated `ringkit.kv.v1` types, the service, and `serve`.

pub(crate) mod convert;
pub(crate) mod server;
mod service;

pub use server::{DRAIN_GRACE, serve, serve_listener};
pub use service::KvService;

/// Generated protobuf and tonic code for `ringkit.kv.v1` (server and client).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("ringkit.kv.v1");

    /// The encoded descriptor set of `kv.proto`, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/kv_descriptor.bin"));
}
