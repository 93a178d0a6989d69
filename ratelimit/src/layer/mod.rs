//! Tower middleware: [`RateLimitLayer`], [`RateLimit`], [`ResponseFuture`], key extractors and
//! backends.
//!
//! Rejections are HTTP 429 with `RateLimit-Policy`, `RateLimit` and `Retry-After`, or for gRPC
//! requests `RESOURCE_EXHAUSTED` with `google.rpc.RetryInfo` in the status details. Responses
//! let through carry the two rate-limit headers unless [`LayerConfig::headers_on_allowed`] is
//! off.

mod backend;
mod future;
mod key;
#[allow(clippy::module_inception)]
mod layer;
mod response;
mod service;

pub use backend::{Backend, FailureMode, LocalBackend, RemoteBackend};
pub use future::ResponseFuture;
pub use key::{Global, GrpcMethod, HeaderKey, MakeKey, PeerIp};
pub use layer::{LayerConfig, RateLimitLayer};
pub use service::RateLimit;
