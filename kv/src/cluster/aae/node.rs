//! [`Aae`]: a node's anti-entropy state (trees, budget, status) and the answers it gives peers.
//!
//! The gRPC service and the in-memory test peers both call these handlers, so the tests of the
//! exchange run the same server-side code as production.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use ringkit_hashring::{NodeId, PartitionId};
use tokio::sync::watch;

use super::budget::IoBudget;
use super::config::{AaeConfig, MAX_PAGE_ROWS};
use super::exchange::RowDigest;
use super::remote::{MAX_ROOTS_PER_QUERY, RemoteRow, RootsQuery, RowsPage, RowsQuery, TreeQuery};
use super::status::StatusBoard;
use super::tracked::TrackedStorage;
use super::tree::TreeShape;
use super::trees::AaeTrees;
use crate::cluster::topology::{ClusterMap, LiveSet};
use crate::error::KvError;
use crate::node::KvNode;
use crate::storage::{Applied, RangeSummary, Storage, StorageExt, WriteOp};

/// Shared state behind [`Aae`].
struct Inner<S> {
    /// This node.
    local: NodeId,
    /// The node whose data is compared; its store marks the trees.
    node: KvNode<TrackedStorage<S>>,
    /// Settings.
    config: AaeConfig,
    /// The IO budget shared by every anti-entropy read on this node.
    budget: IoBudget,
    /// The cluster map (ring, members, transfers).
    map: watch::Receiver<Arc<ClusterMap>>,
    /// Who is alive.
    live: watch::Receiver<LiveSet>,
    /// Counters and per-partition history for the admin API.
    status: StatusBoard,
    /// The map the trees were last aligned with, and the result: a map is immutable, so the
    /// O(partitions) alignment runs once a map, not once a request.
    synced: Mutex<Option<Synced>>,
}

/// A map and the partitions this node replicates in it.
type Synced = (Arc<ClusterMap>, u32, BTreeSet<u32>);

/// A node's anti-entropy: cheap to clone, clones share everything.
pub struct Aae<S> {
    /// The state.
    inner: Arc<Inner<S>>,
}

impl<S> Clone for Aae<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S> std::fmt::Debug for Aae<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aae")
            .field("local", &self.inner.local)
            .finish_non_exhaustive()
    }
}

/// The partitions `local` replicates in `map` (it is in their write set: a primary, or an old
/// owner while a transfer runs).
pub fn replicated_partitions(map: &ClusterMap, local: &NodeId, n: usize) -> BTreeSet<u32> {
    let ring = map.ring();
    (0..ring.partition_count())
        .filter(|&p| {
            let start = *ring.partition_range(PartitionId(p)).start();
            map.replica_set(start, n).write.contains(local)
        })
        .collect()
}

impl<S: Storage> Aae<S> {
    /// Anti-entropy for `node`, whose store must be the [`TrackedStorage`] of the trees.
    ///
    /// # Errors
    /// [`KvError::Config`] if `config` is invalid or does not match the trees' shape.
    pub fn new(
        local: NodeId,
        node: KvNode<TrackedStorage<S>>,
        config: AaeConfig,
        map: watch::Receiver<Arc<ClusterMap>>,
        live: watch::Receiver<LiveSet>,
    ) -> Result<Self, KvError> {
        config.validate().map_err(KvError::Config)?;
        if node.storage().trees().shape() != config.shape {
            return Err(KvError::Config(
                "aae shape differs from the shape of the trees the store marks".to_owned(),
            ));
        }
        let budget = IoBudget::new(config.rows_per_sec, config.burst_rows);
        let aae = Self {
            inner: Arc::new(Inner {
                local,
                node,
                config,
                budget,
                map,
                live,
                status: StatusBoard::default(),
                synced: Mutex::new(None),
            }),
        };
        aae.sync()?;
        Ok(aae)
    }

    /// This node's id.
    pub fn local(&self) -> &NodeId {
        &self.inner.local
    }

    /// The node whose data this compares.
    pub fn node(&self) -> &KvNode<TrackedStorage<S>> {
        &self.inner.node
    }

    /// The trees.
    pub fn trees(&self) -> &Arc<AaeTrees> {
        self.inner.node.storage().trees()
    }

