//! Rate limiting: token bucket, sliding windows and fixed windows.
//!
//! This crate will hold sans-IO algorithms, a bounded keyed store, Envoy-style policies, a tower
//! `RateLimitLayer`, and a gRPC service (`ringkit.ratelimit.v1` and Envoy's RLS v3) whose keys are
//! sharded over the hash ring. It is empty until that lands: see the ratelimit issue.
