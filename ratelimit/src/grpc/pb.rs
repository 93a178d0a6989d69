//! Generated protobuf types and gRPC stubs (built by `build.rs` from `proto/`).
//!
//! The module tree mirrors the proto packages because generated code refers to other packages
//! by relative path (`super::super::...`). Application code should not need these types: the
//! core speaks its own ([`crate::check`]); conversions live in `grpc/convert.rs`.
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// `ringkit.ratelimit.v1`.
pub mod ringkit {
    /// `ringkit.ratelimit`.
    pub mod ratelimit {
        /// `ringkit.ratelimit.v1`: checks, admin, and the cluster peer protocol.
        pub mod v1 {
            tonic::include_proto!("ringkit.ratelimit.v1");
        }
    }
}

/// The subset of Envoy's protos needed for `RateLimitService/ShouldRateLimit`.
pub mod envoy {
    /// `envoy.config`.
    pub mod config {
        /// `envoy.config.core`.
        pub mod core {
            /// `envoy.config.core.v3`: `HeaderValue`.
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    /// `envoy.extensions`.
    pub mod extensions {
        /// `envoy.extensions.common`.
        pub mod common {
            /// `envoy.extensions.common.ratelimit`.
            pub mod ratelimit {
                /// `envoy.extensions.common.ratelimit.v3`: `RateLimitDescriptor`.
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }
    /// `envoy.type`.
    pub mod r#type {
        /// `envoy.type.v3`: `RateLimitUnit`.
        pub mod v3 {
            tonic::include_proto!("envoy.r#type.v3");
        }
    }
    /// `envoy.service`.
    pub mod service {
        /// `envoy.service.ratelimit`.
        pub mod ratelimit {
            /// `envoy.service.ratelimit.v3`: the rate-limit service.
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
    }
}

/// The encoded `FileDescriptorSet` of every proto above, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ratelimit_descriptor.bin"));
