//! What anti-entropy has done: Prometheus metrics, and an [`AaeStatus`] snapshot for the admin
//! API ("AAE status": per partition, when it was last compared, with whom, and what came of it).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ringkit_hashring::NodeId;

use crate::model::Timestamp;

/// How an exchange ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeOutcome {
    /// The trees were equal: nothing to repair.
    Equal,
    /// Keys differed and were merged both ways.
    Repaired {
        /// Keys on which the replicas disagreed.
        keys: u64,
    },
    /// The exchange stopped on an error (the message); the next round retries.
    Failed(String),
}

/// The last exchange of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// When it ended (node clock).
    pub at: Timestamp,
    /// The replica compared with.
    pub peer: NodeId,
    /// What came of it.
    pub outcome: ExchangeOutcome,
}

/// A snapshot of anti-entropy on one node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AaeStatus {
    /// Partitions with a tree (replicated here).
    pub trees: usize,
    /// Leaves written since their last refresh, over all trees.
    pub dirty_leaves: usize,
    /// Comparisons completed: partitions a sweep found equal, and exchanges (equal or
    /// repaired).
    pub exchanges: u64,
    /// Exchanges and sweeps that failed (a failed sweep counts once).
    pub failed_exchanges: u64,
    /// Keys repaired (disagreements found and merged), since start.
    pub keys_repaired: u64,
    /// Tombstones this node reaped, since start.
    pub tombstones_reaped: u64,
    /// Rows of partitions this node no longer replicates, dropped after their owners took
    /// them, since start.
    pub leftover_rows_dropped: u64,
    /// The IO budget, rows a second (0: unlimited).
    pub rows_per_sec: u64,
    /// The last exchange of each partition, by partition.
    pub partitions: Vec<PartitionStatus>,
    /// Why the last reaping attempt held back, if it did.
    pub reap_blocked: Option<String>,
}

/// Counters behind [`AaeStatus`].
#[derive(Debug, Default)]
struct Board {
    /// Completed exchanges.
    exchanges: u64,
    /// Failed exchanges.
    failed: u64,
    /// Keys repaired.
    keys: u64,
    /// Tombstones reaped.
    reaped: u64,
    /// Leftover rows dropped.
    leftovers: u64,
    /// Last exchange a partition.
    last: BTreeMap<u32, PartitionStatus>,
    /// Last reason reaping held back.
    reap_blocked: Option<String>,
}

/// The shared, updatable status (never locked across an await).
#[derive(Debug, Default)]
pub(crate) struct StatusBoard {
    /// The counters.
    board: Mutex<Board>,
}

impl StatusBoard {
    /// Locks the board.
    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the outcomes of several exchanges (or of a sweep, one a partition).
    pub(crate) fn exchanged_all(&self, statuses: impl IntoIterator<Item = PartitionStatus>) {
        let mut b = self.lock();
        for status in statuses {
            let label = match &status.outcome {
                ExchangeOutcome::Equal => "equal",
                ExchangeOutcome::Repaired { .. } => "repaired",
                ExchangeOutcome::Failed(_) => "failed",
            };
            metrics::counter!("kv_aae_exchanges_total", "outcome" => label).increment(1);
            match &status.outcome {
                ExchangeOutcome::Failed(_) => b.failed += 1,
                ExchangeOutcome::Repaired { keys } => {
                    metrics::counter!("kv_aae_keys_repaired_total").increment(*keys);
                    b.exchanges += 1;
                    b.keys += keys;
                }
                ExchangeOutcome::Equal => b.exchanges += 1,
            }
            b.last.insert(status.partition, status);
        }
        // The least recently compared partition: how stale anti-entropy's coverage is.
        if let Some(oldest) = b.last.values().map(|s| s.at).min() {
            metrics::gauge!("kv_aae_oldest_exchange_timestamp_seconds")
                .set(oldest.0 as f64 / 1000.0);
        }
    }

    /// Records reaped tombstones.
    pub(crate) fn reaped(&self, n: u64) {
        if n > 0 {
            metrics::counter!("kv_aae_tombstones_reaped_total").increment(n);
            self.lock().reaped += n;
        }
    }

    /// Records a failed sweep: one failure, shown as the last outcome of each of its
    /// partitions.
    pub(crate) fn sweep_failed(&self, statuses: impl IntoIterator<Item = PartitionStatus>) {
        metrics::counter!("kv_aae_exchanges_total", "outcome" => "failed").increment(1);
        let mut b = self.lock();
        b.failed += 1;
        for status in statuses {
            b.last.insert(status.partition, status);
        }
    }

    /// Records leftover rows dropped.
    pub(crate) fn leftovers_dropped(&self, n: u64) {
        if n > 0 {
            metrics::counter!("kv_aae_leftover_rows_dropped_total").increment(n);
            self.lock().leftovers += n;
        }
    }

    /// Records why reaping held back (`None`: it did not).
    pub(crate) fn reap_blocked(&self, reason: Option<String>) {
        self.lock().reap_blocked = reason;
    }

    /// A snapshot; the caller fills in the tree figures.
    pub(crate) fn snapshot(
        &self,
        trees: usize,
        dirty_leaves: usize,
        rows_per_sec: u64,
    ) -> AaeStatus {
        metrics::gauge!("kv_aae_dirty_leaves").set(dirty_leaves as f64);
        let b = self.lock();
        AaeStatus {
            trees,
            dirty_leaves,
            exchanges: b.exchanges,
            failed_exchanges: b.failed,
            keys_repaired: b.keys,
            tombstones_reaped: b.reaped,
            leftover_rows_dropped: b.leftovers,
            rows_per_sec,
            partitions: b.last.values().cloned().collect(),
            reap_blocked: b.reap_blocked.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_counts_and_keeps_the_last_exchange_per_partition() {
        let board = StatusBoard::default();
        let at = |ms| PartitionStatus {
            partition: 3,
            at: Timestamp(ms),
            peer: NodeId::from("b"),
            outcome: ExchangeOutcome::Repaired { keys: 2 },
        };
        board.exchanged_all([at(1)]);
        board.exchanged_all([PartitionStatus {
            outcome: ExchangeOutcome::Failed("down".into()),
            ..at(2)
        }]);
        board.reaped(4);
        let s = board.snapshot(1, 0, 100);
        assert_eq!(
            (s.exchanges, s.failed_exchanges, s.keys_repaired),
            (1, 1, 2)
        );
        assert_eq!(s.tombstones_reaped, 4);
        assert_eq!(s.partitions.len(), 1);
        assert_eq!(s.partitions[0].at, Timestamp(2));
    }
}
