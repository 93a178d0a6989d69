//! The anti-entropy loop: one exchange a tick, round-robin over every (partition, live fellow
//! replica) pair, spaced so that each pair comes round every `pair_interval`; then, at most
//! every `reap_scan_every` a partition, a reaping pass; and a full tree rebuild every
//! `full_rebuild_every`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ringkit_hashring::{NodeId, PartitionId};
use tokio::time::Instant;

use super::node::Aae;
use super::reap::TombstoneWatch;
use super::remote::AaePeers;
use super::session::ExchangeReport;
use super::status::{AaeStatus, ExchangeOutcome, PartitionStatus};
use crate::cluster::peers::ReplicaPeers;
use crate::cluster::topology::{ClusterMap, LiveSet};
use crate::error::KvError;
use crate::storage::Storage;

/// Every (partition, fellow replica) pair this node compares, sorted: partitions it
/// replicates, times the other live nodes of each one's write set.
pub fn exchange_pairs(
    map: &ClusterMap,
    live: &BTreeSet<NodeId>,
    local: &NodeId,
    mine: &BTreeSet<u32>,
    n: usize,
) -> Vec<(u32, NodeId)> {
    let ring = map.ring();
    let mut pairs = Vec::new();
    for &p in mine {
        let start = *ring.partition_range(PartitionId(p)).start();
        for peer in map.replica_set(start, n).write {
            if peer != *local && live.contains(&peer) {
                pairs.push((p, peer));
            }
        }
    }
    pairs
}

/// The pause between exchanges: the pair interval spread over the pairs, at least `min_tick`.
pub fn tick_for(pairs: usize, pair_interval: Duration, min_tick: Duration) -> Duration {
    let spread = pair_interval / u32::try_from(pairs.max(1)).unwrap_or(u32::MAX);
    spread.max(min_tick)
}

/// The loop's state: whose turn it is, tombstones watched, when things last ran.
pub struct AaeLoop<S> {
    /// The node's anti-entropy.
    aae: Aae<S>,
    /// Anti-entropy calls to peers.
    remote: Arc<dyn AaePeers>,
    /// Object reads and merges on peers.
    peers: Arc<dyn ReplicaPeers>,
    /// Index of the next pair.
    cursor: usize,
    /// Tombstones waiting out their grace.
    watch: TombstoneWatch,
    /// Last reaping scan of each partition (time since `origin`).
    reap_scans: BTreeMap<u32, Duration>,
    /// Last full rebuild (time since `origin`).
    last_rebuild: Duration,
    /// The loop's time origin (tokio clock, so simulated time drives it).
    origin: Instant,
    /// The pairs of the last map and live set seen (recomputed only when either changes).
    pairs: Option<PairsCache>,
}

/// A map, a live set, and the exchange pairs they give.
type PairsCache = (Arc<ClusterMap>, LiveSet, Vec<(u32, NodeId)>);

impl<S: Storage> AaeLoop<S> {
    /// A loop for `aae`, calling peers through `remote` and `peers`.
    pub fn new(aae: Aae<S>, remote: Arc<dyn AaePeers>, peers: Arc<dyn ReplicaPeers>) -> Self {
        let cfg = aae.config();
        let watch = TombstoneWatch::new(
            cfg.tombstone_grace.unwrap_or(Duration::MAX),
            cfg.max_watched_tombstones,
        );
        Self {
            aae,
            remote,
            peers,
            cursor: 0,
            watch,
            reap_scans: BTreeMap::new(),
            last_rebuild: Duration::ZERO,
            origin: Instant::now(),
            pairs: None,
        }
    }

    /// Runs one exchange with the next pair (and a reaping pass if due). Returns the pair and
    /// the outcome, or `None` when there is nobody to compare with. Also returns how long to
    /// wait before the next step.
    pub async fn step(
        &mut self,
    ) -> (
        Option<(u32, NodeId, Result<ExchangeReport, KvError>)>,
        Duration,
    ) {
        let cfg = self.aae.config().clone();
        let now = self.origin.elapsed();
        if now.saturating_sub(self.last_rebuild) >= cfg.full_rebuild_every {
            self.aae.trees().mark_all();
            self.last_rebuild = now;
        }
        let mine = match self.aae.sync() {
            Ok((_, mine)) => mine,
            Err(e) => {
                tracing::warn!(error = %e, "anti-entropy cannot follow the ring");
                return (None, cfg.pair_interval);
            }
        };
        for p in self.watch.partitions() {
            if !mine.contains(&p) {
                self.watch.forget(p);
            }
        }
        let live = self.aae.live();
        let map = self.aae.map();
        let fresh = self
            .pairs
            .as_ref()
            .is_some_and(|(m, l, _)| Arc::ptr_eq(m, &map) && Arc::ptr_eq(l, &live));
        if !fresh {
            let pairs = exchange_pairs(&map, &live, self.aae.local(), &mine, cfg.n);
            self.pairs = Some((Arc::clone(&map), Arc::clone(&live), pairs));
        }
        let pairs = self
            .pairs
            .as_ref()
            .map_or(&[][..], |(_, _, p)| p.as_slice());
        let tick = tick_for(pairs.len(), cfg.pair_interval, cfg.min_tick);
        if pairs.is_empty() {
            return (None, tick);
        }
        let (partition, peer) = pairs[self.cursor % pairs.len()].clone();
        self.cursor = self.cursor.wrapping_add(1);
        let result = self
            .aae
            .exchange(self.remote.as_ref(), self.peers.as_ref(), &peer, partition)
            .await;
        self.record(partition, &peer, &result);
        if result.is_ok() {
            self.maybe_reap(partition, &cfg).await;
        }
        (Some((partition, peer, result)), tick)
    }

