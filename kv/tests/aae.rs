//! Anti-entropy between in-process nodes over MemStorage, with in-memory peers that call the
//! other node's handlers directly (the same code the gRPC service runs): exchanges converge
//! diverged replicas, and tombstones are reaped only under the rule of ADR 0430, so a deleted
//! key never comes back. Every test is bounded in time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::remote::{RowsPage, RowsQuery, TreeQuery};
use ringkit_kv::cluster::aae::{
    Aae, AaeConfig, AaePeers, AaeTrees, TrackedStorage, TreeShape, reap::TombstoneWatch,
    replicated_partitions,
};
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::cluster::topology::{ClusterMap, LiveSet, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::model::{ActorId, Object, SiblingLimits, Timestamp, key_hash};
use ringkit_kv::node::{KvNode, NodeConfig, Put};
use ringkit_kv::storage::{MemStorage, RangeSummary, StorageExt, WriteOp, WriteRequest};
use tokio::sync::watch;

/// Upper bound on any one test.
const BOUND: Duration = Duration::from_secs(30);

type Node = Aae<MemStorage>;

/// Nodes by id; implements both peer traits by calling the target directly.
#[derive(Clone, Default)]
struct Mesh {
    nodes: Arc<std::sync::Mutex<BTreeMap<NodeId, Node>>>,
}

impl Mesh {
    fn get(&self, id: &NodeId) -> Result<Node, KvError> {
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
async fn write(node: &Node, ops: Vec<WriteOp>) {
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
struct Cluster {
    mesh: Mesh,
    ids: Vec<NodeId>,
    _map: watch::Sender<Arc<ClusterMap>>,
    _live: watch::Sender<LiveSet>,
}

fn config(n: usize) -> AaeConfig {
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
    fn new(size: usize, n: usize, partitions: u32) -> Self {
        Self::with_config(size, partitions, config(n))
    }

    fn with_config(size: usize, partitions: u32, cfg: AaeConfig) -> Self {
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

    fn node(&self, i: usize) -> Node {
        self.mesh
            .get(&self.ids[i])
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every partition both nodes replicate, exchanged from `a`'s side with `b`.
    async fn exchange_all(&self, a: usize, b: usize) -> u64 {
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
    async fn rows(&self, i: usize) -> BTreeMap<Bytes, Object> {
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

async fn put(node: &Node, key: &str, value: &str) {
    node.node()
        .put(Put::new(key.to_owned(), value.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

async fn delete(node: &Node, key: &str) {
    node.node()
        .delete(
            Bytes::from(key.to_owned()),
            Bytes::new(),
            Default::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test]
async fn diverged_replicas_converge_and_the_repaired_count_is_exact() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 4);
        let (a, b) = (c.node(0), c.node(1));
        for i in 0..40 {
            put(&a, &format!("shared{i}"), "v").await;
        }
        c.mesh
            .merge(&c.ids[1], c.rows(0).await.into_iter().collect(), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.exchange_all(0, 1).await, 0, "identical replicas");
        for i in 0..5 {
            put(&a, &format!("only-a{i}"), "x").await;
        }
        for i in 0..3 {
            put(&b, &format!("only-b{i}"), "y").await;
        }
        put(&b, "shared7", "concurrent").await;
        delete(&a, "shared8").await;
        assert_eq!(c.exchange_all(0, 1).await, 10);
        assert_eq!(c.rows(0).await, c.rows(1).await);
        assert_eq!(c.exchange_all(1, 0).await, 0, "nothing left to repair");
        let merged = &c.rows(0).await[&Bytes::from("shared7")];
        assert_eq!(
            merged.siblings().len(),
            2,
            "concurrent writes kept as siblings"
        );
        assert!(c.rows(1).await[&Bytes::from("shared8")].is_tombstone());
        let status = a.status();
        assert_eq!(status.trees, 4);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

/// Runs reaping passes of every partition of node `i` at watch time `now`.
async fn reap_all(c: &Cluster, i: usize, watch: &mut TombstoneWatch, now: Duration) -> usize {
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

#[tokio::test]
async fn tombstones_are_reaped_only_when_every_replica_holds_them_and_never_revive() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 2);
        let (a, b) = (c.node(0), c.node(1));
        put(&a, "k", "v").await;
        c.exchange_all(0, 1).await;
        delete(&a, "k").await;
        let mut watch = TombstoneWatch::new(Duration::from_secs(60), 1000);
        let t = |s| Duration::from_secs(s);
        // b still holds the live value: the tombstone is not everywhere, nothing is reaped.
        assert_eq!(reap_all(&c, 0, &mut watch, t(0)).await, 0);
        assert_eq!(reap_all(&c, 0, &mut watch, t(100)).await, 0);
        assert!(!c.rows(1).await[&Bytes::from("k")].is_tombstone());
        // The exchange spreads the tombstone. The grace runs from when this node first saw its
        // tombstone unchanged, so a new watch (a restart) only delays reaping.
        assert_eq!(c.exchange_all(0, 1).await, 1);
        let mut fresh = TombstoneWatch::new(Duration::from_secs(60), 1000);
        assert_eq!(
            reap_all(&c, 0, &mut fresh, t(130)).await,
            0,
            "grace not over"
        );
        assert_eq!(
            reap_all(&c, 0, &mut fresh, t(160)).await,
            0,
            "grace not over"
        );
        assert_eq!(reap_all(&c, 0, &mut watch, t(200)).await, 1);
        assert!(c.rows(0).await.is_empty() && c.rows(1).await.is_empty());
        assert_eq!(a.status().tombstones_reaped, 1);
        assert_eq!(b.status().tombstones_reaped, 1);
        // b missed the delete at first, yet "v" never came back: reaping waited for b to hold
        // the very same tombstone, and an exchange of two empty replicas finds nothing.
        assert_eq!(c.exchange_all(1, 0).await, 0);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn a_hint_with_the_old_value_blocks_reaping_until_it_is_delivered() {
    tokio::time::timeout(BOUND, async {
        // Three nodes, two replicas a key: the third node is a fallback that can hold hints.
        let c = Cluster::new(3, 2, 4);
        let map = c.node(0).map();
        let owners = map.replica_set(key_hash(b"k"), 2).write;
        let outsider = c
            .ids
            .iter()
            .position(|id| !owners.contains(id))
            .unwrap_or_else(|| panic!("3 nodes, 2 replicas"));
        let o: Vec<usize> = owners
            .iter()
            .map(|id| c.ids.iter().position(|x| x == id).unwrap_or(0))
            .collect();
        let (first, second) = (c.node(o[0]), c.node(o[1]));
        put(&first, "k", "old").await;
        let old = c.rows(o[0]).await[&Bytes::from("k")].clone();
        // The write reached only the first owner; the outsider keeps a hint for the second.
        c.mesh
            .merge(
                &c.ids[outsider],
                vec![(Bytes::from("k"), old.clone())],
                Some(&owners[1]),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        delete(&first, "k").await;
        c.exchange_all(o[0], o[1]).await;
        assert!(c.rows(o[1]).await[&Bytes::from("k")].is_tombstone());
        let mut watch = TombstoneWatch::new(Duration::from_secs(10), 1000);
        let t = |s| Duration::from_secs(s);
        assert_eq!(reap_all(&c, o[0], &mut watch, t(0)).await, 0);
        assert_eq!(
            reap_all(&c, o[0], &mut watch, t(100)).await,
            0,
            "a hint is pending"
        );
        let blocked = first.status().reap_blocked.unwrap_or_default();
        assert!(blocked.contains("holds hints"), "{blocked}");
        // Handoff delivers the hint (a merge, then the hint is dropped): the tombstone covers it.
        c.mesh
            .merge(&owners[1], vec![(Bytes::from("k"), old)], None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let outsider_node = c.node(outsider);
        let hint = outsider_node
            .node()
            .storage()
            .read({
                let target = owners[1].to_string();
                move |v| v.hints(&target, None, 10)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        write(
            &outsider_node,
            hint.into_iter()
                .map(|h| WriteOp::DropHint {
                    target: owners[1].to_string(),
                    key: h.key,
                    digest: h.digest,
                })
                .collect(),
        )
        .await;
        assert!(
            c.rows(o[1]).await[&Bytes::from("k")].is_tombstone(),
            "delivery did not revive it"
        );
        assert_eq!(reap_all(&c, o[0], &mut watch, t(200)).await, 1);
        assert!(c.rows(o[0]).await.is_empty() && c.rows(o[1]).await.is_empty());
        assert!(second.status().tombstones_reaped == 1);
        // Nothing anywhere can bring "old" back: an exchange finds the replicas equal and empty.
        assert_eq!(c.exchange_all(o[0], o[1]).await, 0);
        assert!(c.rows(outsider).await.is_empty());
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn malformed_peer_requests_are_invalid_argument() {
    tokio::time::timeout(BOUND, async {
        let c = Cluster::new(2, 2, 4);
        let a = c.node(0);
        let q = TreeQuery {
            partition_count: 4,
            partition: 0,
            shape: TreeShape {
                fan_out: 16,
                depth: 3,
            },
            level: 0,
            nodes: vec![0],
        };
        fn code<T>(r: Result<T, KvError>) -> Option<tonic::Code> {
            r.err().map(|e| e.code())
        }
        let invalid = Some(tonic::Code::InvalidArgument);
        assert_eq!(code(a.tree_nodes(q.clone()).await), invalid, "other shape");
        let good = TreeQuery {
            shape: config(2).shape,
            ..q.clone()
        };
        assert!(a.tree_nodes(good.clone()).await.is_ok());
        let wrong_ring = TreeQuery {
            partition_count: 8,
            ..good.clone()
        };
        assert_eq!(code(a.tree_nodes(wrong_ring).await), invalid, "other ring");
        let out_of_range = TreeQuery {
            level: 2,
            nodes: vec![16],
            ..good
        };
        assert_eq!(
            code(a.tree_nodes(out_of_range).await),
            invalid,
            "no such node"
        );
        let rows = |range: std::ops::RangeInclusive<u64>, limit| RowsQuery {
            range,
            after: None,
            limit,
            include_objects: true,
        };
        assert_eq!(code(a.rows(rows(0..=10, 0)).await), invalid, "page size 0");
        assert_eq!(
            code(a.rows(rows(0..=10, 5000)).await),
            invalid,
            "page too big"
        );
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = rows(10..=0, 5);
        assert_eq!(code(a.rows(inverted).await), invalid, "inverted range");
        assert!(a.rows(rows(0..=u64::MAX, 5)).await.is_ok());
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test]
async fn a_large_divergence_is_repaired_in_bounded_exchanges() {
    tokio::time::timeout(BOUND, async {
        let cfg = AaeConfig {
            max_rows_per_exchange: 20,
            // 256 leaves: four listings of 64 adjacent leaves a partition.
            shape: TreeShape {
                fan_out: 16,
                depth: 2,
            },
            ..config(2)
        };
        let c = Cluster::with_config(2, 2, cfg);
        let a = c.node(0);
        for i in 0..200 {
            put(&a, &format!("k{i}"), "v").await;
        }
        let mut rounds = Vec::new();
        loop {
            let repaired = c.exchange_all(0, 1).await;
            if repaired == 0 {
                break;
            }
            rounds.push(repaired);
            assert!(rounds.len() < 50, "no progress: {rounds:?}");
        }
        assert!(rounds.len() > 1, "the row cap split the work: {rounds:?}");
        assert_eq!(rounds.iter().sum::<u64>(), 200);
        assert_eq!(c.rows(0).await, c.rows(1).await);
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}
