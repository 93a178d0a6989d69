//! [`AaeTrees`]: the Merkle trees of every partition this node replicates, marked dirty as
//! writes commit and refreshed from storage before they are compared.
//!
//! Freshness rule (what keeps a tree from claiming equality while the data differs): a write
//! marks its leaf *after* it commits ([`TrackedStorage`](super::TrackedStorage)), and a refresh
//! clears a leaf's mark *before* it takes the storage snapshot it summarises. So a write is either
//! in the snapshot, or its mark comes after the clear and the leaf stays dirty for the next
//! refresh. A new tree starts all dirty, so it says nothing until its first refresh.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::budget::IoBudget;
use super::tree::{MerkleTree, TreeShape};
use crate::error::KvError;
use crate::model::{HashRange, partition_hash_range};
use crate::storage::{RangeSummary, Storage, StorageExt};

/// Leaves summarised in one storage read job (bounds how long a reader thread is held).
const REFRESH_BATCH: usize = 256;

/// A refresh rebuilds the whole tree from one scan of the partition's rows, instead of one
/// range query a dirty leaf, once at least 1/`REBUILD_FRACTION` of the leaves are dirty: a new
/// tree, a periodic full rebuild, a burst of writes. (One scan reads every row of the
/// partition; per-leaf queries read only the dirty leaves' rows, but each costs a query.)
const REBUILD_FRACTION: u64 = 4;

/// The trees, by partition index, for one partition count.
#[derive(Debug)]
struct State {
    /// Partition count of the ring the trees were built for (a power of two).
    partition_count: u32,
    /// One tree a replicated partition.
    trees: BTreeMap<u32, MerkleTree>,
}

/// The Merkle trees of this node's partitions. Shared by the write hook, the exchange loop and
/// the gRPC service.
#[derive(Debug)]
pub struct AaeTrees {
    /// Shape of every tree.
    shape: TreeShape,
    /// The trees.
    state: Mutex<State>,
    /// Serialises refresh batches, so an older snapshot never overwrites a newer one.
    refresh: tokio::sync::Mutex<()>,
}

