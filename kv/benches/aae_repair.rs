//! Benchmark of anti-entropy repair in one process: two nodes, one missing keys the other has,
//! exchanged partition by partition until equal. Peers are called in memory (the same handlers
//! the gRPC service runs), so this is the storage and merge cost without the network.
//!
//! `cargo bench -p ringkit-kv --bench aae_repair`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::remote::{RootsQuery, RowsPage, RowsQuery, TreeQuery};
use ringkit_kv::cluster::aae::{Aae, AaeConfig, AaePeers, AaeTrees, TrackedStorage};
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::cluster::topology::{ClusterMap, LiveSet, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::model::{ActorId, LocalWrite, Object, SiblingLimits, Timestamp, WriteMode};
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{
    Durability, MemStorage, RangeSummary, SqliteConfig, SqliteStorage, Storage, StorageExt,
    WriteOp, WriteRequest,
};
use tokio::sync::watch;

/// Keys the peer is missing.
const MISSING: usize = 5_000;

/// Two nodes by id, answering each other in memory.
struct Mesh<S> {
    nodes: Mutex<BTreeMap<NodeId, Aae<S>>>,
}

impl<S: Storage> Mesh<S> {
    fn get(&self, id: &NodeId) -> Result<Aae<S>, KvError> {
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| KvError::UnknownNode(id.to_string()))
    }
}

#[async_trait::async_trait]
impl<S: Storage> AaePeers for Mesh<S> {
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
impl<S: Storage> ReplicaPeers for Mesh<S> {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        _hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        let ops = items
            .into_iter()
            .map(|(key, object)| WriteOp::Merge { key, object })
            .collect();
        let req = WriteRequest {
            now: Timestamp(1),
            siblings: SiblingLimits::default(),
            ops,
        };
        self.get(to)?.node().storage().write(req).await?;
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

/// Two nodes over stores from `open`, the first holding `MISSING` keys the second lacks.
/// The watch senders keep the map and live set alive.
type Pair<S> = (
    Arc<Mesh<S>>,
    Vec<NodeId>,
    watch::Sender<Arc<ClusterMap>>,
    watch::Sender<LiveSet>,
);

fn pair<S: Storage>(rt: &tokio::runtime::Runtime, open: &dyn Fn(usize) -> S) -> Pair<S> {
    let ids: Vec<NodeId> = (0..2).map(|i| NodeId::from(format!("n{i}"))).collect();
    let members = ids
        .iter()
        .map(|id| Member::new(id.clone(), format!("{id}:1")))
        .collect();
    let ring = RingConfig::for_cluster_size(2).with_replicas(2);
    let map = ClusterMap::bootstrap(ring, members).unwrap_or_else(|e| panic!("{e}"));
    let (map_tx, map_rx) = watch::channel(Arc::new(map));
    let (live_tx, live_rx) = watch::channel(Arc::new(ids.iter().cloned().collect()));
    let mesh = Arc::new(Mesh {
        nodes: Mutex::new(BTreeMap::new()),
    });
    let cfg = AaeConfig {
        n: 2,
        rows_per_sec: 0,
        ..AaeConfig::default()
    };
    for (i, id) in ids.iter().enumerate() {
        let trees = Arc::new(AaeTrees::new(cfg.shape).unwrap_or_else(|e| panic!("{e}")));
        let mut node_cfg = NodeConfig::new(id.to_string());
        node_cfg.maintenance.tombstone_grace = None;
        let kv = KvNode::new(
            TrackedStorage::new(open(i), trees),
            node_cfg,
            Arc::new(SystemClock),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let aae = Aae::new(id.clone(), kv, cfg.clone(), map_rx.clone(), live_rx.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        mesh.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), aae);
    }
    let a = mesh.get(&ids[0]).unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        for chunk in (0..MISSING).collect::<Vec<_>>().chunks(1000) {
            let ops = chunk
                .iter()
                .map(|i| WriteOp::Local {
                    key: Bytes::from(format!("key-{i:08}")),
                    write: LocalWrite::Put {
                        value: Bytes::from(vec![b'v'; 100]),
                        context: None,
                        expires_at: None,
                        mode: WriteMode::Causal,
                    },
                })
                .collect();
            let req = WriteRequest {
                now: Timestamp(1),
                siblings: SiblingLimits::default(),
                ops,
            };
            a.node()
                .storage()
                .write(req)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
    (mesh, ids, map_tx, live_tx)
}

/// Exchanges every partition from the first node until nothing differs; returns keys repaired.
async fn repair_all<S: Storage>(mesh: &Mesh<S>, ids: &[NodeId]) -> u64 {
    let a = mesh.get(&ids[0]).unwrap_or_else(|e| panic!("{e}"));
    let (_, mine) = a.sync().unwrap_or_else(|e| panic!("{e}"));
    let mut total = 0;
    loop {
        let mut round = 0;
        for &p in &mine {
            round += a
                .exchange(mesh, mesh, &ids[1], p)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .keys_differing;
        }
        total += round;
        if round == 0 {
            return total;
        }
    }
}

fn bench_store<S: Storage>(c: &mut Criterion, name: &str, open: &dyn Fn(usize) -> S) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group(format!("aae repair {name}"));
    g.sample_size(10);
    g.throughput(criterion::Throughput::Elements(MISSING as u64));
    g.bench_function(format!("{MISSING} keys missing on the peer"), |b| {
        b.iter_batched(
            || pair(&rt, open),
            |(mesh, ids, _map, _live)| {
                let repaired = rt.block_on(repair_all(&mesh, &ids));
                assert_eq!(repaired, MISSING as u64);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    bench_store(c, "memory", &|i| MemStorage::new(ActorId(i as u64 + 1)));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path().to_path_buf();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    bench_store(c, "sqlite", &|i| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut cfg = SqliteConfig::new(root.join(format!("{n}")), format!("n{i}"));
        cfg.durability = Durability::Full;
        SqliteStorage::open(cfg).unwrap_or_else(|e| panic!("{e}"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
