//! Anti-entropy over real gRPC: two `ClusterNode`s on 127.0.0.1:0 over MemStorage, each serving
//! the `AntiEntropy` service beside `Replica`. Replicas are diverged by writing to each node's
//! local store only; one exchange (or the background loop) brings them back together. Every
//! test is bounded in time and stops every node and task it starts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::{
    self, Aae, AaeConfig, AaePeers, AaeTrees, GrpcAaePeers, TrackedStorage, TreeShape,
    replicated_partitions,
};
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::peers::ReplicaPeers;
use ringkit_kv::cluster::topology::Member;
use ringkit_kv::error::KvError;
use ringkit_kv::model::{ActorId, Object};
use ringkit_kv::node::{KvNode, NodeConfig, Put};
use ringkit_kv::storage::{MemStorage, StorageExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound on any one test.
const BOUND: Duration = Duration::from_secs(60);

type Store = TrackedStorage<MemStorage>;

/// One running member.
struct Running {
    id: NodeId,
    aae: Aae<MemStorage>,
    peers: Arc<dyn ReplicaPeers>,
    remote: Arc<dyn AaePeers>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), KvError>>>,
}

fn aae_config() -> AaeConfig {
    AaeConfig {
        n: 2,
        shape: TreeShape {
            fan_out: 8,
            depth: 2,
        },
        pair_interval: Duration::from_millis(200),
        page_rows: 16,
        ..AaeConfig::default()
    }
}

/// Starts `size` nodes; with `run_loop`, each also runs the anti-entropy loop.
async fn start(size: usize, run_loop: bool, cfg: AaeConfig) -> Vec<Running> {
    let mut listeners = Vec::new();
    for _ in 0..size {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        listeners.push(l);
    }
    let members: Vec<Member> = listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let addr = l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
            Member::new(format!("n{i}"), addr.to_string())
        })
        .collect();
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let id = NodeId::from(format!("n{i}"));
        let cfg = cfg.clone();
        let trees = Arc::new(AaeTrees::new(cfg.shape).unwrap_or_else(|e| panic!("{e}")));
        let store: Store = TrackedStorage::new(MemStorage::new(ActorId(100 + i as u64)), trees);
        let mut node_cfg = NodeConfig::new(id.as_str());
        node_cfg.maintenance.tombstone_grace = None;
        let kv = KvNode::new(store, node_cfg, Arc::new(SystemClock))
            .unwrap_or_else(|e| panic!("node: {e}"));
        let mut cluster = ClusterConfig::new(id.clone(), members.clone());
        cluster.coordinator.replica_timeout = Duration::from_secs(2);
        // Few partitions: the loop comes round to each one quickly.
        let mut ring = RingConfig::for_cluster_size(size);
        ring.partitions = 16;
        cluster.ring = Some(ring);
        let mut node = ClusterNode::new(kv.clone(), cluster, Arc::new(TcpConnector::default()))
            .unwrap_or_else(|e| panic!("cluster node: {e}"));
        let aae = Aae::new(
            id.clone(),
            kv,
            cfg.clone(),
            node.map_sender().subscribe(),
            node.live_sender().subscribe(),
        )
        .unwrap_or_else(|e| panic!("aae: {e}"));
        node.routes_mut().add_service(aae::service(aae.clone()));
        let remote: Arc<dyn AaePeers> =
            Arc::new(GrpcAaePeers::new(node.channels().clone(), cfg.rpc_timeout));
        let peers = node.peers();
        if run_loop {
            let task = aae::spawn(
                aae.clone(),
                Arc::clone(&remote),
                Arc::clone(&peers),
                node.shutdown_signal(),
            );
            node.add_task(task);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.serve_listener(listener, async {
            let _ = stopped.await;
        }));
        nodes.push(Running {
            id,
            aae,
            peers,
            remote,
            stop: Some(stop),
            task: Some(task),
        });
    }
    nodes
}

/// Stops every node and waits until each has drained (its tasks included).
async fn shutdown(nodes: Vec<Running>) {
    for mut n in nodes {
        if let Some(tx) = n.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = n.task.take() {
            match t.await {
                Ok(Ok(())) => {}
                other => panic!("node {} stopped badly: {other:?}", n.id),
            }
        }
    }
}

