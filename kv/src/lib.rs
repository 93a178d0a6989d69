//! A Dynamo-style replicated key-value store.
//!
//! This crate will hold the storage engine (SQLite with group commit, plus an in-memory twin), the
//! dotted-version-vector data model, the `ringkit.kv.v1` gRPC API, and the cluster (quorums, hinted
//! handoff, read repair, anti-entropy, SWIM membership). It is empty until that lands: see the kv
//! issues.
