//! Active anti-entropy: per-partition Merkle trees kept up to date as writes commit, exchanged
//! periodically between replicas, differing keys merged both ways, tombstones reaped once every
//! replica holds the same one. See `docs/adr/0430-kv-aae.md`.
//!
//! # Layout
//! - [`tree`]: [`MerkleTree`], one partition's tree (sans-IO).
//! - [`trees`]: [`AaeTrees`], the node's trees, marked dirty by writes and refreshed from storage.
//! - [`tracked`]: [`TrackedStorage`], the write hook that marks them.
//! - [`exchange`]: the comparison of two replicas (tree descent, row diff), sans-IO.
//! - [`budget`]: [`IoBudget`], rows read per second.

pub mod budget;
pub mod exchange;
pub mod tracked;
pub mod tree;
pub mod trees;

pub use budget::IoBudget;
pub use exchange::{DescentStep, RowDiff, RowDigest, TreeDescent, diff_rows};
pub use tracked::TrackedStorage;
pub use tree::{MerkleTree, TreeShape};
pub use trees::AaeTrees;
