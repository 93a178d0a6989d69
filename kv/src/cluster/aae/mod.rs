//! Active anti-entropy: per-partition Merkle trees kept up to date as writes commit, exchanged
//! periodically between replicas, differing keys merged both ways, tombstones reaped once every
//! replica holds the same one. See `docs/adr/0430-kv-aae.md`.
//!
//! Wiring (what `ClusterNode::start` in `cluster::assemble` does):
//!
//! ```text
//! let trees = Arc::new(AaeTrees::new(config.shape)?);
//! let node = KvNode::new(TrackedStorage::new(store, Arc::clone(&trees)), node_config, clock)?;
//! let aae = Aae::new(local_id, node.clone(), config, map_rx, live_rx)?;
//! router.add_service(aae::service(aae.clone()));
//! let task = aae::spawn(aae, Arc::new(GrpcAaePeers::new(channels, timeout)), replica_peers, shutdown);
//! ```
//!
//! # Layout
//! - [`tree`]: [`MerkleTree`], one partition's tree (sans-IO).
//! - [`trees`]: [`AaeTrees`], the node's trees, marked dirty by writes and refreshed from storage.
//! - [`tracked`]: [`TrackedStorage`], the write hook that marks them.
//! - [`exchange`]: the comparison of two replicas (tree descent, row diff), sans-IO.
//! - [`reap`]: the tombstone reaping rule (sans-IO); `reaper.rs` runs it.
//! - [`leftovers`]: rows of partitions handed off, given to their owners and dropped here.
//! - [`budget`]: [`IoBudget`], rows read per second.
//! - [`config`]: [`AaeConfig`], the settings.
//! - [`node`]: [`Aae`], a node's anti-entropy state and the answers it gives peers.
//! - [`sweep`]: the roots of every partition shared with a peer, compared in one call.
//! - [`session`]: one exchange (of a partition a sweep found different) and its repairs.
//! - [`schedule`]: [`Schedule`](schedule::Schedule), which work comes next (sans-IO).
//! - [`remote`]: [`AaePeers`], the calls to other nodes, and their gRPC implementation.
//! - [`mod@service`]: the `AntiEntropy` gRPC service ([`service()`]).
//! - [`task`]: the loop that runs the schedule ([`spawn`]).
//! - [`status`]: metrics and [`AaeStatus`] for the admin API.

pub mod budget;
pub mod config;
pub mod exchange;
pub mod leftovers;
pub mod node;
pub mod reap;
mod reaper;
pub mod remote;
pub mod schedule;
pub mod service;
pub mod session;
pub mod status;
pub mod sweep;
pub mod task;
pub mod tracked;
pub mod tree;
pub mod trees;

pub use budget::IoBudget;
pub use config::AaeConfig;
pub use exchange::{DescentStep, RowDiff, RowDigest, TreeDescent, diff_rows};
pub use node::{Aae, replicated_partitions};
pub use remote::{AaePeers, GrpcAaePeers};
pub use service::{AntiEntropyService, service};
pub use session::ExchangeReport;
pub use status::{AaeStatus, ExchangeOutcome, PartitionStatus};
pub use task::{AaeLoop, spawn};
pub use tracked::TrackedStorage;
pub use tree::{MerkleTree, TreeShape};
pub use trees::AaeTrees;
