//! Preference lists: the replicas of a key, then every other node as a sloppy-quorum fallback.
//!
//! A strategy supplies the *head* of the list (the replicas it placed, already zone-spread) and a
//! per-key seed; [`PreferenceList`] then walks the rest of the cluster without allocating. The
//! walk goes zone by zone in rounds ("levels"), so every prefix of the whole list stays spread over
//! zones as widely as the cluster allows, and it starts at a seeded position in every zone, so the
//! fallbacks of a failed node's keys are spread over the cluster instead of piling on a neighbour.

use std::iter::FusedIterator;

use crate::NodeId;
use crate::hash::{mix, reduce};
use crate::topology::{NONE, Topology};

/// How many head entries a strategy may compute on the fly (rendezvous top-k).
pub(crate) const INLINE_HEAD: usize = 8;

/// The entries a strategy placed itself, yielded before the walk.
#[derive(Clone, Debug)]
enum Head<'a> {
    /// A stored list (partitioned ring, token ring); `NONE` entries are skipped.
    Slice(&'a [u32]),
    /// A list computed at lookup time (jump, Maglev, rendezvous, bounded load).
    Inline { buf: [u32; INLINE_HEAD], len: u8 },
}

impl Head<'_> {
    fn get(&self, i: usize) -> Option<u32> {
        match self {
            Head::Slice(s) => s.get(i).copied(),
            Head::Inline { buf, len } => (i < usize::from(*len)).then(|| buf[i]),
        }
    }

    fn len(&self) -> usize {
        match self {
            Head::Slice(s) => s.len(),
            Head::Inline { len, .. } => usize::from(*len),
        }
    }

    fn contains(&self, node: u32) -> bool {
        (0..self.len()).any(|i| self.get(i) == Some(node))
    }

    /// Number of head entries in `zone`.
    fn count_in_zone(&self, topo: &Topology, zone: u32) -> u32 {
        (0..self.len())
            .filter_map(|i| self.get(i))
            .filter(|&n| n != NONE && topo.zone_of[n as usize] == zone)
            .count() as u32
    }
}

/// The ordered nodes responsible for one key: `n` replicas, then every other node once.
///
/// Iterating yields **every node of the cluster exactly once**. The first
/// [`replica_count`](Self::replica_count) entries (`min(n, node count)`) are the replicas: distinct
/// physical nodes, spread over zones (all in distinct zones when there are at least `n` zones,
/// otherwise no zone holds more than one replica more than another zone with nodes to spare). The
/// entries after them are the fallbacks for a sloppy quorum, in the order to try them. When `n`
/// exceeds the node count, every node is a replica and there are no fallbacks.
///
/// It borrows the strategy and never allocates. Clone it to walk it twice.
#[derive(Clone, Debug)]
pub struct PreferenceList<'a> {
    /// The strategy's nodes and zones.
    topo: &'a Topology,
    /// Entries the strategy placed itself, yielded first.
    head: Head<'a>,
    /// How many leading entries are replicas: `min(n, nodes)`.
    replicas: usize,
    /// Per-key (or per-partition) seed of the walk's rotations.
    seed: u64,
    /// Entries yielded so far; the list ends at the node count.
    emitted: usize,
    /// Next head entry to yield.
    head_pos: usize,
    /// Current round of the zone walk.
    level: u32,
    /// Next zone to visit in this round (0 = the seeded first zone).
    zone_cursor: u32,
}

impl<'a> PreferenceList<'a> {
    /// A list that yields `head` (node indices, `NONE` skipped) and then walks the other nodes.
    pub(crate) fn from_slice(topo: &'a Topology, head: &'a [u32], n: usize, seed: u64) -> Self {
        Self::build(topo, Head::Slice(head), n, seed)
    }

    /// A list whose head was computed at lookup time (at most [`INLINE_HEAD`] entries).
    pub(crate) fn from_inline(
        topo: &'a Topology,
        buf: [u32; INLINE_HEAD],
        len: usize,
        n: usize,
        seed: u64,
    ) -> Self {
        let len = len.min(INLINE_HEAD) as u8;
        Self::build(topo, Head::Inline { buf, len }, n, seed)
    }

    /// The same walk (topology, seed, `n`) behind another computed head, from the start.
    pub(crate) fn with_head(self, buf: [u32; INLINE_HEAD], len: usize) -> Self {
        let len = len.min(INLINE_HEAD) as u8;
        Self::build(
            self.topo,
            Head::Inline { buf, len },
            self.replicas,
            self.seed,
        )
    }

    fn build(topo: &'a Topology, head: Head<'a>, n: usize, seed: u64) -> Self {
        Self {
            topo,
            head,
            replicas: n.min(topo.len()),
            seed,
            emitted: 0,
            head_pos: 0,
            level: 0,
            zone_cursor: 0,
        }
    }

    /// How many leading entries are replicas: `min(n, node count)`.
    #[must_use]
    pub fn replica_count(&self) -> usize {
        self.replicas
    }