/// Writes only to `n`'s own store (no replication): how replicas drift apart.
async fn put_local(n: &Running, key: &str, value: &str) {
    n.aae
        .node()
        .put(Put::new(key.to_owned(), value.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Every row of `n`, by key.
async fn rows(n: &Running) -> BTreeMap<Bytes, Object> {
    n.aae
        .node()
        .storage()
        .read(|v| v.hash_range(&(0..=u64::MAX), None, 100_000))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| (r.key, r.object))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exchange_over_grpc_converges_two_diverged_replicas() {
    tokio::time::timeout(BOUND, async {
        let nodes = start(2, false, aae_config()).await;
        for i in 0..30 {
            put_local(&nodes[0], &format!("a{i}"), "from a").await;
        }
        for i in 0..12 {
            put_local(&nodes[1], &format!("b{i}"), "from b").await;
        }
        put_local(&nodes[0], "both", "x").await;
        put_local(&nodes[1], "both", "y").await;
        let (a, b) = (&nodes[0], &nodes[1]);
        let (_, mine) = a.aae.sync().unwrap_or_else(|e| panic!("{e}"));
        let theirs = replicated_partitions(&a.aae.map(), &b.id, 2);
        let mut repaired = 0;
        for p in mine.intersection(&theirs).copied() {
            let report = a
                .aae
                .exchange(a.remote.as_ref(), a.peers.as_ref(), &b.id, p)
                .await
                .unwrap_or_else(|e| panic!("exchange of partition {p}: {e}"));
            repaired += report.keys_differing;
        }
        assert_eq!(repaired, 30 + 12 + 1);
        let (ra, rb) = (rows(a).await, rows(b).await);
        assert_eq!(ra.len(), 43);
        assert_eq!(ra, rb, "both replicas hold the merged objects");
        assert_eq!(ra[&Bytes::from("both")].siblings().len(), 2);
        // A second round finds nothing, from either side.
        for p in mine.intersection(&theirs).copied() {
            let report = b
                .aae
                .exchange(b.remote.as_ref(), b.peers.as_ref(), &a.id, p)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(report.keys_differing, 0);
            assert_eq!(report.differing_leaves, 0);
        }
        shutdown(nodes).await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_loop_repairs_and_reports_status() {
    tokio::time::timeout(BOUND, async {
        let nodes = start(2, true, aae_config()).await;
        for i in 0..10 {
            put_local(&nodes[1], &format!("k{i}"), "v").await;
        }
        let mut converged = false;
        for _ in 0..500 {
            if rows(&nodes[0]).await == rows(&nodes[1]).await {
                converged = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(converged, "replicas did not converge within 10 s");
        let total: u64 = nodes.iter().map(|n| n.aae.status().keys_repaired).sum();
        // Both loops may repair a key in the same instant; at least one did each.
        assert!(total >= 10, "{total} keys repaired");
        let status = nodes[0].aae.status();
        assert_eq!(
            status.trees,
            nodes[0].aae.sync().map(|(_, m)| m.len()).unwrap_or(0)
        );
        assert!(status.partitions.iter().all(|p| p.peer == nodes[1].id));
        shutdown(nodes).await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}

/// Polls `f` every 20 ms until it holds, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_reaps_a_tombstone_every_replica_holds_and_it_stays_gone() {
    tokio::time::timeout(BOUND, async {
        let cfg = AaeConfig {
            tombstone_grace: Some(Duration::ZERO),
            reap_scan_every: Duration::from_millis(1),
            ..aae_config()
        };
        let nodes = start(2, true, cfg).await;
        put_local(&nodes[0], "gone", "v").await;
        put_local(&nodes[0], "kept", "v").await;
        let has = |i: usize, key: &'static str| {
            let n = &nodes[i];
            async move { rows(n).await.contains_key(&Bytes::from(key)) }
        };
        eventually("the loop copies both keys", || async {
            has(1, "gone").await && has(1, "kept").await
        })
        .await;
        nodes[0]
            .aae
            .node()
            .delete(Bytes::from("gone"), Bytes::new(), Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        eventually("the tombstone is reaped everywhere", || async {
            !has(0, "gone").await && !has(1, "gone").await
        })
        .await;
        for n in &nodes {
            // At least once: a replica can take the tombstone back from one not yet reaped
            // (harmless) and reap it again.
            assert!(n.aae.status().tombstones_reaped >= 1, "{}", n.id);
        }
        // More rounds change nothing: the key does not come back, the live one stays.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..2 {
            assert!(!has(i, "gone").await && has(i, "kept").await);
        }
        shutdown(nodes).await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {BOUND:?}"));
}