impl AaeTrees {
    /// No trees yet; [`retain`](Self::retain) creates them.
    ///
    /// # Errors
    /// [`KvError::Config`] if the shape is invalid.
    pub fn new(shape: TreeShape) -> Result<Self, KvError> {
        shape.validate().map_err(KvError::Config)?;
        Ok(Self {
            shape,
            state: Mutex::new(State {
                partition_count: 1,
                trees: BTreeMap::new(),
            }),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    /// The shape every tree has.
    pub fn shape(&self) -> TreeShape {
        self.shape
    }

    /// Locks the trees (never held across an await).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the leaf holding `hash` dirty, if this node has a tree for it.
    pub fn mark(&self, hash: u64) {
        let mut s = self.lock();
        let p = partition_of(s.partition_count, hash);
        if let Some(t) = s.trees.get_mut(&p) {
            t.mark(hash);
        }
    }

    /// Marks every leaf of every tree dirty: a change that cannot be placed (an expiry purge
    /// names no keys), or a periodic full rebuild.
    pub fn mark_all(&self) {
        for t in self.lock().trees.values_mut() {
            t.mark_all();
        }
    }

    /// Keeps trees for exactly `partitions` of a ring of `partition_count` partitions: new
    /// partitions get a new (all dirty) tree, lost ones are dropped, and a new partition count
    /// starts over.
    ///
    /// # Errors
    /// [`KvError::Config`] if `partition_count` is not a power of two.
    pub fn retain(&self, partition_count: u32, partitions: &BTreeSet<u32>) -> Result<(), KvError> {
        let bits = bits_of(partition_count)?;
        let mut s = self.lock();
        if s.partition_count != partition_count {
            s.trees.clear();
            s.partition_count = partition_count;
        }
        s.trees.retain(|p, _| partitions.contains(p));
        for &p in partitions {
            if s.trees.contains_key(&p) {
                continue;
            }
            let range = partition_hash_range(bits, u64::from(p)).ok_or_else(|| {
                KvError::Internal(format!("partition {p} of {partition_count} has no range"))
            })?;
            let tree = MerkleTree::new(range, self.shape).map_err(KvError::Config)?;
            s.trees.insert(p, tree);
        }
        Ok(())
    }

    /// The partitions that have a tree, with the ring size they belong to.
    pub fn partitions(&self) -> (u32, Vec<u32>) {
        let s = self.lock();
        (s.partition_count, s.trees.keys().copied().collect())
    }

    /// Runs `f` on partition `p`'s tree, if this node has one for that ring size.
    pub fn with_tree<R>(
        &self,
        partition_count: u32,
        p: u32,
        f: impl FnOnce(&MerkleTree) -> R,
    ) -> Option<R> {
        let s = self.lock();
        if s.partition_count != partition_count {
            return None;
        }
        s.trees.get(&p).map(f)
    }

    /// Dirty leaves over all trees (status).
    pub fn dirty_leaves(&self) -> usize {
        self.lock()
            .trees
            .values()
            .map(MerkleTree::dirty_count)
            .sum()
    }

    /// Re-reads every dirty leaf of partition `p` from `storage` and charges the rows read to
    /// `budget` (without waiting: callers that may wait do so before). Writes that land during
    /// the refresh leave their leaves dirty for the next one. Returns the rows read.
    ///
    /// # Errors
    /// Storage failures; the leaves taken are marked dirty again, so nothing is lost.
    pub async fn refresh<S: Storage>(
        &self,
        storage: &S,
        p: u32,
        budget: &IoBudget,
    ) -> Result<u64, KvError> {
        self.refresh_inner(storage, p, budget, false).await
    }

    /// [`refresh`](Self::refresh) that waits out the budget's debt before each read: what the
    /// exchange loop uses. (A tree with a quarter or more of its leaves dirty, a first build
    /// among them, is read in one scan of its partition and charged after it.)
    ///
    /// # Errors
    /// As [`refresh`](Self::refresh).
    pub async fn refresh_paced<S: Storage>(
        &self,
        storage: &S,
        p: u32,
        budget: &IoBudget,
    ) -> Result<u64, KvError> {
        self.refresh_inner(storage, p, budget, true).await
    }

    /// Both refreshes.
    async fn refresh_inner<S: Storage>(
        &self,
        storage: &S,
        p: u32,
        budget: &IoBudget,
        pace: bool,
    ) -> Result<u64, KvError> {
        let mut read = 0;
        loop {
            if pace {
                budget.ready().await;
            }
            // Held from taking a batch to applying it (not while waiting on the budget), so
            // two refreshes never interleave and an older snapshot never lands last.
            let _serial = self.refresh.lock().await;
            let whole: Option<HashRange> = {
                let mut s = self.lock();
                let Some(t) = s.trees.get_mut(&p) else {
                    return Ok(read);
                };
                let dirty = t.dirty_count() as u64;
                // Never for a clean tree (a shape of fewer than REBUILD_FRACTION leaves would
                // otherwise rescan at every refresh).
                (dirty > 0 && dirty * REBUILD_FRACTION >= self.shape.leaves()).then(|| {
                    t.take_all_dirty();
                    t.range().clone()
                })
            };
            if let Some(range) = whole {
                let taken = Taken::all(self, p);
                let rows = self.rebuild(storage, p, range).await?;
                taken.applied();
                budget.charge(rows);
                return Ok(read + rows);
            }
            let batch: Vec<(u64, HashRange)> = {
                let mut s = self.lock();
                let Some(t) = s.trees.get_mut(&p) else {
                    return Ok(read);
                };
                let leaves = t.take_dirty(REFRESH_BATCH);
                leaves
                    .into_iter()
                    .filter_map(|l| t.leaf_range(l).map(|r| (l, r)))
                    .collect()
            };
            if batch.is_empty() {
                return Ok(read);
            }
            let taken = Taken::leaves(self, p, batch.iter().map(|(_, r)| *r.start()).collect());
            let ranges: Vec<HashRange> = batch.iter().map(|(_, r)| r.clone()).collect();
            let summaries = storage
                .read(move |view| {
                    ranges
                        .iter()
                        .map(|r| view.summarize(r))
                        .collect::<Result<Vec<RangeSummary>, KvError>>()
                })
                .await?;
            let mut rows = 0;
            {
                let mut s = self.lock();
                let Some(t) = s.trees.get_mut(&p) else {
                    return Ok(read);
                };
                for ((leaf, _), summary) in batch.iter().zip(summaries) {
                    rows += summary.rows;
                    t.set_leaf(*leaf, summary);
                }
            }
            taken.applied();
            read += rows;
            budget.charge(rows);
        }
    }

    /// Rebuilds partition `p`'s tree from one scan of its rows (its dirty marks already taken);
    /// returns the rows read.
    async fn rebuild<S: Storage>(
        &self,
        storage: &S,
        p: u32,
        range: HashRange,
    ) -> Result<u64, KvError> {
        let rows = storage.read(move |view| view.row_digests(&range)).await?;
        let mut s = self.lock();
        if let Some(t) = s.trees.get_mut(&p) {
            t.rebuild(rows.iter().copied());
        }
        Ok(rows.len() as u64)
    }
}

/// Leaves whose dirty marks a refresh took. Unless the refresh applies their new summaries
/// ([`applied`](Self::applied)), dropping this marks them dirty again: on an error, and when
/// the refresh's future is dropped half-way (a peer's `TreeRoots` call cancelled at its
/// deadline, a shutdown), so a tree never looks clean with leaves it did not re-read.
struct Taken<'a> {
    /// The trees.
    trees: &'a AaeTrees,
    /// The partition.
    p: u32,
    /// The first hash of each leaf taken.
    starts: Vec<u64>,
    /// Every leaf was taken.
    all: bool,
}

impl<'a> Taken<'a> {
    /// Every leaf of `p`.
    fn all(trees: &'a AaeTrees, p: u32) -> Self {
        Self {
            trees,
            p,
            starts: Vec::new(),
            all: true,
        }
    }

    /// The leaves of `p` starting at `starts`.
    fn leaves(trees: &'a AaeTrees, p: u32, starts: Vec<u64>) -> Self {
        Self {
            trees,
            p,
            starts,
            all: false,
        }
    }

    /// The new summaries are in: nothing to mark again.
    fn applied(mut self) {
        self.starts.clear();
        self.all = false;
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.all && self.starts.is_empty() {
            return;
        }
        let mut s = self.trees.lock();
        if let Some(t) = s.trees.get_mut(&self.p) {
            if self.all {
                t.mark_all();
            }
            for &hash in &self.starts {
                t.mark(hash);
            }
        }
    }
}

/// log2 of a partition count.
fn bits_of(partition_count: u32) -> Result<u32, KvError> {
    if partition_count.is_power_of_two() {
        Ok(partition_count.trailing_zeros())
    } else {
        Err(KvError::Config(format!(
            "partition count {partition_count} is not a power of two"
        )))
    }
}

/// The partition holding `hash` in a ring of `partition_count` (a power of two) partitions.
pub(crate) fn partition_of(partition_count: u32, hash: u64) -> u32 {
    let bits = partition_count.trailing_zeros();
    hash.checked_shr(64 - bits).unwrap_or(0) as u32
}

#[cfg(test)]
#[path = "trees_tests.rs"]
mod tests;
