//! Rate limiting for ringkit: sans-IO algorithms, a bounded keyed store, Envoy-style policies,
//! tower middleware, and a gRPC service (`ringkit.ratelimit.v1` and Envoy's RLS v3) whose keys
//! can be sharded over the hash ring.
//!
//! Three ways to use it:
//! * **In-process**, as a tower layer: [`layer::RateLimitLayer::local`].
//! * **As a service**: run `ratelimit-server` and call it over gRPC, from Envoy
//!   (`ShouldRateLimit`), from your code, or from the layer's [`layer::RemoteBackend`].
//! * **As a cluster**: several `ratelimit-server`s with a static peer list; each key has one
//!   owner on the ring and the others forward to it ([`cluster`]).
//!
//! The algorithms take time as a parameter, so everything is testable with a manual clock:
//!
//! ```
//! use std::time::Duration;
//! use ringkit_ratelimit::algorithm::{Algorithm, Limit};
//! use ringkit_ratelimit::clock::Timestamp;
//! use ringkit_ratelimit::store::KeyedStore;
//!
//! // 10 per second, bursts of up to 20.
//! let limit = Limit::new(Algorithm::TokenBucket, 10, Duration::from_secs(1), Some(20)).unwrap();
//! let store = KeyedStore::default();
//! let now = Timestamp::from_millis(1_000);
//! let first = store.check(b"alice", &limit, now, 15);        // weighted hit: cost 15
//! assert!(first.allowed);
//! assert_eq!(first.remaining, 5);
//! let second = store.check(b"alice", &limit, now, 6);
//! assert!(!second.allowed);
//! assert_eq!(second.retry_after, Some(Duration::from_millis(100)));
//! store.refund(b"alice", &limit, now, 15);                     // the work did not happen
//! assert_eq!(store.check(b"alice", &limit, now, 0).remaining, 20); // cost 0 peeks
//! ```
//!
//! # Layout
//! * [`algorithm`]: token bucket (GCRA), sliding log, sliding window counter, fixed window;
//!   `check(state, now, cost) -> Decision`, refunds.
//! * [`store`]: [`store::KeyedStore`], sharded and bounded, with lossless idle eviction.
//! * [`clock`]: [`clock::Timestamp`] and the [`clock::Clock`] implementations.
//! * [`policy`]: domains and descriptor trees, the TOML file, hot reload, runtime overrides.
//! * [`check`]: validating and resolving a request into store operations, folding the results.
//! * [`counter`]: where operations run (this node, or each key's owner).
//! * [`limiter`]: [`RateLimiter`], what the services call.
//! * [`layer`]: `RateLimitLayer`, `RateLimit`, `ResponseFuture`, `MakeKey`, backends.
//! * [`headers`]: the IETF `RateLimit-Policy`/`RateLimit` fields and `Retry-After`.
//! * [`grpc`]: generated types, conversions, the services and [`grpc::serve`].
//! * [`cluster`]: ring placement, forwarding in batches, owner fail-over.
//! * [`maintenance`]: the background sweep and policy reload task.
//! * `metrics` (private): counters per domain, never per key.

pub mod algorithm;
pub mod check;
pub mod clock;
pub mod cluster;
pub mod counter;
pub mod error;
pub mod grpc;
pub mod headers;
pub mod layer;
pub mod limiter;
pub mod maintenance;
mod metrics;
pub mod policy;
pub mod store;

pub use error::Error;
pub use limiter::RateLimiter;