    /// Only the replicas (the first [`replica_count`](Self::replica_count) entries).
    pub fn replicas(self) -> std::iter::Take<Self> {
        let n = self.replicas.saturating_sub(self.emitted);
        self.take(n)
    }

    /// Only the fallbacks: every node that is not a replica, in the order to try them.
    pub fn fallbacks(self) -> std::iter::Skip<Self> {
        let n = self.replicas.saturating_sub(self.emitted);
        self.skip(n)
    }

    /// Rotation of zone `zone`'s group where this key's walk starts.
    fn zone_offset(&self, zone: u32) -> u32 {
        let size = self.topo.zone_size[zone as usize];
        reduce(mix(self.seed, u64::from(zone)), u64::from(size)) as u32
    }

    /// The `k`-th node (0-based) of zone `zone`'s rotated group that is not in the head.
    fn kth_outside_head(&self, zone: u32, k: u32) -> u32 {
        let size = self.topo.zone_size[zone as usize];
        let start = self.zone_offset(zone);
        let rotated = |node: u32| (self.topo.pos_in_zone[node as usize] + size - start) % size;
        // Smallest position whose count of non-head members up to it is k + 1; the fixpoint
        // iteration converges in at most (head entries in the zone + 1) rounds.
        let mut pos = k;
        loop {
            let before = (0..self.head.len())
                .filter_map(|i| self.head.get(i))
                .filter(|&n| n != NONE && self.topo.zone_of[n as usize] == zone)
                .filter(|&n| rotated(n) <= pos)
                .count() as u32;
            if k + before == pos {
                break;
            }
            pos = k + before;
        }
        self.topo.zone_member(zone, (start + pos) % size)
    }

    fn next_from_walk(&mut self) -> Option<u32> {
        let zones = self.topo.zone_count() as u32;
        let first_zone = reduce(self.seed, u64::from(zones)) as u32;
        let max_size = self.topo.zone_size.iter().copied().max().unwrap_or(0);
        loop {
            // Every node of zone z sits at a level below z's size, so this ends the walk.
            if self.level >= max_size {
                return None;
            }
            if self.zone_cursor == zones {
                self.zone_cursor = 0;
                self.level += 1;
                continue;
            }
            let zone = (first_zone + self.zone_cursor) % zones;
            self.zone_cursor += 1;
            let in_head = self.head.count_in_zone(self.topo, zone);
            let Some(k) = self.level.checked_sub(in_head) else {
                continue;
            };
            if k < self.topo.zone_size[zone as usize] - in_head {
                return Some(self.kth_outside_head(zone, k));
            }
        }
    }
}

impl<'a> Iterator for PreferenceList<'a> {
    type Item = &'a NodeId;

    fn next(&mut self) -> Option<&'a NodeId> {
        if self.emitted == self.topo.len() {
            return None;
        }
        while self.head_pos < self.head.len() {
            let node = self.head.get(self.head_pos).unwrap_or(NONE);
            self.head_pos += 1;
            if node != NONE {
                self.emitted += 1;
                return Some(self.topo.id(node));
            }
        }
        let node = self.next_from_walk()?;
        debug_assert!(!self.head.contains(node));
        self.emitted += 1;
        Some(self.topo.id(node))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.topo.len() - self.emitted;
        (left, Some(left))
    }
}

impl ExactSizeIterator for PreferenceList<'_> {}

impl FusedIterator for PreferenceList<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Node;
    use crate::topology::spread_ok;

    fn topo(zones: &[&str]) -> Topology {
        Topology::new(
            zones
                .iter()
                .enumerate()
                .map(|(i, z)| Node::new(format!("n{i:02}")).with_zone(*z)),
            false,
        )
        .unwrap()
    }

    fn indices(topo: &Topology, list: PreferenceList<'_>) -> Vec<u32> {
        list.map(|id| topo.index_of(id).unwrap()).collect()
    }

    #[test]
    fn walk_yields_every_node_once_with_spread_prefixes() {
        let t = topo(&["a", "a", "a", "a", "b", "b", "c", "d", "d", "d"]);
        for seed in 0..200u64 {
            let head = [NONE, 5, NONE];
            let all = indices(&t, PreferenceList::from_slice(&t, &head, 3, seed));
            let mut sorted = all.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>(), "seed {seed}");
            assert_eq!(all[0], 5);
            assert!(spread_ok(&t, all.iter().copied()), "seed {seed}: {all:?}");
        }
    }

    #[test]
    fn replicas_and_fallbacks_split_at_n() {
        let t = topo(&["a", "b", "c", "d"]);
        let list = PreferenceList::from_inline(&t, [2; INLINE_HEAD], 1, 2, 7);
        assert_eq!(list.len(), 4);
        assert_eq!(list.clone().replicas().count(), 2);
        assert_eq!(list.clone().fallbacks().count(), 2);
        let too_many = PreferenceList::from_inline(&t, [2; INLINE_HEAD], 1, 9, 7);
        assert_eq!(too_many.replica_count(), 4);
        assert_eq!(too_many.fallbacks().count(), 0);
    }
}
