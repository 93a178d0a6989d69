//! The claimant's decisions, sans-IO: who may change the ring, and what each change makes of the
//! [`ClusterMap`] (new ring, transfers to make, departing members).
//!
//! One node decides every change: the **claimant**, the member with the smallest id on the
//! current ring. Every node computes the same claimant from the same map, and the claimant
//! applies changes one at a time on top of its own map, so two changes can never be made on the
//! same epoch. Others forward requests to it. See docs/adr/0440-kv-membership.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ringkit_hashring::{NodeId, PartitionId, PartitionedRing};

use crate::cluster::topology::{ClusterMap, Member, PendingTransfer};
use crate::error::KvError;

/// An explicit ownership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingChange {
    /// A new node takes its share of the partitions (streamed to it from their old holders).
    Join(Member),
    /// A live member hands its partitions off, then leaves.
    Leave(NodeId),
    /// A dead member is evicted; its partitions are rebuilt from the surviving replicas.
    Remove(NodeId),
    /// Transfers finished and were verified: reads move to their new holders. Several are
    /// reported at once so that a join makes a few epochs, not one per partition.
    Complete(Vec<TransferDone>),
}

/// One verified transfer, as reported to the claimant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferDone {
    /// The partition moved.
    pub partition: PartitionId,
    /// The old holder (the source).
    pub from: NodeId,
    /// The new holder.
    pub to: NodeId,
    /// The epoch that created the transfer ([`PendingTransfer::since`]): a report about an
    /// older transfer of the same slot is stale and completes nothing.
    pub since: u64,
}

impl TransferDone {
    /// The report that `transfer` of `partition` finished.
    pub fn of(partition: PartitionId, transfer: &PendingTransfer) -> Self {
        Self {
            partition,
            from: transfer.from.clone(),
            to: transfer.to.clone(),
            since: transfer.since,
        }
    }
}

/// What applying a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to do (a retried join or completion): the map stays as it is.
    Unchanged,
    /// The new map (next epoch), ready to publish.
    Changed(Arc<ClusterMap>),
}

/// The node that decides ring changes under `map`: its smallest ring member.
pub fn claimant(map: &ClusterMap) -> &NodeId {
    // A ring always has a node (PartitionedRing refuses an empty one).
    &map.ring().nodes()[0].id
}

/// Who must apply `change`: the claimant, except that a dead claimant's own removal falls to the
/// next member in id order that `live` says is up (the one way the cluster gets a new claimant
/// without the old one; documented as an operator's decision in the ADR).
pub fn decider(map: &ClusterMap, change: &RingChange, live: &BTreeSet<NodeId>) -> NodeId {
    let first = claimant(map);
    match change {
        RingChange::Remove(id) if id == first && !live.contains(id) => map
            .ring()
            .nodes()
            .iter()
            .map(|n| &n.id)
            .find(|n| *n != first && live.contains(*n))
            .unwrap_or(first)
            .clone(),
        _ => first.clone(),
    }
}

/// Applies `change` to `map` (on the decider), given who gossip says is live.
///
/// # Errors
/// [`KvError::InvalidArgument`] for a change that names the wrong node (unknown, already a
/// member elsewhere, the last member); [`KvError::RingChange`] for one the cluster cannot take
/// now (transfers in progress, `remove` of a live node).
pub fn apply(
    map: &ClusterMap,
    change: &RingChange,
    live: &BTreeSet<NodeId>,
) -> Result<Applied, KvError> {
    match change {
        RingChange::Join(member) => join(map, member),
        RingChange::Leave(id) => leave(map, id),
        RingChange::Remove(id) => remove(map, id, live),
        RingChange::Complete(done) => complete(map, done),
    }
}

fn join(map: &ClusterMap, member: &Member) -> Result<Applied, KvError> {
    if let Some(existing) = map.member(&member.id) {
        if existing.grpc_addr == member.grpc_addr && map.ring().node(&member.id).is_some() {
            return Ok(Applied::Unchanged);
        }
        return Err(KvError::InvalidArgument(format!(
            "node id {} is already a member (at {}): pick another id, or `remove` the old node first",
            member.id, existing.grpc_addr
        )));
    }
    if member.grpc_addr.is_empty() {
        return Err(KvError::InvalidArgument(format!(
            "join of {}: grpc_addr is empty",
            member.id
        )));
    }
    idle(map)?;
    let ring = map.ring().with_node(member.ring_node()).map_err(invalid)?;
    let mut members: Vec<Member> = map.members().cloned().collect();
    members.push(member.clone());
    rebuild(map, ring, members, None)
}

fn leave(map: &ClusterMap, id: &NodeId) -> Result<Applied, KvError> {
    if map.ring().node(id).is_none() {
        if map.member(id).is_some() {
            return Ok(Applied::Unchanged); // already departing
        }
        return Err(unknown(id));
    }
    if map.ring().nodes().len() == 1 {
        return Err(KvError::InvalidArgument(format!(
            "{id} is the last member: a cluster cannot hand its data to nobody"
        )));
    }
    idle(map)?;
    let ring = map.ring().without_node(id).map_err(invalid)?;
    rebuild(map, ring, map.members().cloned().collect(), None)
}

