//! Ownership transfer: when the ring changes, partitions stream from their old holders to the
//! new ones while reads and writes go on (writes reach both, reads the old holder until the
//! transfer completes), and a transfer completes only after a check that the new holder holds
//! every row.
//!
//! # Layout
//! - `plan`: sans-IO: the transfers a node must send ([`outgoing`]) and the completion check
//!   ([`holds`]).
//! - `runner`: the tokio task ([`spawn`]) and the [`PartitionSource`] it reads from.

mod plan;
mod runner;

pub use plan::{TaskKey, TransferTask, holds, outgoing, split_by_bytes, to_start};
pub use runner::{PartitionSource, TransferConfig, spawn};
