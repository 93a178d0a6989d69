//! Test fixtures for the handoff task: nodes over `MemStorage`, a fake [`ReplicaPeers`] that
//! merges straight into the target node (or fails while the target is "down"), ring maps, live
//! sets, and bounded waits on tokio's clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{HandoffConfig, pending_hints, store_hints};
use crate::clock::ManualClock;
use crate::cluster::peers::ReplicaPeers;
use crate::cluster::topology::{ClusterMap, LiveSet, Member};
use crate::error::KvError;
use crate::model::{ActorId, Object, Timestamp};
use crate::node::{KvNode, NodeConfig, Put, Quorum};
use crate::storage::{MemStorage, StorageExt, WriteOp};

/// Runs once inside a merge, before it is applied: a write racing the delivery.
pub(super) struct Interleave {
    /// The node holding the hints.
    pub(super) holder: KvNode<MemStorage>,
    /// The hint to add.
    pub(super) key: Bytes,
    /// Its state.
    pub(super) object: Object,
}

/// In-process peers: merges land in the target's store directly.
#[derive(Default)]
pub(super) struct FakePeers {
    pub(super) nodes: BTreeMap<NodeId, KvNode<MemStorage>>,
    /// Targets whose merges fail (a crashed or partitioned node).
    pub(super) down: Mutex<BTreeSet<NodeId>>,
    /// (target, items) of every merge attempted.
    pub(super) calls: Mutex<Vec<(NodeId, usize)>>,
    pub(super) interleave: Mutex<Option<Interleave>>,
}

impl FakePeers {
    pub(super) fn calls_to(&self, target: &str) -> usize {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.iter().filter(|(t, _)| t.as_str() == target).count()
    }

    pub(super) fn set_down(&self, target: &str, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            set.insert(NodeId::from(target));
        } else {
            set.remove(target);
        }
    }
}

#[async_trait::async_trait]
impl ReplicaPeers for FakePeers {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to.clone(), items.len()));
        if self
            .down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(to)
        {
            return Err(KvError::Timeout {
                node: to.to_string(),
            });
        }
        let racing = self
            .interleave
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(i) = racing {
            store_hints(&i.holder, to, vec![(i.key, i.object)]).await?;
        }
        let node = self
            .nodes
            .get(to)
            .ok_or_else(|| KvError::UnknownNode(to.to_string()))?;
        if let Some(h) = hint_for {
            return store_hints(node, h, items).await;
        }
        let ops = items
            .into_iter()
            .map(|(key, object)| WriteOp::Merge { key, object })
            .collect();
        for outcome in node.submit(node.now(), ops).await? {
            outcome?;
        }
        Ok(())
    }

    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        let node = self
            .nodes
            .get(to)
            .ok_or_else(|| KvError::UnknownNode(to.to_string()))?;
        node.storage()
            .read(move |v| keys.iter().map(|k| v.get(k)).collect())
            .await
    }
}

pub(super) fn node(id: &str, actor: u64) -> KvNode<MemStorage> {
    KvNode::new(
        MemStorage::new(ActorId(actor)),
        NodeConfig::new(id),
        Arc::new(ManualClock::new(Timestamp(1_000))),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The object a fresh node of actor `actor` stores for a put of `value`.
pub(super) async fn object(actor: u64, key: &str, value: &str) -> Object {
    let n = node("writer", actor);
    n.put(Put::new(key.to_owned(), value.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let k = Bytes::from(key.to_owned());
    n.storage()
        .read(move |v| v.get(&k))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("just written"))
}

/// A ring of these members (the fake peers ignore addresses).
pub(super) fn map(ids: &[&str]) -> Arc<ClusterMap> {
    let members = ids
        .iter()
        .map(|id| Member::new(*id, format!("{id}:1")))
        .collect();
    Arc::new(
        ClusterMap::bootstrap(RingConfig::for_cluster_size(ids.len()), members)
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// A map receiver that never changes.
pub(super) fn fixed_map(ids: &[&str]) -> watch::Receiver<Arc<ClusterMap>> {
    watch::channel(map(ids)).1
}

pub(super) fn live(ids: &[&str]) -> LiveSet {
    Arc::new(ids.iter().map(|s| NodeId::from(*s)).collect())
}

pub(super) fn config() -> HandoffConfig {
    HandoffConfig::default()
}

/// Waits (at most 120 s of the paused clock) until `cond` holds.
pub(super) async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) async fn pending(n: &KvNode<MemStorage>) -> Vec<(String, u64)> {
    pending_hints(n)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|b| (b.target, b.hints))
        .collect()
}

pub(super) async fn values(n: &KvNode<MemStorage>, key: &str) -> Vec<String> {
    let read = n
        .get(Bytes::from(key.to_owned()), Quorum::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut v: Vec<String> = read
        .values
        .iter()
        .map(|v| String::from_utf8_lossy(&v.bytes).into_owned())
        .collect();
    v.sort();
    v
}
