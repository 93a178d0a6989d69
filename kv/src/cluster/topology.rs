//! Who is in the cluster and where each key lives: [`ClusterMap`], [`Member`], [`ReplicaSet`],
//! [`LiveSet`].
//!
//! A [`ClusterMap`] is a value (like the [`PartitionedRing`] inside it): a node holds the current
//! one behind a `tokio::sync::watch` channel and every request reads a consistent snapshot.
//! Liveness is kept apart, in the [`LiveSet`]: a crashed node keeps its partitions (hinted handoff
//! covers it); only explicit join/leave/remove change the map.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ringkit_hashring::{Node, NodeId, PartitionId, PartitionedRing, Placement, RingConfig};
use serde::{Deserialize, Serialize};

use crate::error::KvError;

/// Nodes this node currently believes alive (itself included): from SWIM gossip, or every member
/// until gossip runs. Shared behind an `Arc` so a request takes a snapshot for the price of a
/// reference count.
pub type LiveSet = Arc<BTreeSet<NodeId>>;

/// One cluster member: its identity and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's id: its name on the ring and in version vectors' logs.
    pub id: NodeId,
    /// `host:port` of its gRPC server (client API and the internal services).
    pub grpc_addr: String,
    /// `host:port` of its gossip (SWIM) socket, when it runs gossip.
    #[serde(default)]
    pub gossip_addr: Option<String>,
    /// Its failure zone (rack, availability zone): replicas of a key spread over zones.
    #[serde(default)]
    pub zone: Option<String>,
}

impl Member {
    /// A member reachable at `grpc_addr`, without gossip address or zone.
    pub fn new(id: impl Into<NodeId>, grpc_addr: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            grpc_addr: grpc_addr.into(),
            gossip_addr: None,
            zone: None,
        }
    }

    /// The ring node for this member (weight 1, its zone).
    pub fn ring_node(&self) -> Node {
        let node = Node::new(self.id.clone());
        match &self.zone {
            Some(z) => node.with_zone(z.clone()),
            None => node,
        }
    }
}

/// The nodes a request for one key involves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaSet {
    /// Whom reads ask: the owners that hold the key's data now (during a transfer, the old owner
    /// in place of the new one).
    pub read: Vec<NodeId>,
    /// Where writes go: the key's primaries, plus the old owners of a partition in transfer so
    /// that the transfer cannot miss a write.
    pub write: Vec<NodeId>,
    /// Sloppy-quorum stand-ins, in the order to try them (no node of `write` appears here).
    pub fallbacks: Vec<NodeId>,
}

/// An ownership move in progress: `from` still holds partition data that `to` is receiving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTransfer {
    /// The previous holder of the replica slot; reads keep asking it until the move completes.
    pub from: NodeId,
    /// The new holder; writes already go to it.
    pub to: NodeId,
    /// The epoch of the map that created the transfer: what tells it apart from a later move of
    /// the same slot between the same nodes (`0` in maps saved before it was recorded).
    #[serde(default)]
    pub since: u64,
}

/// The cluster's membership and placement: the ring (which carries the epoch), each member's
/// addresses, and the transfers in progress.
///
/// Its serde form (`{ring, members, pending}`) is what nodes exchange (`KvAdmin/GetClusterMap`);
/// it is re-validated on the way in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MapRepr", into = "MapRepr")]
pub struct ClusterMap {
    /// Placement of partitions on members.
    ring: PartitionedRing,
    /// Every ring member, by id, with its addresses; also departing nodes (off the ring, still
    /// streaming their partitions away: see [`departing`](Self::departing)).
    members: BTreeMap<NodeId, Member>,
    /// Ownership moves not yet finished, per partition.
    pending: BTreeMap<PartitionId, Vec<PendingTransfer>>,
}

impl ClusterMap {
    /// The bootstrap map: every node started with the same member list builds the same ring
    /// (`PartitionedRing::new` does not depend on the order of the list).
    ///
    /// # Errors
    /// [`KvError::Config`] for an empty list, a duplicate id, or a ring the members cannot form.
    pub fn bootstrap(config: RingConfig, members: Vec<Member>) -> Result<Self, KvError> {
        let ring = PartitionedRing::new(config, members.iter().map(Member::ring_node))
            .map_err(|e| KvError::Config(format!("cluster members: {e}")))?;
        Self::new(ring, members)
    }