fn remove(map: &ClusterMap, id: &NodeId, live: &BTreeSet<NodeId>) -> Result<Applied, KvError> {
    let on_ring = map.ring().node(id).is_some();
    // A departing node that died while handing off is removable too (else its unfinished
    // transfers would block every later change).
    if !on_ring && map.member(id).is_none() {
        return Err(unknown(id));
    }
    if live.contains(id) {
        return Err(KvError::RingChange(format!(
            "{id} is alive according to gossip: use `leave` on it (remove is for dead nodes; a \
             node that is only restarting keeps its data and is covered by hinted handoff)"
        )));
    }
    if on_ring && map.ring().nodes().len() == 1 {
        return Err(KvError::InvalidArgument(format!("{id} is the last member")));
    }
    let ring = if on_ring {
        map.ring().without_node(id)
    } else {
        map.ring().with_members(map.ring().nodes().iter().cloned())
    }
    .map_err(invalid)?;
    let members = map.members().filter(|m| &m.id != id).cloned().collect();
    rebuild(map, ring, members, Some(id))
}

fn complete(map: &ClusterMap, done: &[TransferDone]) -> Result<Applied, KvError> {
    let mut pending = map.pending().clone();
    let mut any = false;
    for d in done {
        if let Some(list) = pending.get_mut(&d.partition) {
            let before = list.len();
            list.retain(|t| !(t.from == d.from && t.to == d.to && t.since == d.since));
            any |= list.len() != before;
            if list.is_empty() {
                pending.remove(&d.partition);
            }
        }
    }
    if !any {
        // Every one was completed already (a retried report).
        return Ok(Applied::Unchanged);
    }
    let ring = map
        .ring()
        .with_members(map.ring().nodes().iter().cloned())
        .map_err(invalid)?;
    finish(ring, map.members().cloned().collect(), pending)
}

/// The map for a new ring: transfers for every slot whose new holder lacks the data.
fn rebuild(
    map: &ClusterMap,
    ring: PartitionedRing,
    members: Vec<Member>,
    dead: Option<&NodeId>,
) -> Result<Applied, KvError> {
    // Transfers still running (only possible on `remove`) continue under their epoch; one whose
    // source is the dead node is taken over by the partition's other current replicas (their
    // union: new transfers, of the new epoch), and one to the dead node is dropped (its slot
    // moves again below).
    let epoch = ring.epoch();
    let mut pending: BTreeMap<PartitionId, Vec<PendingTransfer>> = BTreeMap::new();
    for (p, list) in map.pending() {
        for t in list.iter().filter(|t| Some(&t.to) != dead) {
            let (from, since) = if Some(&t.from) == dead {
                (sources(map.ring(), *p, &t.to, dead), epoch)
            } else {
                (vec![t.from.clone()], t.since)
            };
            let kept = pending.entry(*p).or_default();
            for from in from {
                if !kept.iter().any(|k| k.from == from && k.to == t.to) {
                    kept.push(PendingTransfer {
                        from,
                        to: t.to.clone(),
                        since,
                    });
                }
            }
        }
    }
    pending.retain(|_, l| !l.is_empty());
    let diff = map.ring().diff(&ring);
    for m in diff.moves().iter().filter(|m| m.to_needs_data) {
        let Some(to) = &m.to else { continue };
        let sources: Vec<NodeId> = match m.from.as_ref().filter(|f| Some(*f) != dead) {
            // The slot's holder hands it over (join, leave).
            Some(from) => vec![from.clone()],
            // Its holder is dead (or there was none): every surviving old replica streams its
            // copy, so the new holder gets the union even if one of them missed a write.
            None => sources(map.ring(), m.partition, to, dead),
        };
        let list = pending.entry(m.partition).or_default();
        for from in sources {
            if !list.iter().any(|t| t.from == from && &t.to == to) {
                list.push(PendingTransfer {
                    from,
                    to: to.clone(),
                    since: epoch,
                });
            }
        }
        if list.is_empty() {
            pending.remove(&m.partition);
        }
    }
    finish(ring, members, pending)
}

/// The surviving old replicas of `p` to copy from (not `to`, not the dead node).
fn sources(
    old: &PartitionedRing,
    p: PartitionId,
    to: &NodeId,
    dead: Option<&NodeId>,
) -> Vec<NodeId> {
    old.partition_preference_list(p, old.replica_count())
        .replicas()
        .filter(|id| *id != to && Some(*id) != dead)
        .cloned()
        .collect()
}

/// Assembles the map, dropping departing members that have nothing left to send.
fn finish(
    ring: PartitionedRing,
    members: Vec<Member>,
    pending: BTreeMap<PartitionId, Vec<PendingTransfer>>,
) -> Result<Applied, KvError> {
    let sources: BTreeSet<&NodeId> = pending.values().flatten().map(|t| &t.from).collect();
    let members = members
        .into_iter()
        .filter(|m| ring.node(&m.id).is_some() || sources.contains(&m.id))
        .collect();
    ClusterMap::from_parts(ring, members, pending).map(|m| Applied::Changed(Arc::new(m)))
}

fn idle(map: &ClusterMap) -> Result<(), KvError> {
    let n: usize = map.pending().values().map(Vec::len).sum();
    if n == 0 {
        return Ok(());
    }
    Err(KvError::RingChange(format!(
        "{n} partition transfers of epoch {} are still in progress: retry when `ringctl kv ring` \
         shows none pending (one change at a time keeps every transfer's source valid)",
        map.epoch()
    )))
}

fn unknown(id: &NodeId) -> KvError {
    KvError::InvalidArgument(format!(
        "{id} is not a member of the ring: check `ringctl kv members`"
    ))
}

fn invalid(e: ringkit_hashring::HashRingError) -> KvError {
    KvError::InvalidArgument(e.to_string())
}
