//! Between the admin protobuf messages and the core types (prost stays at this edge).

use std::collections::BTreeMap;

use ringkit_hashring::membership::{MemberState, MemberStatus};
use ringkit_hashring::{NodeId, PartitionId};

use crate::cluster::pb;
use crate::cluster::topology::{ClusterMap, Member, PendingTransfer};
use crate::error::KvError;
use crate::storage::HintBacklog;

/// The wire form of a map: its epoch and validated JSON.
///
/// # Errors
/// [`KvError::Internal`] if the map does not serialise (it always does).
pub fn map_to_message(map: &ClusterMap) -> Result<pb::ClusterMapMessage, KvError> {
    let json = serde_json::to_vec(map)
        .map_err(|e| KvError::Internal(format!("cluster map to JSON: {e}")))?;
    Ok(pb::ClusterMapMessage {
        epoch: map.epoch(),
        json: json.into(),
    })
}

/// A map received from a peer, checked.
///
/// # Errors
/// [`KvError::InvalidArgument`] when the JSON is not a valid map or its epoch disagrees.
pub fn map_from_message(message: &pb::ClusterMapMessage) -> Result<ClusterMap, KvError> {
    let map: ClusterMap = serde_json::from_slice(&message.json).map_err(|e| {
        KvError::InvalidArgument(format!("cluster map from a peer does not validate: {e}"))
    })?;
    if map.epoch() != message.epoch {
        return Err(KvError::InvalidArgument(format!(
            "cluster map says epoch {} but was sent as epoch {}",
            map.epoch(),
            message.epoch
        )));
    }
    Ok(map)
}

/// A join request as a member entry.
///
/// # Errors
/// [`KvError::InvalidArgument`] naming the missing or malformed field.
pub fn member_from_join(r: &pb::JoinRequest) -> Result<Member, KvError> {
    let id = node_id(&r.node_id, "node_id")?;
    if r.grpc_addr.trim().is_empty() {
        return Err(KvError::InvalidArgument(format!(
            "join of {id}: grpc_addr is empty: give the host:port its gRPC server listens on"
        )));
    }
    if !r.gossip_addr.is_empty() && r.gossip_addr.parse::<std::net::SocketAddr>().is_err() {
        return Err(KvError::InvalidArgument(format!(
            "join of {id}: gossip_addr {:?} is not an ip:port socket address",
            r.gossip_addr
        )));
    }
    let mut m = Member::new(id, r.grpc_addr.trim());
    m.gossip_addr = (!r.gossip_addr.is_empty()).then(|| r.gossip_addr.clone());
    m.zone = (!r.zone.is_empty()).then(|| r.zone.clone());
    Ok(m)
}

/// A node id from a request field.
///
/// # Errors
/// [`KvError::InvalidArgument`] if it is empty or longer than 255 bytes.
pub fn node_id(raw: &str, field: &str) -> Result<NodeId, KvError> {
    if raw.is_empty() || raw.len() > 255 {
        return Err(KvError::InvalidArgument(format!(
            "{field} must be 1 to 255 bytes, got {:?}",
            raw
        )));
    }
    Ok(NodeId::from(raw))
}

/// The members view: gossip's states, plus ring members gossip has not heard of (reported
/// as their ring entry with an unspecified state).
pub fn members(map: &ClusterMap, gossip: &[MemberStatus]) -> Vec<pb::MemberInfo> {
    let mut out: BTreeMap<String, pb::MemberInfo> = BTreeMap::new();
    for s in gossip {
        let state = match s.state {
            MemberState::Alive => pb::MemberState::Alive,
            MemberState::Suspect => pb::MemberState::Suspect,
            MemberState::Down => pb::MemberState::Down,
        };
        out.insert(
            s.identity.node.to_string(),
            pb::MemberInfo {
                node_id: s.identity.node.to_string(),
                state: state as i32,
                grpc_addr: s.identity.grpc_addr.clone(),
                gossip_addr: s.identity.gossip_addr.to_string(),
                incarnation: s.identity.incarnation,
                on_ring: map.ring().node(&s.identity.node).is_some(),
            },
        );
    }
    for m in map.members() {
        out.entry(m.id.to_string())
            .or_insert_with(|| pb::MemberInfo {
                node_id: m.id.to_string(),
                state: pb::MemberState::Unspecified as i32,
                grpc_addr: m.grpc_addr.clone(),
                gossip_addr: m.gossip_addr.clone().unwrap_or_default(),
                incarnation: 0,
                on_ring: map.ring().node(&m.id).is_some(),
            });
    }
    out.into_values().collect()
}