    /// A map over an existing ring; `members` must be exactly the ring's nodes.
    ///
    /// # Errors
    /// [`KvError::Config`] naming a member missing from either side, or a duplicate.
    pub fn new(ring: PartitionedRing, members: Vec<Member>) -> Result<Self, KvError> {
        let mut by_id = BTreeMap::new();
        for m in members {
            let id = m.id.clone();
            if by_id.insert(id.clone(), m).is_some() {
                return Err(KvError::Config(format!("member {id} is listed twice")));
            }
        }
        for node in ring.nodes() {
            if !by_id.contains_key(&node.id) {
                return Err(KvError::Config(format!(
                    "ring node {} has no member entry (no address)",
                    node.id
                )));
            }
        }
        if let Some(extra) = by_id.keys().find(|id| ring.node(id).is_none()) {
            return Err(KvError::Config(format!(
                "member {extra} is not on the ring"
            )));
        }
        Ok(Self {
            ring,
            members: by_id,
            pending: BTreeMap::new(),
        })
    }

    /// A map from all its parts: `members` must cover the ring's nodes, and may hold departing
    /// nodes only while they are the source of a transfer in `pending`.
    ///
    /// # Errors
    /// [`KvError::Config`] naming the member or transfer that does not fit.
    pub fn from_parts(
        ring: PartitionedRing,
        members: Vec<Member>,
        pending: BTreeMap<PartitionId, Vec<PendingTransfer>>,
    ) -> Result<Self, KvError> {
        let sources: BTreeSet<&NodeId> = pending.values().flatten().map(|t| &t.from).collect();
        let (on_ring, departing): (Vec<Member>, Vec<Member>) = members
            .into_iter()
            .partition(|m| ring.node(&m.id).is_some() || !sources.contains(&m.id));
        let mut map = Self::new(ring, on_ring)?;
        for m in departing {
            let id = m.id.clone();
            if map.members.insert(id.clone(), m).is_some() {
                return Err(KvError::Config(format!("member {id} is listed twice")));
            }
        }
        for (p, transfers) in pending {
            map.ring
                .partition_id(p.0)
                .map_err(|e| KvError::Config(e.to_string()))?;
            for t in &transfers {
                for id in [&t.from, &t.to] {
                    if !map.members.contains_key(id) {
                        return Err(KvError::Config(format!(
                            "transfer of {p} names {id}, which is not a member"
                        )));
                    }
                }
            }
            map = map.with_pending(p, transfers);
        }
        Ok(map)
    }

    /// Members that left the ring but still stream partitions to their new owners: they stay
    /// addressable, and receive writes for those partitions, until their transfers complete.
    pub fn departing(&self) -> impl Iterator<Item = &Member> {
        self.members
            .values()
            .filter(|m| self.ring.node(&m.id).is_none())
    }

    /// The same map with `transfers` recorded as in progress for partition `p`.
    #[must_use]
    pub fn with_pending(mut self, p: PartitionId, transfers: Vec<PendingTransfer>) -> Self {
        if transfers.is_empty() {
            self.pending.remove(&p);
        } else {
            self.pending.insert(p, transfers);
        }
        self
    }

    /// The ring's version: a larger epoch is a newer map.
    pub fn epoch(&self) -> u64 {
        self.ring.epoch()
    }

    /// The placement.
    pub fn ring(&self) -> &PartitionedRing {
        &self.ring
    }

    /// A member's entry, if it is on the ring.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }

    /// Every member, by id.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &Member> {
        self.members.values()
    }

    /// How many members the ring has: the largest N a request may ask for.
    pub fn size(&self) -> usize {
        self.ring.nodes().len()
    }

    /// The transfers in progress.
    pub fn pending(&self) -> &BTreeMap<PartitionId, Vec<PendingTransfer>> {
        &self.pending
    }

    /// For a key hash: `write` = where writes go (primaries, plus old owners of a partition in
    /// transfer), `read` = whom reads ask (the owners that hold the data now), `fallbacks` =
    /// sloppy-quorum stand-ins in order. `n` above the member count yields every member.
    pub fn replica_set(&self, hash: u64, n: usize) -> ReplicaSet {
        let list = self.ring.preference_list_of_hash(hash, n);
        let replicas = list.replica_count();
        let all: Vec<NodeId> = list.cloned().collect();
        let (primaries, rest) = all.split_at(replicas.min(all.len()));
        let moves = self
            .pending
            .get(&self.ring.partition_of_hash(hash))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut read = primaries.to_vec();
        let mut write = primaries.to_vec();
        for t in moves {
            if read.contains(&t.from) {
                // The source is a replica already (it kept a slot): ask it once, not twice.
                read.retain(|id| *id != t.to);
            } else if let Some(slot) = read.iter_mut().find(|id| **id == t.to) {
                *slot = t.from.clone();
            }
            if write.contains(&t.to) && !write.contains(&t.from) {
                write.push(t.from.clone());
            }
        }
        let fallbacks = rest
            .iter()
            .filter(|id| !write.contains(id))
            .cloned()
            .collect();
        ReplicaSet {
            read,
            write,
            fallbacks,
        }
    }
}

