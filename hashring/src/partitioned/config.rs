//! Configuration of the partitioned ring.

use serde::{Deserialize, Serialize};

use crate::HashRingError;
use crate::topology::MAX_SPREAD;

/// Most partitions a ring may have (2^24: 16.7 M partitions, a 200 MB table at 3 replicas).
pub const MAX_PARTITIONS: u32 = 1 << 24;

/// Most replicas a partition's stored preference list may have.
pub const MAX_REPLICAS: usize = MAX_SPREAD;

/// Partitions per node that [`RingConfig::for_cluster_size`] aims for.
///
/// Balance is quantised: with `q` partitions per node the worst node owns at most
/// `ceil(q) / q` of its fair share, so 64 per node keeps peak/mean under 1.02 while the table of a
/// 1000-node cluster stays under 1 MB.
pub const PARTITIONS_PER_NODE: u32 = 64;

/// Shape of a [`PartitionedRing`](crate::PartitionedRing): how finely the hash space is cut and how
/// many replicas each piece keeps.
///
/// Plain data with public fields, `Default`, a preset for a cluster size, and [`validate`](Self::validate).
/// Both fields are fixed for the ring's life: changing `partitions` re-places every key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RingConfig {
    /// Number of equal hash-range partitions, Q: a power of two from 1 to [`MAX_PARTITIONS`], at
    /// least the number of nodes. Choose it for the largest cluster you expect; 64 times the node
    /// count is a good target (see [`for_cluster_size`](Self::for_cluster_size)).
    pub partitions: u32,
    /// Length of the stored preference list of each partition (the replication factor N, 1 to
    /// [`MAX_REPLICAS`]). Zone spread and load balance are guaranteed for these entries; a lookup
    /// asking for more gets the extra replicas from the fallback walk, still zone-spread but not
    /// load-balanced by the claim.
    pub replicas: usize,
}

impl Default for RingConfig {
    /// 1024 partitions and 3 replicas: good for clusters of up to 16 nodes.
    fn default() -> Self {
        Self {
            partitions: 1024,
            replicas: 3,
        }
    }
}

impl RingConfig {
    /// The default for a cluster of about `nodes` nodes: `PARTITIONS_PER_NODE * nodes` partitions
    /// rounded up to a power of two (at least 64), and 3 replicas.
    ///
    /// ```
    /// use ringkit_hashring::RingConfig;
    /// assert_eq!(RingConfig::for_cluster_size(10).partitions, 1024);
    /// assert_eq!(RingConfig::for_cluster_size(1000).partitions, 65536);
    /// ```
    #[must_use]
    pub fn for_cluster_size(nodes: usize) -> Self {
        let wanted = (nodes as u64)
            .saturating_mul(u64::from(PARTITIONS_PER_NODE))
            .clamp(64, u64::from(MAX_PARTITIONS));
        Self {
            partitions: wanted.next_power_of_two() as u32,
            replicas: 3,
        }
    }

    /// Same configuration with another replica count.
    #[must_use]
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// Checks the ranges documented on each field.
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] naming the field and the accepted values.
    pub fn validate(&self) -> Result<(), HashRingError> {
        if !self.partitions.is_power_of_two() || self.partitions > MAX_PARTITIONS {
            return Err(HashRingError::BadConfig {
                field: "partitions",
                reason: format!(
                    "{} is not a power of two between 1 and {MAX_PARTITIONS}; \
                     try RingConfig::for_cluster_size(expected_nodes)",
                    self.partitions
                ),
            });
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(HashRingError::BadConfig {
                field: "replicas",
                reason: format!(
                    "{} is outside 1..={MAX_REPLICAS}; 3 is the usual choice",
                    self.replicas
                ),
            });
        }
        Ok(())
    }

    /// Bits of the key hash that select a partition (log2 of `partitions`).
    pub(crate) fn partition_bits(&self) -> u32 {
        self.partitions.trailing_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_powers_of_two() {
        for n in [0, 1, 3, 10, 100, 1000, 5000, usize::MAX] {
            let c = RingConfig::for_cluster_size(n);
            c.validate().unwrap();
            assert!(
                u64::from(c.partitions)
                    >= (n as u64).saturating_mul(64).min(u64::from(MAX_PARTITIONS))
            );
        }
        RingConfig::default().validate().unwrap();
    }

    #[test]
    fn validation_names_the_field() {
        let bad = RingConfig {
            partitions: 1000,
            replicas: 3,
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("partitions") && err.contains("power of two"),
            "{err}"
        );
        let bad = RingConfig::default().with_replicas(0);
        assert!(bad.validate().unwrap_err().to_string().contains("replicas"));
    }
}