    /// The settings.
    pub fn config(&self) -> &AaeConfig {
        &self.inner.config
    }

    /// The IO budget.
    pub fn budget(&self) -> &IoBudget {
        &self.inner.budget
    }

    /// The current cluster map.
    pub fn map(&self) -> Arc<ClusterMap> {
        Arc::clone(&self.inner.map.borrow())
    }

    /// The nodes currently believed alive.
    pub fn live(&self) -> LiveSet {
        Arc::clone(&self.inner.live.borrow())
    }

    /// The status board.
    pub(crate) fn board(&self) -> &StatusBoard {
        &self.inner.status
    }

    /// Brings the set of trees in line with the current map; returns the ring size and the
    /// partitions this node replicates.
    ///
    /// # Errors
    /// The ring's partition count is not a power of two (a bug in the ring).
    pub fn sync(&self) -> Result<(u32, BTreeSet<u32>), KvError> {
        let map = self.map();
        let mut cache = self
            .inner
            .synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, count, mine)) = cache.as_ref()
            && Arc::ptr_eq(seen, &map)
        {
            return Ok((*count, mine.clone()));
        }
        let count = map.ring().partition_count();
        let mine = replicated_partitions(&map, &self.inner.local, self.inner.config.n);
        self.trees().retain(count, &mine)?;
        *cache = Some((map, count, mine.clone()));
        Ok((count, mine))
    }

    /// Refuses a peer whose trees have another shape (their summaries would not compare).
    fn check_shape(&self, shape: TreeShape) -> Result<(), KvError> {
        let ours = self.inner.config.shape;
        if shape == ours {
            return Ok(());
        }
        Err(KvError::InvalidArgument(format!(
            "tree shape {}x{} differs from this node's {}x{} (set the same aae shape on every node)",
            shape.fan_out, shape.depth, ours.fan_out, ours.depth
        )))
    }

    /// Answers a peer's [`RootsQuery`]: refreshes each partition this node replicates, then
    /// sends its root; `None` for the others (a peer that follows an older or newer map).
    ///
    /// # Errors
    /// INVALID_ARGUMENT when the ring size or tree shape differs from ours, a partition is out
    /// of range, or the query names more than [`MAX_ROOTS_PER_QUERY`] partitions; storage
    /// failures.
    pub async fn tree_roots(&self, q: RootsQuery) -> Result<Vec<Option<RangeSummary>>, KvError> {
        self.check_shape(q.shape)?;
        let (count, mine) = self.sync()?;
        if q.partition_count != count {
            return Err(KvError::InvalidArgument(format!(
                "ring of {} partitions differs from node {}'s {count} (epoch {})",
                q.partition_count,
                self.inner.local,
                self.map().epoch()
            )));
        }
        if q.partitions.len() > MAX_ROOTS_PER_QUERY {
            return Err(KvError::InvalidArgument(format!(
                "{} partitions in one roots query; ask for at most {MAX_ROOTS_PER_QUERY}",
                q.partitions.len()
            )));
        }
        if let Some(bad) = q.partitions.iter().find(|&&p| p >= count) {
            return Err(KvError::InvalidArgument(format!(
                "partition {bad} is out of range (the ring has {count})"
            )));
        }
        let mut roots = Vec::with_capacity(q.partitions.len());
        for p in q.partitions {
            if !mine.contains(&p) {
                roots.push(None);
                continue;
            }
            self.trees()
                .refresh(self.inner.node.storage(), p, &self.inner.budget)
                .await?;
            roots.push(self.trees().with_tree(count, p, |t| t.node(0, 0)).flatten());
        }
        Ok(roots)
    }

    /// Answers a peer's [`TreeQuery`]: refreshes the partition first when the root is asked for.
    ///
    /// # Errors
    /// INVALID_ARGUMENT when the tree's identity differs from ours or an index is out of range;
    /// storage failures.
    pub async fn tree_nodes(&self, q: TreeQuery) -> Result<Vec<RangeSummary>, KvError> {
        self.check_shape(q.shape)?;
        let (count, mine) = self.sync()?;
        if q.partition_count != count || !mine.contains(&q.partition) {
            return Err(KvError::InvalidArgument(format!(
                "node {} does not replicate partition {} of {} (its ring has {count} partitions, epoch {})",
                self.inner.local,
                q.partition,
                q.partition_count,
                self.map().epoch()
            )));
        }
        let leaves = self.inner.config.shape.leaves();
        if q.level > q.shape.depth || q.nodes.len() as u64 > leaves {
            return Err(KvError::InvalidArgument(format!(
                "tree level {} or {} nodes out of range (depth {}, {leaves} leaves)",
                q.level,
                q.nodes.len(),
                q.shape.depth
            )));
        }
        if q.level == 0 {
            self.trees()
                .refresh(self.inner.node.storage(), q.partition, &self.inner.budget)
                .await?;
        }
        self.trees()
            .with_tree(count, q.partition, |t| {
                q.nodes
                    .iter()
                    .map(|&i| {
                        t.node(q.level, i).ok_or_else(|| {
                            KvError::InvalidArgument(format!(
                                "no tree node {i} at level {}",
                                q.level
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_else(|| {
                Err(KvError::Unavailable(format!(
                    "partition {} left this node during the call",
                    q.partition
                )))
            })
    }

    /// Answers a peer's [`RowsQuery`] (the rows are charged to this node's budget).
    ///
    /// # Errors
    /// INVALID_ARGUMENT for an empty range or a page size outside 1 to 1000; storage failures.
    pub async fn rows(&self, q: RowsQuery) -> Result<RowsPage, KvError> {
        if q.range.start() > q.range.end() {
            return Err(KvError::InvalidArgument(format!(
                "hash range start {} is after its end {}",
                q.range.start(),
                q.range.end()
            )));
        }
        if !(1..=MAX_PAGE_ROWS).contains(&q.limit) {
            return Err(KvError::InvalidArgument(format!(
                "rows limit must be 1 to {MAX_PAGE_ROWS} (got {})",
                q.limit
            )));
        }
        let page = self.local_rows(q.range, q.after, q.limit).await?;
        let more = page.len() == q.limit;
        let rows = page
            .into_iter()
            .map(|r| RemoteRow {
                digest: RowDigest::from(&r),
                object: q.include_objects.then_some(r.object),
            })
            .collect();
        Ok(RowsPage { rows, more })
    }

    /// One page of this node's rows (charged to the budget, not waiting on it).
    ///
    /// # Errors
    /// Storage failures.
    pub(crate) async fn local_rows(
        &self,
        range: crate::model::HashRange,
        after: Option<(u64, Bytes)>,
        limit: usize,
    ) -> Result<Vec<crate::storage::RowEntry>, KvError> {
        let rows = self
            .inner
            .node
            .storage()
            .read(move |view| {
                view.hash_range(&range, after.as_ref().map(|(h, k)| (*h, k.as_ref())), limit)
            })
            .await?;
        self.inner.budget.charge(rows.len() as u64);
        Ok(rows)
    }

    /// Deletes each tombstone whose digest is still the one given; returns how many went.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn reap(&self, items: Vec<(Bytes, u64)>) -> Result<usize, KvError> {
        if items.is_empty() {
            return Ok(0);
        }
        let ops = items
            .into_iter()
            .map(|(key, digest)| WriteOp::ReapIfUnchanged { key, digest })
            .collect();
        let node = &self.inner.node;
        let results = node.submit(node.now(), ops).await?;
        let mut reaped = 0;
        for r in results {
            if let Applied::Removed { rows } = r? {
                reaped += rows;
            }
        }
        self.inner.status.reaped(reaped as u64);
        Ok(reaped)
    }

    /// The nodes this node holds undelivered hints for, sorted.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn hint_targets(&self) -> Result<Vec<String>, KvError> {
        let backlog = self
            .inner
            .node
            .storage()
            .read(|view| view.hint_summary())
            .await?;
        let mut targets: Vec<String> = backlog
            .into_iter()
            .filter(|b| b.hints > 0)
            .map(|b| b.target)
            .collect();
        targets.sort();
        targets.dedup();
        Ok(targets)
    }
}
