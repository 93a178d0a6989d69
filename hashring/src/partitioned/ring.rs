//! [`PartitionedRing`]: Dynamo's "strategy 3", the default placement for stateful data.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use super::claim::claim;
use super::config::RingConfig;
use crate::hash::{key_hash, mix};
use crate::topology::{NONE, Topology};
use crate::{HashRingError, Node, NodeId, Placement, PreferenceList};

/// One of the ring's `Q` equal hash ranges: the unit of ownership, transfer and anti-entropy.
///
/// Partition `p` holds the keys whose [`key_hash`] has `p` in its top `log2(Q)` bits, so storage
/// that keeps each key's hash can find its partition for any `Q` without the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// How much of the ring one node holds (see [`PartitionedRing::loads`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// The node.
    pub node: NodeId,
    /// Partitions it owns (first replica): its exact share of the keyspace is `owned / Q`.
    pub owned: u32,
    /// Replica slots it holds at any position: what it stores.
    pub replicas: u32,
}

/// The partitioned ring: `Q = 2^k` equal hash ranges, each with a stored list of `replicas`
/// distinct, zone-spread nodes, assigned in proportion to weight.
///
/// This is Dynamo's "strategy 3" (fixed equal partitions, assigned to nodes). Its ownership data is
/// one small table, lookup is a shift and an array read, balance is exact up to one partition, and
/// membership changes move only the slots they must. It is a **value**: changes return a new ring
/// with the epoch incremented, and [`diff`](Self::diff) tells which slots moved.
///
/// - [`new`](Self::new) is a function of the configuration and the *set* of nodes: the order they
///   are listed in does not matter, so every process building a ring from the same membership gets
///   the same ring.
/// - [`with_node`](Self::with_node) / [`without_node`](Self::without_node) /
///   [`with_members`](Self::with_members) change a ring with the fewest moves. The result keeps
///   every guarantee, but after a history of changes it need not equal `new` of the final set
///   (no placement can be balanced, minimally disruptive and history-free at once; see
///   docs/adr/0101-hashring-partitioned-claim.md). Distribute the ring value, as Riak and Dynamo do,
///   rather than rebuilding it from membership on each node.
///
/// ```
/// use ringkit_hashring::{Node, PartitionedRing, Placement, RingConfig};
///
/// let nodes = ["a", "b", "c", "d"].map(Node::new);
/// let ring = PartitionedRing::new(RingConfig::for_cluster_size(4), nodes)?;
/// let replicas: Vec<_> = ring.preference_list(b"user:42", 3).replicas().collect();
/// assert_eq!(replicas.len(), 3);
/// assert_eq!(Some(replicas[0]), ring.owner(b"user:42"));
///
/// let grown = ring.with_node(Node::new("e"))?;
/// assert_eq!(grown.epoch(), ring.epoch() + 1);
/// // Only slots taken by the new node moved.
/// assert!(ring.diff(&grown).moves().iter().all(|m| m.to.as_ref().map(|n| n.as_str()) == Some("e")));
/// # Ok::<(), ringkit_hashring::HashRingError>(())
/// ```
#[derive(Clone)]
pub struct PartitionedRing {
    /// Partition count and replica count; fixed for the ring's life.
    config: RingConfig,
    /// Version of this placement; every change returns `epoch + 1`.
    epoch: u64,
    /// The members, sorted by id, with their hashes and zones.
    topo: Topology,
    /// `partitions * replicas` node indices: slot `p * replicas + j` is replica `j` of partition
    /// `p`; `NONE` only at positions at or past the node count.
    slots: Vec<u32>,
}

