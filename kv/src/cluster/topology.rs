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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTransfer {
    /// The previous holder of the replica slot; reads keep asking it until the move completes.
    pub from: NodeId,
    /// The new holder; writes already go to it.
    pub to: NodeId,
}

/// The cluster's membership and placement: the ring (which carries the epoch), each member's
/// addresses, and the transfers in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMap {
    /// Placement of partitions on members.
    ring: PartitionedRing,
    /// Every ring member, by id, with its addresses.
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
        self.members.len()
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
            if let Some(slot) = read.iter_mut().find(|id| **id == t.to) {
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
            }],
        );
        let during = moved.replica_set(h, 3);
        assert_eq!(during.read[0], outsider);
        assert_eq!(during.write.len(), 4);
        assert!(during.fallbacks.is_empty());
    }

    #[test]
    fn members_must_match_the_ring() {
        let one = vec![Member::new("a", "x:1"), Member::new("a", "x:2")];
        assert!(ClusterMap::bootstrap(RingConfig::for_cluster_size(2), one).is_err());
        assert!(ClusterMap::bootstrap(RingConfig::for_cluster_size(1), vec![]).is_err());
    }
}
