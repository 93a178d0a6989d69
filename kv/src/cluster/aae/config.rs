//! [`AaeConfig`]: how often replicas compare, how much IO they may spend, when tombstones go.

use std::time::Duration;

use super::tree::TreeShape;

/// Settings of active anti-entropy. Plain fields, [`Default`], [`validate`](Self::validate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AaeConfig {
    /// Replicas a key has (the cluster's N): which partitions this node replicates.
    pub n: usize,
    /// Each (partition, peer) pair is compared about this often: the loop sweeps each fellow
    /// replica's shared partitions in one call, spacing the sweeps of the peers evenly over it
    /// (at least [`min_tick`](Self::min_tick) apart).
    pub pair_interval: Duration,
    /// Smallest pause between two pieces of work (sweeps, exchanges, reaping passes).
    pub min_tick: Duration,
    /// Shape of every tree (both sides of an exchange must agree).
    pub shape: TreeShape,
    /// Rows read a second by tree refreshes, exchanges and reaping scans (0: unlimited).
    pub rows_per_sec: u64,
    /// Rows that may be read at once after an idle period.
    pub burst_rows: u64,
    /// Most differing leaves one exchange finds (the rest wait for the next one).
    pub max_leaves_per_exchange: usize,
    /// An exchange stops listing further leaves once it has listed this many rows (both sides;
    /// checked between listings, so one listing of up to 64 adjacent leaves may overshoot).
    pub max_rows_per_exchange: u64,
    /// Rows a page when listing a leaf (local reads and the peer's `Rows`).
    pub page_rows: usize,
    /// Keys a `Read`/`Merge` call carries during repair.
    pub repair_batch: usize,
    /// Deadline of one anti-entropy call to a peer.
    pub rpc_timeout: Duration,
    /// Every tree is re-read from storage this often, as a guard against any missed mark.
    pub full_rebuild_every: Duration,
    /// A tombstone is reaped only after every replica held it, unchanged, for this long, and
    /// only if no node holds an undelivered hint (for any target). `None`: never reap.
    pub tombstone_grace: Option<Duration>,
    /// A partition is scanned for reapable tombstones at most this often.
    pub reap_scan_every: Duration,
    /// Most tombstones a node watches for reaping (memory bound; more wait for later scans).
    pub max_watched_tombstones: usize,
    /// Rows of a partition this node no longer replicates (handed off by a transfer, or
    /// written by a coordinator with an older map) are handed to its owners and dropped here
    /// this long after the partition left. `None`: keep them.
    pub leftover_grace: Option<Duration>,
    /// A partition this node does not replicate is looked at for leftovers this often.
    pub leftover_scan_every: Duration,
}

impl Default for AaeConfig {
    fn default() -> Self {
        Self {
            n: 3,
            pair_interval: Duration::from_secs(10),
            min_tick: Duration::from_millis(20),
            shape: TreeShape::default(),
            rows_per_sec: 20_000,
            burst_rows: 2_000,
            max_leaves_per_exchange: 1024,
            max_rows_per_exchange: 20_000,
            page_rows: 500,
            repair_batch: 256,
            rpc_timeout: Duration::from_secs(10),
            full_rebuild_every: Duration::from_secs(24 * 3600),
            tombstone_grace: Some(Duration::from_secs(24 * 3600)),
            reap_scan_every: Duration::from_secs(3600),
            max_watched_tombstones: 100_000,
            leftover_grace: Some(Duration::from_secs(600)),
            leftover_scan_every: Duration::from_secs(3600),
        }
    }
}

/// Most rows a page may hold (requests and local reads).
pub const MAX_PAGE_ROWS: usize = 1000;

impl AaeConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// A message naming the bad field and what it needs.
    pub fn validate(&self) -> Result<(), String> {
        self.shape.validate()?;
        if self.n == 0 {
            return Err("aae n must be at least 1".to_owned());
        }
        if self.pair_interval.is_zero() || self.min_tick.is_zero() {
            return Err("aae pair_interval and min_tick must be positive".to_owned());
        }
        if !(1..=MAX_PAGE_ROWS).contains(&self.page_rows) {
            return Err(format!(
                "aae page_rows must be 1 to {MAX_PAGE_ROWS} (got {})",
                self.page_rows
            ));
        }
        if self.repair_batch == 0 || self.max_leaves_per_exchange == 0 {
            return Err("aae repair_batch and max_leaves_per_exchange must be positive".to_owned());
        }
        if self.rpc_timeout.is_zero()
            || self.reap_scan_every.is_zero()
            || self.leftover_scan_every.is_zero()
        {
            return Err(
                "aae rpc_timeout, reap_scan_every and leftover_scan_every must be positive"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(AaeConfig::default().validate(), Ok(()));
        let bad = AaeConfig {
            page_rows: 0,
            ..AaeConfig::default()
        };
        assert!(bad.validate().is_err_and(|e| e.contains("page_rows")));
        let bad = AaeConfig {
            n: 0,
            ..AaeConfig::default()
        };
        assert!(bad.validate().is_err_and(|e| e.contains("n must")));
    }
}