impl PartitionedRing {
    /// Builds the ring for a set of nodes. The result does not depend on the order of `nodes`.
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] for an invalid `config` or fewer partitions than nodes;
    /// [`HashRingError::EmptyRing`], [`HashRingError::DuplicateNode`],
    /// [`HashRingError::BadWeight`] or [`HashRingError::BadNodeId`] for a bad node set.
    pub fn new(
        config: RingConfig,
        nodes: impl IntoIterator<Item = Node>,
    ) -> Result<Self, HashRingError> {
        config.validate()?;
        let topo = Self::topology(&config, nodes)?;
        let mut slots = vec![NONE; config.partitions as usize * config.replicas];
        claim(&topo, config.partitions, config.replicas, &mut slots, None);
        Ok(Self {
            config,
            epoch: 1,
            topo,
            slots,
        })
    }

    fn topology(
        config: &RingConfig,
        nodes: impl IntoIterator<Item = Node>,
    ) -> Result<Topology, HashRingError> {
        let topo = Topology::new(nodes, false)?;
        if topo.len() > config.partitions as usize {
            return Err(HashRingError::BadConfig {
                field: "partitions",
                reason: format!(
                    "{} partitions cannot hold {} nodes (some would own nothing); build the ring \
                     with RingConfig::for_cluster_size({}) or larger",
                    config.partitions,
                    topo.len(),
                    topo.len()
                ),
            });
        }
        Ok(topo)
    }

    /// Assembles a ring from already validated parts (deserialisation).
    pub(crate) fn from_parts(
        config: RingConfig,
        epoch: u64,
        topo: Topology,
        slots: Vec<u32>,
    ) -> Self {
        Self {
            config,
            epoch,
            topo,
            slots,
        }
    }

    pub(crate) fn topo(&self) -> &Topology {
        &self.topo
    }

    pub(crate) fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// A ring with exactly `nodes` as members (joins, departures and weight or zone changes in
    /// one step), epoch + 1, moving only the slots that must move.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_members(
        &self,
        nodes: impl IntoIterator<Item = Node>,
    ) -> Result<Self, HashRingError> {
        let topo = Self::topology(&self.config, nodes)?;
        let remap: Vec<u32> = self
            .topo
            .nodes
            .iter()
            .map(|n| topo.index_of(&n.id).unwrap_or(NONE))
            .collect();
        let mut slots: Vec<u32> = self
            .slots
            .iter()
            .map(|&n| if n == NONE { NONE } else { remap[n as usize] })
            .collect();
        // Only nodes this change concerns may take slots from others (see `claim`).
        let may_take: Vec<bool> = topo
            .nodes
            .iter()
            .map(|node| {
                self.node(&node.id)
                    .is_none_or(|old| node.weight > old.weight || node.zone != old.zone)
            })
            .collect();
        claim(
            &topo,
            self.config.partitions,
            self.config.replicas,
            &mut slots,
            Some(&may_take),
        );
        Ok(Self {
            config: self.config,
            epoch: self.epoch + 1,
            topo,
            slots,
        })
    }

    /// The ring with `node` added (epoch + 1). The new node takes its share of every replica
    /// position from the nodes above their new quota; nothing else moves.
    ///
    /// # Errors
    /// [`HashRingError::DuplicateNode`] if a node with that id is a member; otherwise as
    /// [`new`](Self::new).
    pub fn with_node(&self, node: Node) -> Result<Self, HashRingError> {
        if self.topo.index_of(&node.id).is_some() {
            return Err(HashRingError::DuplicateNode { node: node.id });
        }
        self.with_members(self.topo.nodes.iter().cloned().chain([node]))
    }

    /// The ring without node `id` (epoch + 1). Its slots go to the nodes furthest below their new
    /// quota; nothing else moves.
    ///
    /// # Errors
    /// [`HashRingError::UnknownNode`] if `id` is not a member, [`HashRingError::EmptyRing`] if it
    /// is the last one.
    pub fn without_node(&self, id: &NodeId) -> Result<Self, HashRingError> {
        if self.topo.index_of(id).is_none() {
            return Err(HashRingError::UnknownNode { node: id.clone() });
        }
        self.with_members(self.topo.nodes.iter().filter(|n| &n.id != id).cloned())
    }

    /// The version of this placement: 1 for a new ring, + 1 for every change.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The configuration the ring was built with.
    #[must_use]
    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    /// Number of partitions, Q.
    #[must_use]
    pub fn partition_count(&self) -> u32 {
        self.config.partitions
    }

    /// Length of each partition's stored preference list: `min(replicas, node count)`.
    #[must_use]
    pub fn replica_count(&self) -> usize {
        self.config.replicas.min(self.topo.len())
    }

    /// The members, sorted by id (also available through [`Placement::nodes`]).
    #[must_use]
    pub fn nodes(&self) -> &[Node] {
        &self.topo.nodes
    }

    /// The member with this id.
    #[must_use]
    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.topo.index_of(id).map(|i| &self.topo.nodes[i as usize])
    }

    /// Checks a partition number that came from outside (a peer, a request) before it is used
    /// with the methods below, which panic on numbers out of range.
    ///
    /// # Errors
    /// [`HashRingError::UnknownPartition`] if `raw` is not below the partition count.
    pub fn partition_id(&self, raw: u32) -> Result<PartitionId, HashRingError> {
        if raw < self.config.partitions {
            Ok(PartitionId(raw))
        } else {
            Err(HashRingError::UnknownPartition {
                partition: raw,
                partitions: self.config.partitions,
            })
        }
    }

    /// The partition holding `key`: the top `log2(Q)` bits of `key_hash(key)`.
    #[inline]
    #[must_use]
    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        self.partition_of_hash(key_hash(key))
    }

    /// The partition holding keys with this hash.
    #[inline]
    #[must_use]
    pub fn partition_of_hash(&self, hash: u64) -> PartitionId {
        PartitionId(
            hash.checked_shr(64 - self.config.partition_bits())
                .unwrap_or(0) as u32,
        )
    }

    /// The hash range partition `p` covers (partitions are contiguous and equal).
    ///
    /// # Panics
    /// If `p` is not below [`partition_count`](Self::partition_count); check numbers from
    /// outside with [`partition_id`](Self::partition_id).
    #[must_use]
    pub fn partition_range(&self, p: PartitionId) -> RangeInclusive<u64> {
        partition_range(self.config.partitions, p)
    }

    /// The owner (first replica) of partition `p`.
    ///
    /// # Panics
    /// If `p` is not below [`partition_count`](Self::partition_count).
    #[must_use]
    pub fn partition_owner(&self, p: PartitionId) -> &NodeId {
        self.topo
            .id(self.slots[p.0 as usize * self.config.replicas])
    }

    /// The preference list of partition `p` (see [`PreferenceList`]): its stored replicas, then
    /// the rest of the cluster as fallbacks. All keys of a partition share it.
    ///
    /// # Panics
    /// If `p` is not below [`partition_count`](Self::partition_count).
    #[must_use]
    pub fn partition_preference_list(&self, p: PartitionId, n: usize) -> PreferenceList<'_> {
        let r = self.config.replicas;
        let head = &self.slots[p.0 as usize * r..(p.0 as usize + 1) * r];
        let seed = mix(u64::from(p.0), u64::from(self.config.partitions));
        PreferenceList::from_slice(&self.topo, head, n, seed)
    }

    /// The (partition, replica position) slots `id` holds, in partition order; empty for a
    /// non-member. What a node must store, and what it must hand off before it leaves.
    pub fn slots_of<'a>(&'a self, id: &NodeId) -> impl Iterator<Item = (PartitionId, usize)> + 'a {
        let target = self.topo.index_of(id).unwrap_or(NONE);
        let r = self.config.replicas;
        self.slots
            .iter()
            .enumerate()
            .filter(move |&(_, &n)| n == target && n != NONE)
            .map(move |(i, _)| (PartitionId((i / r) as u32), i % r))
    }

    /// Per-node ownership and storage, in node order: the exact balance of the ring.
    #[must_use]
    pub fn loads(&self) -> Vec<NodeLoad> {
        let mut owned = vec![0u32; self.topo.len()];
        let mut replicas = vec![0u32; self.topo.len()];
        for (i, &n) in self.slots.iter().enumerate() {
            if n != NONE {
                replicas[n as usize] += 1;
                if i % self.config.replicas == 0 {
                    owned[n as usize] += 1;
                }
            }
        }
        self.topo
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| NodeLoad {
                node: node.id.clone(),
                owned: owned[i],
                replicas: replicas[i],
            })
            .collect()
    }
}

