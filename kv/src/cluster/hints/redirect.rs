//! Handing off hints around the ring: when their target left it (removed, or departing), or
//! when this node is leaving, each hint goes to its key's current replicas instead.
//!
//! A removed node will never take its hints back, and it may have been the only node a write
//! was hinted for; a leaving node will not be there to deliver the hints it holds. So the hints
//! are merged into every live ring member of each key's current write set (this node included,
//! through its own store, unless it is the one leaving), and a hint is dropped once every live
//! replica it was sent to has it (and it did not change meanwhile). Replicas that are down get
//! the data later through anti-entropy from the ones that have it; a hint none of whose replicas
//! is alive stays until one is.

use std::collections::{BTreeMap, BTreeSet};

use ringkit_hashring::NodeId;

use super::config::HandoffConfig;
use super::deliver::{drop_unchanged, items, read_batch};
use super::planner::BatchReport;
use crate::cluster::peers::ReplicaPeers;
use crate::cluster::topology::ClusterMap;
use crate::error::KvError;
use crate::model::key_hash;
use crate::node::KvNode;
use crate::storage::{HintEntry, Storage, WriteOp};

/// For each replica, the indices (into `hints`) of the hints it should receive; and the indices
/// of hints that have no live replica now. Replicas are the key's write set, restricted to ring
/// nodes (a departing transfer source, this node included, is leaving) that are alive (this
/// node always is).
pub(super) fn route(
    hints: &[HintEntry],
    map: &ClusterMap,
    live: &BTreeSet<NodeId>,
    local: &NodeId,
    n: usize,
) -> (BTreeMap<NodeId, Vec<usize>>, Vec<usize>) {
    let mut routes: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
    let mut stranded = Vec::new();
    for (i, hint) in hints.iter().enumerate() {
        let owners: Vec<NodeId> = map
            .replica_set(key_hash(&hint.key), n)
            .write
            .into_iter()
            .filter(|id| map.ring().node(id).is_some() && (id == local || live.contains(id)))
            .collect();
        if owners.is_empty() {
            stranded.push(i);
        }
        for owner in owners {
            routes.entry(owner).or_default().push(i);
        }
    }
    (routes, stranded)
}

/// Redirects one batch of the hints kept for `target` to their keys' current replicas.
///
/// # Errors
/// Storage failures, or the first replica that failed to take its share (the hints that reached
/// all of theirs are dropped all the same).
pub(super) async fn redirect_batch<S: Storage>(
    node: &KvNode<S>,
    peers: &dyn ReplicaPeers,
    target: &NodeId,
    config: &HandoffConfig,
    map: &ClusterMap,
    live: &BTreeSet<NodeId>,
) -> Result<BatchReport, KvError> {
    let (hints, full) = read_batch(node, target, config).await?;
    if hints.is_empty() {
        return Ok(BatchReport::default());
    }
    let local = NodeId::from(node.config().node_id.as_str());
    let n = node.config().quorum.n as usize;
    let (routes, stranded) = route(&hints, map, live, &local, n);
    let mut failed: BTreeSet<usize> = stranded.into_iter().collect();
    let mut first_error = None;
    for (owner, indices) in routes {
        let batch = items(indices.iter().map(|&i| &hints[i]));
        let outcome = if owner == local {
            merge_locally(node, batch).await
        } else {
            peers.merge(&owner, batch, None).await
        };
        if let Err(e) = outcome {
            tracing::debug!(%target, %owner, error = %e, "redirecting hints failed");
            failed.extend(indices);
            first_error.get_or_insert(e);
        }
    }
    let delivered: Vec<&HintEntry> = (0..hints.len())
        .filter(|i| !failed.contains(i))
        .map(|i| &hints[i])
        .collect();
    let dropped = drop_unchanged(node, target, &delivered).await?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(BatchReport {
            sent: delivered.len(),
            dropped,
            full,
        }),
    }
}

/// Merges `items` into this node's own store.
async fn merge_locally<S: Storage>(
    node: &KvNode<S>,
    items: Vec<(bytes::Bytes, crate::model::Object)>,
) -> Result<(), KvError> {
    let ops = items
        .into_iter()
        .map(|(key, object)| WriteOp::Merge { key, object })
        .collect();
    for outcome in node.submit(node.now(), ops).await? {
        outcome?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ringkit_hashring::RingConfig;

    use super::*;
    use crate::cluster::topology::Member;
    use crate::model::Object;

    fn map(ids: &[&str]) -> ClusterMap {
        let members = ids
            .iter()
            .map(|id| Member::new(*id, format!("{id}:1")))
            .collect();
        ClusterMap::bootstrap(RingConfig::for_cluster_size(ids.len()), members)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn hint(key: &str) -> HintEntry {
        HintEntry {
            key: bytes::Bytes::from(key.to_owned()),
            digest: 0,
            object: Object::new(),
        }
    }

    #[test]
    fn each_hint_goes_to_its_live_current_replicas() {
        let m = map(&["a", "b", "c", "d"]);
        let hints: Vec<HintEntry> = (0..40).map(|i| hint(&format!("k{i}"))).collect();
        let all: BTreeSet<NodeId> = ["a", "b", "c", "d"].map(NodeId::from).into();
        let a = NodeId::from("a");
        let (routes, stranded) = route(&hints, &m, &all, &a, 3);
        assert!(stranded.is_empty());
        for (i, h) in hints.iter().enumerate() {
            let owners = m.replica_set(key_hash(&h.key), 3).write;
            for (node, got) in &routes {
                assert_eq!(
                    got.contains(&i),
                    owners.contains(node),
                    "{node} and hint {i}"
                );
            }
        }
        // With c and d down, only a and b (where they are replicas) get hints.
        let ab: BTreeSet<NodeId> = ["a", "b"].map(NodeId::from).into();
        let (routes, _) = route(&hints, &m, &ab, &a, 3);
        assert!(routes.keys().all(|n| ab.contains(n)));
        // This node counts as alive even if the live set does not list it.
        let (routes, _) = route(&hints, &m, &BTreeSet::new(), &a, 3);
        assert!(routes.keys().all(|n| *n == a));
    }

    #[test]
    fn a_hint_without_a_live_replica_is_stranded() {
        let m = map(&["a", "b", "c", "d"]);
        let hints: Vec<HintEntry> = (0..40).map(|i| hint(&format!("k{i}"))).collect();
        let d = NodeId::from("d");
        let only_d: BTreeSet<NodeId> = [d.clone()].into();
        let (routes, stranded) = route(&hints, &m, &only_d, &d, 1);
        let routed: usize = routes.values().map(Vec::len).sum();
        assert_eq!(routed + stranded.len(), 40);
        assert!(!stranded.is_empty(), "keys whose only replica is not d");
        assert!(routes.keys().all(|n| *n == d));
    }
}
