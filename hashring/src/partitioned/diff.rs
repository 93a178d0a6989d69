//! [`RingDiff`]: which replica slots changed hands between two ring versions.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::ring::{PartitionId, PartitionedRing, partition_range};
use crate::NodeId;
use crate::topology::NONE;

/// One replica slot that changed holder: drives one data handoff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMove {
    /// The partition, at the diff's granularity ([`RingDiff::partitions`]).
    pub partition: PartitionId,
    /// Replica position in the partition's preference list (0 = owner).
    pub position: usize,
    /// Holder in the older ring; `None` if the slot was empty (the cluster had fewer nodes than
    /// replicas).
    pub from: Option<NodeId>,
    /// Holder in the newer ring; `None` if the slot is now empty.
    pub to: Option<NodeId>,
    /// `to` held no replica of this partition before, so it needs the data streamed to it.
    pub to_needs_data: bool,
    /// `from` still holds a replica of this partition at another position, so it must keep the
    /// data (the move only changed its role).
    pub from_keeps_data: bool,
}

/// The difference between two versions of a ring, slot by slot.
///
/// Rings with different partition counts are compared at the finer count (partitions split
/// evenly, so a coarse partition is a run of fine ones); rings with different replica counts over
/// the longer list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDiff {
    /// Epoch of the older ring.
    pub from_epoch: u64,
    /// Epoch of the newer ring.
    pub to_epoch: u64,
    /// Partition count the moves are expressed in.
    pub partitions: u32,
    /// Every slot whose holder changed, by partition then position.
    moves: Vec<PartitionMove>,
}

impl RingDiff {
    pub(crate) fn between(old: &PartitionedRing, new: &PartitionedRing) -> Self {
        let partitions = old.partition_count().max(new.partition_count());
        let positions = old.config().replicas.max(new.config().replicas);
        let mut moves = Vec::new();
        for p in 0..partitions {
            let a = list(old, partitions, p);
            let b = list(new, partitions, p);
            for position in 0..positions {
                let from = a.get(position).copied().flatten();
                let to = b.get(position).copied().flatten();
                if from == to {
                    continue;
                }
                moves.push(PartitionMove {
                    partition: PartitionId(p),
                    position,
                    from: from.cloned(),
                    to: to.cloned(),
                    to_needs_data: to.is_some_and(|t| !a.contains(&Some(t))),
                    from_keeps_data: from.is_some_and(|f| b.contains(&Some(f))),
                });
            }
        }
        Self {
            from_epoch: old.epoch(),
            to_epoch: new.epoch(),
            partitions,
            moves,
        }
    }

    /// Every changed slot.
    #[must_use]
    pub fn moves(&self) -> &[PartitionMove] {
        &self.moves
    }

    /// Number of changed slots.
    #[must_use]
    pub fn len(&self) -> usize {
        self.moves.len()
    }

    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }

    /// Moves of the owner slot (position 0): the partitions whose owner changed.
    pub fn owner_changes(&self) -> impl Iterator<Item = &PartitionMove> {
        self.moves.iter().filter(|m| m.position == 0)
    }

    /// The hash range of a partition of this diff.
    ///
    /// # Panics
    /// If `p` is not below [`partitions`](Self::partitions).
    #[must_use]
    pub fn partition_range(&self, p: PartitionId) -> RangeInclusive<u64> {
        partition_range(self.partitions, p)
    }

    /// The data to stream, grouped by (source, destination): for each slot whose new holder
    /// needs the data, the old holder of that slot (`None` if the slot was empty: copy from any
    /// old replica) and the partition.
    #[must_use]
    pub fn transfers(&self) -> BTreeMap<(Option<NodeId>, NodeId), Vec<PartitionId>> {
        let mut out: BTreeMap<(Option<NodeId>, NodeId), Vec<PartitionId>> = BTreeMap::new();
        for m in self.moves.iter().filter(|m| m.to_needs_data) {
            if let Some(to) = &m.to {
                out.entry((m.from.clone(), to.clone()))
                    .or_default()
                    .push(m.partition);
            }
        }
        out
    }
}

/// The preference list of fine partition `p` (out of `partitions`) in `ring`, as ids.
fn list(ring: &PartitionedRing, partitions: u32, p: u32) -> Vec<Option<&NodeId>> {
    let shift = partitions.trailing_zeros() - ring.partition_count().trailing_zeros();
    let coarse = (p >> shift) as usize;
    let r = ring.config().replicas;
    ring.slots()[coarse * r..(coarse + 1) * r]
        .iter()
        .map(|&n| (n != NONE).then(|| ring.topo().id(n)))
        .collect()
}

impl PartitionedRing {
    /// What changes going from this ring to `newer`: every replica slot whose holder differs.
    /// Feed [`RingDiff::transfers`] to handoff.
    #[must_use]
    pub fn diff(&self, newer: &Self) -> RingDiff {
        RingDiff::between(self, newer)
    }
}
