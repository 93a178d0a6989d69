//! The gRPC edge: generated types, conversions, and the services of a node.

mod admin;
mod convert;
mod envoy;
pub mod pb;
mod peer;
mod server;
mod v1;

pub use admin::AdminService;
pub use envoy::EnvoyService;
pub use peer::{MAX_BATCH, PeerService};
pub use server::{DRAIN_GRACE, ServeOptions, serve};
pub use v1::CheckService;

pub(crate) use convert::{from_pb_decision, from_pb_limit, to_pb_op};
