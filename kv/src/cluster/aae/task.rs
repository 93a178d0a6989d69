//! The anti-entropy loop: the IO shell of [`Schedule`]. Each step does one piece of work (a
//! sweep of one fellow replica's shared partitions, an exchange of one partition found
//! different, a reaping pass, or a page of leftover clean-up), `min_tick` apart; peers are
//! swept so that each comes round every `pair_interval`; every tree is re-read from storage
//! every `full_rebuild_every`.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ringkit_hashring::{NodeId, PartitionId};
use tokio::time::Instant;

use super::leftovers::CleanUpPage;
use super::node::Aae;
use super::reap::TombstoneWatch;
use super::remote::AaePeers;
use super::schedule::{PeerPartitions, Schedule, Timing, Work};
use super::session::ExchangeReport;
use super::status::{AaeStatus, ExchangeOutcome, PartitionStatus};
use super::sweep::RootVerdict;
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

/// The pairs grouped by peer: each fellow replica with the partitions shared with it.
pub fn peers_of(pairs: &[(u32, NodeId)]) -> Vec<PeerPartitions> {
    let mut by_peer: BTreeMap<NodeId, Vec<u32>> = BTreeMap::new();
    for (p, peer) in pairs {
        by_peer.entry(peer.clone()).or_default().push(*p);
    }
    by_peer.into_iter().collect()
}

/// The loop's state: the schedule, tombstones watched, when things last ran.
pub struct AaeLoop<S> {
    /// The node's anti-entropy.
    aae: Aae<S>,
    /// Anti-entropy calls to peers.
    remote: Arc<dyn AaePeers>,
    /// Object reads and merges on peers.
    peers: Arc<dyn ReplicaPeers>,
    /// What comes next.
    schedule: Schedule,
    /// Tombstones waiting out their grace.
    watch: TombstoneWatch,
    /// Last full rebuild (time since `origin`).
    last_rebuild: Duration,
    /// The loop's time origin (tokio clock, so simulated time drives it).
    origin: Instant,
    /// The fellow replicas of the last map and live set seen (recomputed only when either
    /// changes).
    fellows: Option<FellowsCache>,
}

/// A map, a live set, and the fellow replicas they give.
type FellowsCache = (Arc<ClusterMap>, LiveSet, Vec<PeerPartitions>);

/// What one [`AaeLoop::step`] did.
#[derive(Debug)]
pub enum Step {
    /// Nothing was due.
    Idle,
    /// Compared the roots shared with a peer: the verdicts, or why the sweep failed.
    Swept(NodeId, Result<Vec<(u32, RootVerdict)>, KvError>),
    /// Exchanged one partition with a peer.
    Exchanged(u32, NodeId, Result<ExchangeReport, KvError>),
    /// Scanned a partition for reapable tombstones: how many went.
    Reaped(u32, Result<usize, KvError>),
    /// Handed a page of a partition's leftover rows to its owners and dropped them here.
    CleanedUp(u32, Result<CleanUpPage, KvError>),
}

impl<S: Storage> AaeLoop<S> {
    /// A loop for `aae`, calling peers through `remote` and `peers`.
    pub fn new(aae: Aae<S>, remote: Arc<dyn AaePeers>, peers: Arc<dyn ReplicaPeers>) -> Self {
        let cfg = aae.config();
        let watch = TombstoneWatch::new(
            cfg.tombstone_grace.unwrap_or(Duration::MAX),
            cfg.max_watched_tombstones,
        );
        let schedule = Schedule::new(Timing {
            pair_interval: cfg.pair_interval,
            min_tick: cfg.min_tick,
            reap_scan_every: cfg.tombstone_grace.map(|_| cfg.reap_scan_every),
            leftover_grace: cfg.leftover_grace,
            leftover_scan_every: cfg.leftover_scan_every,
        });
        Self {
            aae,
            remote,
            peers,
            schedule,
            watch,
            last_rebuild: Duration::ZERO,
            origin: Instant::now(),
            fellows: None,
        }
    }