/// The serde form of a [`ClusterMap`].
#[derive(Clone, Serialize, Deserialize)]
struct MapRepr {
    ring: PartitionedRing,
    members: Vec<Member>,
    pending: Vec<(PartitionId, Vec<PendingTransfer>)>,
}

impl From<ClusterMap> for MapRepr {
    fn from(map: ClusterMap) -> Self {
        Self {
            ring: map.ring,
            members: map.members.into_values().collect(),
            pending: map.pending.into_iter().collect(),
        }
    }
}

impl TryFrom<MapRepr> for ClusterMap {
    type Error = KvError;

    fn try_from(repr: MapRepr) -> Result<Self, KvError> {
        Self::from_parts(repr.ring, repr.members, repr.pending.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: usize) -> ClusterMap {
        let members = (0..n)
            .map(|i| Member::new(format!("n{i}"), format!("127.0.0.1:{}", 7000 + i)))
            .collect();
        ClusterMap::bootstrap(RingConfig::for_cluster_size(n), members)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn replica_set_has_n_distinct_primaries_and_the_rest_as_fallbacks() {
        let m = map(5);
        for h in [0u64, 1 << 40, u64::MAX / 3, u64::MAX] {
            let set = m.replica_set(h, 3);
            assert_eq!(set.read, set.write);
            assert_eq!(set.write.len(), 3);
            assert_eq!(set.fallbacks.len(), 2);
            let all: BTreeSet<_> = set.write.iter().chain(&set.fallbacks).collect();
            assert_eq!(all.len(), 5);
        }
        assert_eq!(m.replica_set(7, 9).write.len(), 5);
    }

    #[test]
    fn a_pending_transfer_reads_the_old_owner_and_writes_both() {
        let m = map(4);
        let h = 12345u64;
        let set = m.replica_set(h, 3);
        let Some(outsider) = set.fallbacks.first().cloned() else {
            panic!("4 nodes, 3 replicas: one fallback");
        };
        let p = m.ring().partition_of_hash(h);
        let moved = m.clone().with_pending(
            p,
            vec![PendingTransfer {
                from: outsider.clone(),
                to: set.write[0].clone(),
                since: 0,
            }],
        );
        let during = moved.replica_set(h, 3);
        assert_eq!(during.read[0], outsider);
        assert_eq!(during.write.len(), 4);
        assert!(during.fallbacks.is_empty());
    }

    #[test]
    fn a_source_that_stays_a_replica_is_read_once() {
        let m = map(4);
        let h = 99u64;
        let set = m.replica_set(h, 3);
        let (Some(a), Some(b)) = (set.write.first().cloned(), set.write.get(1).cloned()) else {
            panic!("three replicas");
        };
        let p = m.ring().partition_of_hash(h);
        let during = m.with_pending(
            p,
            vec![PendingTransfer {
                from: a.clone(),
                to: b.clone(),
                since: 0,
            }],
        );
        let set = during.replica_set(h, 3);
        assert_eq!(set.read.len(), 2);
        assert!(set.read.contains(&a) && !set.read.contains(&b));
        assert_eq!(set.write.len(), 3);
    }

    #[test]
    fn departing_members_survive_the_wire_only_while_they_stream() {
        let m = map(4);
        let gone = NodeId::from("n3");
        let ring = m
            .ring()
            .without_node(&gone)
            .unwrap_or_else(|e| panic!("{e}"));
        let members: Vec<Member> = m.members().cloned().collect();
        let p = PartitionId(0);
        let to = ring.partition_owner(p).clone();
        let pending = BTreeMap::from([(
            p,
            vec![PendingTransfer {
                from: gone.clone(),
                to,
                since: 0,
            }],
        )]);
        let leaving = ClusterMap::from_parts(ring.clone(), members.clone(), pending)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            leaving
                .departing()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>(),
            vec![gone]
        );
        assert_eq!(leaving.size(), 3);
        let json = serde_json::to_string(&leaving).unwrap_or_else(|e| panic!("{e}"));
        let back: ClusterMap = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, leaving);
        // Without a transfer to make, a node off the ring is refused.
        assert!(ClusterMap::from_parts(ring, members, BTreeMap::new()).is_err());
    }

    #[test]
    fn members_must_match_the_ring() {
        let one = vec![Member::new("a", "x:1"), Member::new("a", "x:2")];
        assert!(ClusterMap::bootstrap(RingConfig::for_cluster_size(2), one).is_err());
        assert!(ClusterMap::bootstrap(RingConfig::for_cluster_size(1), vec![]).is_err());
    }
}
