//! Shared harness of the anti-entropy tests: in-process nodes over MemStorage whose peers are
//! called in memory (the same handlers the gRPC service runs).
// Each test binary uses part of the harness.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::remote::{RootsQuery, RowsPage, RowsQuery, TreeQuery};
use ringkit_kv::cluster::aae::{
    Aae, AaeConfig, AaePeers, AaeTrees, TrackedStorage, TreeShape, reap::TombstoneWatch,
    replicated_partitions,
};
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::cluster::topology::{ClusterMap, LiveSet, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::model::{ActorId, Object, SiblingLimits, Timestamp};
use ringkit_kv::node::{KvNode, NodeConfig, Put};
use ringkit_kv::storage::{MemStorage, RangeSummary, StorageExt, WriteOp, WriteRequest};
use tokio::sync::watch;

/// Upper bound on any one test.
pub(crate) const BOUND: Duration = Duration::from_secs(30);

pub(crate) type Node = Aae<MemStorage>;

/// Nodes by id; implements both peer traits by calling the target directly.
#[derive(Clone, Default)]
pub(crate) struct Mesh {
    pub(crate) nodes: Arc<std::sync::Mutex<BTreeMap<NodeId, Node>>>,
}

impl Mesh {
    pub(crate) fn get(&self, id: &NodeId) -> Result<Node, KvError> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| KvError::UnknownNode(id.to_string()))
    }
}

#[async_trait::async_trait]
impl AaePeers for Mesh {
    async fn tree_roots(
        &self,
        to: &NodeId,
        q: RootsQuery,
    ) -> Result<Vec<Option<RangeSummary>>, KvError> {
        self.get(to)?.tree_roots(q).await
    }
    async fn tree_nodes(&self, to: &NodeId, q: TreeQuery) -> Result<Vec<RangeSummary>, KvError> {
        self.get(to)?.tree_nodes(q).await
    }
    async fn rows(&self, to: &NodeId, q: RowsQuery) -> Result<RowsPage, KvError> {
        self.get(to)?.rows(q).await
    }
    async fn reap(&self, to: &NodeId, items: Vec<(Bytes, u64)>) -> Result<usize, KvError> {
        self.get(to)?.reap(items).await
    }
    async fn hint_targets(&self, to: &NodeId) -> Result<Vec<String>, KvError> {
        self.get(to)?.hint_targets().await
    }
}

#[async_trait::async_trait]
impl ReplicaPeers for Mesh {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        let ops = items
            .into_iter()
            .map(|(key, object)| match hint_for {
                Some(t) => WriteOp::StoreHint {
                    target: t.to_string(),
                    key,
                    object,
                },
                None => WriteOp::Merge { key, object },
            })
            .collect();
        write(&self.get(to)?, ops).await;
        Ok(())
    }
    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        let node = self.get(to)?;
        node.node()
            .storage()
            .read(move |v| keys.iter().map(|k| v.get(k)).collect())
            .await
    }
}