/// The hash range of partition `p` out of `partitions` (a power of two).
pub(crate) fn partition_range(partitions: u32, p: PartitionId) -> RangeInclusive<u64> {
    assert!(
        p.0 < partitions,
        "partition {p} out of range (Q = {partitions})"
    );
    let bits = partitions.trailing_zeros();
    if bits == 0 {
        return 0..=u64::MAX;
    }
    let width = 1u64 << (64 - bits);
    let start = u64::from(p.0) * width;
    start..=start + (width - 1)
}

impl Placement for PartitionedRing {
    #[inline]
    fn owner_of_hash(&self, hash: u64) -> Option<&NodeId> {
        let p = self.partition_of_hash(hash);
        Some(
            self.topo
                .id(self.slots[p.0 as usize * self.config.replicas]),
        )
    }

    fn preference_list_of_hash(&self, hash: u64, n: usize) -> PreferenceList<'_> {
        self.partition_preference_list(self.partition_of_hash(hash), n)
    }

    fn nodes(&self) -> &[Node] {
        &self.topo.nodes
    }
}

impl PartialEq for PartitionedRing {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.epoch == other.epoch
            && self.topo.nodes == other.topo.nodes
            && self.slots == other.slots
    }
}

impl Eq for PartitionedRing {}

impl fmt::Debug for PartitionedRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionedRing")
            .field("epoch", &self.epoch)
            .field("partitions", &self.config.partitions)
            .field("replicas", &self.config.replicas)
            .field("nodes", &self.topo.nodes.len())
            .finish_non_exhaustive()
    }
}