fn transfers(p: PartitionId, list: &[PendingTransfer]) -> impl Iterator<Item = pb::Transfer> + '_ {
    list.iter().map(move |t| pb::Transfer {
        partition: p.0,
        from: t.from.to_string(),
        to: t.to.to_string(),
        since: t.since,
    })
}

/// The ring view.
pub fn ring(map: &ClusterMap, claimant: &NodeId) -> pb::RingResponse {
    let ring = map.ring();
    let nodes = ring
        .loads()
        .into_iter()
        .map(|l| {
            let member = map.member(&l.node);
            pb::NodeShare {
                node_id: l.node.to_string(),
                owned: l.owned,
                replicas: l.replicas,
                grpc_addr: member.map(|m| m.grpc_addr.clone()).unwrap_or_default(),
                zone: member.and_then(|m| m.zone.clone()).unwrap_or_default(),
            }
        })
        .collect();
    pb::RingResponse {
        epoch: map.epoch(),
        claimant: claimant.to_string(),
        partitions: ring.partition_count(),
        replicas: u32::try_from(ring.config().replicas).unwrap_or(u32::MAX),
        nodes,
        pending: map
            .pending()
            .iter()
            .flat_map(|(p, l)| transfers(*p, l))
            .collect(),
        departing: map.departing().map(|m| m.id.to_string()).collect(),
    }
}

/// Partition owners: every partition, or the one asked for.
///
/// # Errors
/// [`KvError::InvalidArgument`] for a partition number past the ring's.
pub fn partitions(
    map: &ClusterMap,
    r: &pb::PartitionOwnersRequest,
) -> Result<pb::PartitionOwnersResponse, KvError> {
    let ring = map.ring();
    let which: Vec<PartitionId> = if !r.key.is_empty() {
        vec![ring.partition_of(&r.key)]
    } else if r.has_partition {
        vec![
            ring.partition_id(r.partition)
                .map_err(|e| KvError::InvalidArgument(e.to_string()))?,
        ]
    } else {
        (0..ring.partition_count()).map(PartitionId).collect()
    };
    let partitions = which
        .into_iter()
        .map(|p| {
            let range = ring.partition_range(p);
            pb::PartitionInfo {
                partition: p.0,
                hash_start: *range.start(),
                hash_end: *range.end(),
                replicas: ring
                    .partition_preference_list(p, ring.replica_count())
                    .replicas()
                    .map(ToString::to_string)
                    .collect(),
                pending: map
                    .pending()
                    .get(&p)
                    .map(|l| transfers(p, l).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(pb::PartitionOwnersResponse {
        epoch: map.epoch(),
        partitions,
    })
}

/// The hinted-handoff backlog.
pub fn handoffs(local: &NodeId, backlog: Vec<HintBacklog>) -> pb::HandoffsResponse {
    pb::HandoffsResponse {
        node_id: local.to_string(),
        targets: backlog
            .into_iter()
            .map(|b| pb::HandoffBacklog {
                target: b.target,
                hints: b.hints,
                bytes: b.bytes,
            })
            .collect(),
    }
}

/// Anti-entropy status as the admin API reports it (`enabled` set).
pub fn aae(status: &crate::cluster::aae::AaeStatus) -> pb::AaeStatusResponse {
    use crate::cluster::aae::ExchangeOutcome;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    pb::AaeStatusResponse {
        node_id: String::new(),
        enabled: true,
        trees: count(status.trees),
        dirty_leaves: count(status.dirty_leaves),
        exchanges: status.exchanges,
        failed_exchanges: status.failed_exchanges,
        keys_repaired: status.keys_repaired,
        tombstones_reaped: status.tombstones_reaped,
        leftover_rows_dropped: status.leftover_rows_dropped,
        rows_per_sec: status.rows_per_sec,
        partitions: status
            .partitions
            .iter()
            .map(|p| {
                let (outcome, keys, error) = match &p.outcome {
                    ExchangeOutcome::Equal => ("equal", 0, String::new()),
                    ExchangeOutcome::Repaired { keys } => ("repaired", *keys, String::new()),
                    ExchangeOutcome::Failed(e) => ("failed", 0, e.clone()),
                };
                pb::AaePartition {
                    partition: p.partition,
                    at_ms: p.at.0,
                    peer: p.peer.to_string(),
                    outcome: outcome.into(),
                    keys_repaired: keys,
                    error,
                }
            })
            .collect(),
        reap_blocked: status.reap_blocked.clone().unwrap_or_default(),
    }
}
