//! Keeping hints: what a node does when it must hold writes for a replica it cannot reach, and
//! what it reports about the hints it holds.

use bytes::Bytes;
use ringkit_hashring::NodeId;

use crate::error::KvError;
use crate::model::Object;
use crate::node::KvNode;
use crate::storage::{HintBacklog, Storage, StorageExt, WriteOp};

/// Stores `items` as durable hints for `target`; returns once they are committed (in the same
/// group commits as every other write, so a hint is as durable as an acknowledged write).
///
/// Called by the `Replica` service when a peer sends `merge(.., hint_for = Some(target))` (this
/// node is a sloppy-quorum stand-in for `target`), and by a coordinator that keeps a hint itself
/// after failing to reach `target`. Each item merges into any hint already held for
/// (`target`, key), so concurrent writes stay siblings. The handoff task later delivers them.
///
/// A hint for this node itself (a peer whose ring view differs) is its own data: it is merged
/// into the store instead of being kept as a hint.
///
/// # Errors
/// [`KvError::InvalidArgument`] for an empty target, [`KvError::Limit`] for a key or value over
/// this node's limits (nothing is stored then), and storage failures.
pub async fn store_hints<S: Storage>(
    node: &KvNode<S>,
    target: &NodeId,
    items: Vec<(Bytes, Object)>,
) -> Result<(), KvError> {
    if target.as_str().is_empty() {
        return Err(KvError::InvalidArgument(
            "hint_for must name the node the hints are for".to_owned(),
        ));
    }
    let limits = &node.config().limits;
    for (key, object) in &items {
        limits.check_key(key)?;
        for sibling in object.siblings() {
            limits.check_value(&sibling.value)?;
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    let count = items.len() as u64;
    let own = target.as_str() == node.config().node_id;
    let ops = items
        .into_iter()
        .map(|(key, object)| {
            if own {
                WriteOp::Merge { key, object }
            } else {
                WriteOp::StoreHint {
                    target: target.to_string(),
                    key,
                    object,
                }
            }
        })
        .collect();
    for outcome in node.submit(node.now(), ops).await? {
        outcome?;
    }
    if !own {
        metrics::counter!("kv_hints_stored_total").increment(count);
    }
    Ok(())
}

/// The hints this node holds, per target (ordered by target): the "handoffs pending" of the
/// admin API, read from storage so it is exact even before the handoff task's first pass.
///
/// # Errors
/// Storage failures.
pub async fn pending_hints<S: Storage>(node: &KvNode<S>) -> Result<Vec<HintBacklog>, KvError> {
    node.storage().read(|view| view.hint_summary()).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::model::{ActorId, Timestamp};
    use crate::node::{NodeConfig, Put, Quorum};
    use crate::storage::MemStorage;

    fn node(id: &str, actor: u64) -> KvNode<MemStorage> {
        KvNode::new(
            MemStorage::new(ActorId(actor)),
            NodeConfig::new(id),
            Arc::new(ManualClock::new(Timestamp(1_000))),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The object `key` holds on a node after a put of `value`.
    async fn object(actor: u64, key: &str, value: &str) -> Object {
        let n = node("w", actor);
        n.put(Put::new(key.to_owned(), value.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let k = Bytes::from(key.to_owned());
        n.storage()
            .read(move |v| v.get(&k))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("written"))
    }

    #[tokio::test]
    async fn hints_are_kept_per_target_and_reported() {
        let n = node("a", 1);
        let (x, y) = (object(7, "k", "x").await, object(8, "k", "y").await);
        let b = NodeId::from("b");
        store_hints(&n, &b, vec![("k".into(), x)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        store_hints(
            &n,
            &b,
            vec![("k".into(), y), ("j".into(), object(7, "j", "z").await)],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let pending = pending_hints(&n).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].target.as_str(), pending[0].hints), ("b", 2));
        let read = n
            .get("k".into(), Quorum::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(read.values.is_empty(), "hints are not served as data");
        let held = n
            .storage()
            .read(|v| v.hints("b", None, 10))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held[1].object.siblings().len(), 2, "both writes kept");
    }

    #[tokio::test]
    async fn a_hint_for_this_node_is_merged_as_data() {
        let n = node("a", 1);
        let x = object(7, "k", "x").await;
        store_hints(&n, &NodeId::from("a"), vec![("k".into(), x)])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            pending_hints(&n)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
        let read = n
            .get("k".into(), Quorum::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.values.len(), 1);
    }

    #[tokio::test]
    async fn bad_input_is_refused_and_nothing_is_stored() {
        let n = node("a", 1);
        let x = object(7, "k", "x").await;
        let empty = store_hints(&n, &NodeId::from(""), vec![("k".into(), x.clone())]).await;
        assert_eq!(
            empty.err().map(|e| e.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let long_key = Bytes::from(vec![b'k'; 4096]);
        let items = vec![("ok".into(), x.clone()), (long_key, x)];
        let too_long = store_hints(&n, &NodeId::from("b"), items).await;
        assert_eq!(
            too_long.err().map(|e| e.code()),
            Some(tonic::Code::InvalidArgument)
        );
        assert!(
            pending_hints(&n)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
        store_hints(&n, &NodeId::from("b"), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
