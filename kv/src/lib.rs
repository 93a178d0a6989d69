//! A Dynamo-style key-value store node: SQLite storage with group commit, dotted version vectors
//! with siblings, and the `ringkit.kv.v1` gRPC API.
//!
//! Keys and values are bytes. Every read returns a causal *context*; a write that sends it back
//! replaces exactly what the read saw, while writes that did not see each other are kept side by
//! side as *siblings* instead of one silently overwriting the other. Deletes leave tombstones that
//! remember what they removed; TTLs hide keys at once and are purged in the background.
//!
//! ```
//! use std::sync::Arc;
//! use ringkit_kv::clock::SystemClock;
//! use ringkit_kv::model::ActorId;
//! use ringkit_kv::node::{KvNode, NodeConfig, Put, Quorum};
//! use ringkit_kv::storage::MemStorage;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ringkit_kv::error::KvError> {
//! let node = KvNode::new(MemStorage::new(ActorId(1)), NodeConfig::new("n1"), Arc::new(SystemClock))?;
//! // Two writers that did not read first: both values are kept.
//! node.put(Put::new("cart", "apple")).await?;
//! node.put(Put::new("cart", "pear")).await?;
//! let read = node.get("cart".into(), Quorum::default()).await?;
//! assert_eq!(read.values.len(), 2);
//! // Writing back with the context resolves the siblings into one value.
//! node.put(Put::new("cart", "apple,pear").with_context(read.context)).await?;
//! assert_eq!(node.get("cart".into(), Quorum::default()).await?.values.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`model`]: the data model, free of I/O: dots, version vectors, objects with siblings, write
//!   resolution and merge, the context token, the storage codec, limits, the key space.
//! - [`storage`]: the sync [`Storage`](storage::Storage) contract, the SQLite engine (WAL, one
//!   group-committing writer thread, a reader pool, a checkpointer) and the in-memory twin.
//! - [`node`]: [`KvNode`](node::KvNode), the async request API over a store; validation,
//!   admission, background maintenance (TTL purge, tombstone reaping).
//! - [`grpc`]: the generated `ringkit.kv.v1` types, the tonic service, and
//!   [`serve`](grpc::serve) (health and reflection included).
//! - [`cluster`]: many nodes as one Dynamo-style cluster: placement, quorums, sloppy quorum and
//!   hinted handoff, read repair, anti-entropy, membership, the internal gRPC services.
//! - [`clock`]: injected wall-clock time. [`error`]: [`KvError`](error::KvError) and its gRPC
//!   mapping.
//! - Binaries: `kv-server` (one node) and `kv-bench` (YCSB-style load generator).

pub mod clock;
pub mod cluster;
pub mod error;
pub mod grpc;
pub mod model;
pub mod node;
pub mod storage;