/// Applies ops to a node's store (through the tracked store, as the node itself would).
pub(crate) async fn write(node: &Node, ops: Vec<WriteOp>) {
    let req = WriteRequest {
        now: Timestamp(1),
        siblings: SiblingLimits::default(),
        ops,
    };
    for r in node
        .node()
        .storage()
        .write(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A cluster of `size` nodes, every key on `n` of them, everyone live.
pub(crate) struct Cluster {
    pub(crate) mesh: Mesh,
    pub(crate) ids: Vec<NodeId>,
    pub(crate) _map: watch::Sender<Arc<ClusterMap>>,
    pub(crate) _live: watch::Sender<LiveSet>,
}

pub(crate) fn config(n: usize) -> AaeConfig {
    AaeConfig {
        n,
        shape: TreeShape {
            fan_out: 4,
            depth: 2,
        },
        rows_per_sec: 0,
        page_rows: 7,
        repair_batch: 5,
        tombstone_grace: Some(Duration::from_secs(60)),
        ..AaeConfig::default()
    }
}

impl Cluster {
    pub(crate) fn new(size: usize, n: usize, partitions: u32) -> Self {
        Self::with_config(size, partitions, config(n))
    }

    pub(crate) fn with_config(size: usize, partitions: u32, cfg: AaeConfig) -> Self {
        let n = cfg.n;
        let ids: Vec<NodeId> = (0..size).map(|i| NodeId::from(format!("n{i}"))).collect();
        let members = ids
            .iter()
            .map(|id| Member::new(id.clone(), format!("{id}:1")))
            .collect();
        let mut ring = RingConfig::for_cluster_size(size).with_replicas(n);
        ring.partitions = partitions;
        let map = ClusterMap::bootstrap(ring, members).unwrap_or_else(|e| panic!("{e}"));
        let (map_tx, map_rx) = watch::channel(Arc::new(map));
        let (live_tx, live_rx) = watch::channel(Arc::new(ids.iter().cloned().collect()));
        let mesh = Mesh::default();
        for (i, id) in ids.iter().enumerate() {
            let cfg = cfg.clone();
            let trees = Arc::new(AaeTrees::new(cfg.shape).unwrap_or_else(|e| panic!("{e}")));
            let store = TrackedStorage::new(MemStorage::new(ActorId(i as u64 + 1)), trees);
            let mut node_cfg = NodeConfig::new(id.to_string());
            node_cfg.maintenance.tombstone_grace = None;
            let kv = KvNode::new(store, node_cfg, Arc::new(SystemClock))
                .unwrap_or_else(|e| panic!("{e}"));
            let aae = Aae::new(id.clone(), kv, cfg, map_rx.clone(), live_rx.clone())
                .unwrap_or_else(|e| panic!("{e}"));
            mesh.nodes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id.clone(), aae);
        }
        Self {
            mesh,
            ids,
            _map: map_tx,
            _live: live_tx,
        }
    }

    pub(crate) fn node(&self, i: usize) -> Node {
        self.mesh
            .get(&self.ids[i])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every partition both nodes replicate, exchanged from `a`'s side with `b`.
    pub(crate) async fn exchange_all(&self, a: usize, b: usize) -> u64 {
        let node = self.node(a);
        let (_, mine) = node.sync().unwrap_or_else(|e| panic!("{e}"));
        let theirs = replicated_partitions(&node.map(), &self.ids[b], 2);
        let mut repaired = 0;
        for p in mine.intersection(&theirs).copied() {
            let r = node
                .exchange(&self.mesh, &self.mesh, &self.ids[b], p)
                .await
                .unwrap_or_else(|e| panic!("partition {p}: {e}"));
            repaired += r.keys_differing;
        }
        repaired
    }

    /// All rows of node `i`, by key.
    pub(crate) async fn rows(&self, i: usize) -> BTreeMap<Bytes, Object> {
        let node = self.node(i);
        let rows = node
            .node()
            .storage()
            .read(|v| v.hash_range(&(0..=u64::MAX), None, 100_000))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        rows.into_iter().map(|r| (r.key, r.object)).collect()
    }
}

pub(crate) async fn put(node: &Node, key: &str, value: &str) {
    node.node()
        .put(Put::new(key.to_owned(), value.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

pub(crate) async fn delete(node: &Node, key: &str) {
    node.node()
        .delete(
            Bytes::from(key.to_owned()),
            Bytes::new(),
            Default::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Runs reaping passes of every partition of node `i` at watch time `now`.
pub(crate) async fn reap_all(
    c: &Cluster,
    i: usize,
    watch: &mut TombstoneWatch,
    now: Duration,
) -> usize {
    let node = c.node(i);
    let (_, mine) = node.sync().unwrap_or_else(|e| panic!("{e}"));
    let mut reaped = 0;
    for p in mine {
        reaped += node
            .reap_partition(&c.mesh, &c.mesh, watch, p, now)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    reaped
}
