//! The partitioned ring (Dynamo's "strategy 3"): configuration, ring value, claim and diffs.

mod claim;
mod config;
mod diff;
mod quota;
mod repr;
mod ring;

pub use config::{MAX_PARTITIONS, MAX_REPLICAS, PARTITIONS_PER_NODE, RingConfig};
pub use diff::{PartitionMove, RingDiff};
pub use ring::{NodeLoad, PartitionId, PartitionedRing};