    /// Records an exchange on the status board and in the log.
    fn record(&self, partition: u32, peer: &NodeId, result: &Result<ExchangeReport, KvError>) {
        let outcome = match result {
            Ok(r) if r.keys_differing == 0 => ExchangeOutcome::Equal,
            Ok(r) => {
                tracing::info!(partition, %peer, keys = r.keys_differing, merged = r.merged_locally, pushed = r.pushed, "anti-entropy repaired keys");
                ExchangeOutcome::Repaired {
                    keys: r.keys_differing,
                }
            }
            Err(e) => {
                tracing::debug!(partition, %peer, error = %e, "anti-entropy exchange failed");
                ExchangeOutcome::Failed(e.to_string())
            }
        };
        self.aae.board().exchanged(PartitionStatus {
            partition,
            at: self.aae.node().now(),
            peer: peer.clone(),
            outcome,
        });
    }

    /// Runs a reaping pass over `partition` if its last one is old enough.
    async fn maybe_reap(&mut self, partition: u32, cfg: &super::AaeConfig) {
        if cfg.tombstone_grace.is_none() {
            return;
        }
        let now = self.origin.elapsed();
        let due = self
            .reap_scans
            .get(&partition)
            .is_none_or(|&last| now.saturating_sub(last) >= cfg.reap_scan_every);
        if !due {
            return;
        }
        self.reap_scans.insert(partition, now);
        let reaped = self
            .aae
            .reap_partition(
                self.remote.as_ref(),
                self.peers.as_ref(),
                &mut self.watch,
                partition,
                now,
            )
            .await;
        match reaped {
            Ok(0) => {}
            Ok(n) => tracing::info!(partition, tombstones = n, "reaped tombstones"),
            Err(e) => tracing::debug!(partition, error = %e, "reaping pass failed"),
        }
    }

    /// Runs until `shutdown` completes (an exchange in flight is dropped at its next await).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let wait = tokio::select! {
                () = &mut shutdown => return,
                (_, wait) = self.step() => wait,
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Spawns the anti-entropy loop of `aae`; it stops when `shutdown` completes (await the handle).
pub fn spawn<S: Storage>(
    aae: Aae<S>,
    remote: Arc<dyn AaePeers>,
    peers: Arc<dyn ReplicaPeers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(AaeLoop::new(aae, remote, peers).run(shutdown))
}

impl<S: Storage> Aae<S> {
    /// A snapshot for the admin API (partitions this node no longer replicates are left out).
    pub fn status(&self) -> AaeStatus {
        let trees = self.trees();
        let (_, mine) = trees.partitions();
        let mut status =
            self.board()
                .snapshot(mine.len(), trees.dirty_leaves(), self.config().rows_per_sec);
        status
            .partitions
            .retain(|p| mine.binary_search(&p.partition).is_ok());
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cluster::aae::replicated_partitions;
    use crate::cluster::topology::Member;
    use ringkit_hashring::RingConfig;

    #[test]
    fn pairs_are_my_partitions_times_my_live_fellow_replicas() {
        let members: Vec<Member> = (0..4)
            .map(|i| Member::new(format!("n{i}"), format!("h:{i}")))
            .collect();
        let map = ClusterMap::bootstrap(RingConfig::for_cluster_size(4), members)
            .unwrap_or_else(|e| panic!("{e}"));
        let me = NodeId::from("n0");
        let mine = replicated_partitions(&map, &me, 3);
        let count = map.ring().partition_count();
        assert!(!mine.is_empty() && mine.len() < count as usize);
        let everyone: BTreeSet<NodeId> = map.members().map(|m| m.id.clone()).collect();
        let pairs = exchange_pairs(&map, &everyone, &me, &mine, 3);
        assert_eq!(
            pairs.len(),
            mine.len() * 2,
            "two fellow replicas a partition"
        );
        assert!(
            pairs
                .iter()
                .all(|(p, peer)| mine.contains(p) && *peer != me)
        );
        let mut without_n1 = everyone.clone();
        without_n1.remove(&NodeId::from("n1"));
        let fewer = exchange_pairs(&map, &without_n1, &me, &mine, 3);
        assert!(fewer.iter().all(|(_, peer)| peer.as_ref() != "n1"));
        assert!(fewer.len() < pairs.len());
    }

    #[test]
    fn ticks_spread_the_pair_interval() {
        let s = Duration::from_secs(1);
        assert_eq!(tick_for(10, 10 * s, Duration::from_millis(20)), s);
        assert_eq!(tick_for(0, 10 * s, Duration::from_millis(20)), 10 * s);
        assert_eq!(
            tick_for(100_000, 10 * s, Duration::from_millis(20)),
            Duration::from_millis(20)
        );
    }
}