    /// Does the next piece of scheduled work, if any is due; returns what it did and how long
    /// to wait before the next step (`min_tick` after work, otherwise until work is due).
    pub async fn step(&mut self) -> (Step, Duration) {
        let cfg = self.aae.config().clone();
        let now = self.origin.elapsed();
        if now.saturating_sub(self.last_rebuild) >= cfg.full_rebuild_every {
            self.aae.trees().mark_all();
            self.last_rebuild = now;
        }
        let Some(fellows) = self.fellows() else {
            return (Step::Idle, cfg.pair_interval);
        };
        let work = match self.schedule.next(now, &fellows) {
            Ok(work) => work,
            Err(wait) => return (Step::Idle, wait),
        };
        let step = match work {
            Work::Sweep { peer, partitions } => {
                let result = self
                    .aae
                    .sweep(self.remote.as_ref(), &peer, &partitions)
                    .await;
                let now = self.origin.elapsed();
                match &result {
                    Ok(verdicts) => {
                        self.schedule.swept(now, &peer, verdicts);
                        self.record_sweep(&peer, verdicts);
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "anti-entropy sweep failed");
                        let at = self.aae.node().now();
                        let failed = ExchangeOutcome::Failed(e.to_string());
                        self.aae
                            .board()
                            .sweep_failed(partitions.iter().map(|&partition| PartitionStatus {
                                partition,
                                at,
                                peer: peer.clone(),
                                outcome: failed.clone(),
                            }));
                    }
                }
                Step::Swept(peer, result)
            }
            Work::Exchange { partition, peer } => {
                let result = self
                    .aae
                    .exchange(self.remote.as_ref(), self.peers.as_ref(), &peer, partition)
                    .await;
                self.schedule
                    .exchanged(self.origin.elapsed(), partition, result.is_ok());
                self.record_exchange(partition, &peer, &result);
                Step::Exchanged(partition, peer, result)
            }
            Work::Reap { partition } => Step::Reaped(partition, self.reap(partition).await),
            Work::CleanUp { partition, after } => {
                let result = self
                    .aae
                    .clean_up_page(self.peers.as_ref(), partition, after)
                    .await;
                let outcome = match &result {
                    Ok(page) => {
                        if page.dropped > 0 {
                            tracing::info!(
                                partition,
                                rows = page.dropped,
                                "dropped rows of a partition this node no longer replicates"
                            );
                        }
                        Ok(page.next.clone())
                    }
                    Err(e) => {
                        tracing::debug!(partition, error = %e, "leftover clean-up failed");
                        Err(())
                    }
                };
                self.schedule
                    .cleaned(self.origin.elapsed(), partition, outcome);
                Step::CleanedUp(partition, result)
            }
        };
        (step, cfg.min_tick)
    }

    /// The fellow replicas now, recomputed when the map or the live set changed (then queued
    /// work on partitions that left is dropped); `None` if the ring cannot be followed.
    fn fellows(&mut self) -> Option<Vec<PeerPartitions>> {
        let live = self.aae.live();
        let map = self.aae.map();
        let fresh = self
            .fellows
            .as_ref()
            .is_some_and(|(m, l, _)| Arc::ptr_eq(m, &map) && Arc::ptr_eq(l, &live));
        if !fresh {
            let (count, mine) = match self.aae.sync() {
                Ok(synced) => synced,
                Err(e) => {
                    tracing::warn!(error = %e, "anti-entropy cannot follow the ring");
                    return None;
                }
            };
            for p in self.watch.partitions() {
                if !mine.contains(&p) {
                    self.watch.forget(p);
                }
            }
            let pairs = exchange_pairs(&map, &live, self.aae.local(), &mine, self.aae.config().n);
            let fellows = peers_of(&pairs);
            self.schedule
                .retain(self.origin.elapsed(), count, &mine, &fellows);
            self.fellows = Some((map, live, fellows));
        }
        self.fellows.as_ref().map(|(_, _, f)| f.clone())
    }

    /// Records the partitions a sweep found equal or not replicated on the peer (those found
    /// different are recorded by their exchange).
    fn record_sweep(&self, peer: &NodeId, verdicts: &[(u32, RootVerdict)]) {
        self.record(verdicts.iter().filter_map(|&(p, v)| match v {
            RootVerdict::Equal => Some((p, peer, ExchangeOutcome::Equal)),
            RootVerdict::Differs => None,
            RootVerdict::NotReplicatedThere => Some((
                p,
                peer,
                ExchangeOutcome::Failed(format!(
                    "peer {peer} does not replicate partition {p} in its cluster map"
                )),
            )),
        }));
    }

    /// Records an exchange on the status board and in the log.
    fn record_exchange(
        &self,
        partition: u32,
        peer: &NodeId,
        result: &Result<ExchangeReport, KvError>,
    ) {
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
        self.record([(partition, peer, outcome)]);
    }

    /// Puts outcomes on the status board.
    fn record<'a>(&self, outcomes: impl IntoIterator<Item = (u32, &'a NodeId, ExchangeOutcome)>) {
        let at = self.aae.node().now();
        self.aae
            .board()
            .exchanged_all(outcomes.into_iter().map(|(partition, peer, outcome)| {
                PartitionStatus {
                    partition,
                    at,
                    peer: peer.clone(),
                    outcome,
                }
            }));
    }

    /// Runs a reaping pass over `partition`.
    async fn reap(&mut self, partition: u32) -> Result<usize, KvError> {
        let now = self.origin.elapsed();
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
        match &reaped {
            Ok(0) => {}
            Ok(n) => tracing::info!(partition, tombstones = n, "reaped tombstones"),
            Err(e) => tracing::debug!(partition, error = %e, "reaping pass failed"),
        }
        reaped
    }

    /// Runs until `shutdown` completes (work in flight is dropped at its next await).
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
    fn peers_get_the_partitions_they_share_with_this_node() {
        let pairs = vec![
            (1, NodeId::from("c")),
            (1, NodeId::from("b")),
            (2, NodeId::from("b")),
            (4, NodeId::from("c")),
        ];
        assert_eq!(
            peers_of(&pairs),
            vec![
                (NodeId::from("b"), vec![1, 2]),
                (NodeId::from("c"), vec![1, 4])
            ]
        );
    }
}
