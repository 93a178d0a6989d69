//! A three-node cluster in one process on 127.0.0.1:0 over real gRPC: replication at W=2,
//! reads at R=2 that merge siblings, a stopped node, forwarding, read repair, hints kept for an
//! unreachable replica, cluster scans, and bad input. Every test is bounded in time and stops
//! every node it starts.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::pb::replica_client::ReplicaClient;
use ringkit_kv::cluster::pb::{Item, MergeRequest};
use ringkit_kv::cluster::topology::{ClusterMap, LiveSet, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::grpc::pb::{self, kv_client::KvClient};
use ringkit_kv::model::{ActorId, key_hash};
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{MemStorage, StorageExt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

/// Upper bound on any one test.
const TEST_BOUND: Duration = Duration::from_secs(60);

/// One running member.
struct Running {
    id: NodeId,
    addr: String,
    kv: KvNode<MemStorage>,
    live: watch::Sender<LiveSet>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), KvError>>>,
}

/// A cluster of in-process nodes.
struct Cluster {
    nodes: Vec<Running>,
    members: Vec<Member>,
}

impl Cluster {
    /// Binds every listener first, then builds the member list from the bound addresses.
    async fn start(size: usize) -> Cluster {
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
            let mut config = NodeConfig::new(id.as_str());
            config.maintenance.tombstone_grace = None;
            let kv = KvNode::new(
                MemStorage::new(ActorId(100 + i as u64)),
                config,
                Arc::new(SystemClock),
            )
            .unwrap_or_else(|e| panic!("node: {e}"));
            let mut cluster = ClusterConfig::new(id.clone(), members.clone());
            cluster.coordinator.replica_timeout = Duration::from_millis(500);
            let node = ClusterNode::new(kv.clone(), cluster, Arc::new(TcpConnector::default()))
                .unwrap_or_else(|e| panic!("cluster node: {e}"));
            let live = node.live_sender().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(node.serve_listener(listener, async {
                let _ = stopped.await;
            }));
            nodes.push(Running {
                id,
                addr: members[i].grpc_addr.clone(),
                kv,
                live,
                stop: Some(stop),
                task: Some(task),
            });
        }
        Cluster { nodes, members }
    }

    /// The key's write set (N=3) in this cluster's map.
    fn write_set(&self, key: &str) -> Vec<NodeId> {
        let map = ClusterMap::bootstrap(
            RingConfig::for_cluster_size(self.members.len()),
            self.members.clone(),
        )
        .unwrap_or_else(|e| panic!("map: {e}"));
        map.replica_set(key_hash(key.as_bytes()), 3).write
    }

    async fn channel(&self, i: usize) -> Channel {
        Channel::from_shared(format!("http://{}", self.nodes[i].addr))
            .unwrap_or_else(|e| panic!("uri: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    async fn client(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(i).await)
    }

    /// Stops node `i` and waits until it has drained.
    async fn stop(&mut self, i: usize) {
        if let Some(tx) = self.nodes[i].stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.nodes[i].task.take() {
            match t.await {
                Ok(Ok(())) => {}
                other => panic!("node {i} stopped badly: {other:?}"),
            }
        }
    }

    async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// Every node's live set: every member but `down`.
    fn set_down(&self, down: &[usize]) {
        let live: BTreeSet<NodeId> = (0..self.nodes.len())
            .filter(|i| !down.contains(i))
            .map(|i| self.nodes[i].id.clone())
            .collect();
        for n in &self.nodes {
            n.live.send_replace(Arc::new(live.clone()));
        }
    }
}

fn quorum(n: u32, r: u32, w: u32) -> Option<pb::Quorum> {
    Some(pb::Quorum { n, r, w, mode: 0 })
}

fn put(key: &str, value: &str, q: Option<pb::Quorum>) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::from(key.to_owned()),
        value: Bytes::from(value.to_owned()),
        quorum: q,
        ..Default::default()
    }
}

fn get(key: &str, q: Option<pb::Quorum>) -> pb::GetRequest {
    pb::GetRequest {
        key: Bytes::from(key.to_owned()),
        quorum: q,
    }
}

fn values(r: &pb::GetResponse) -> Vec<Bytes> {
    let mut v: Vec<Bytes> = r.siblings.iter().map(|s| s.value.clone()).collect();
    v.sort();
    v
}

/// Polls `f` every 20 ms until it holds, for at most 10 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn stored(kv: &KvNode<MemStorage>, key: &str) -> bool {
    kv.read_objects(vec![Bytes::from(key.to_owned())])
        .await
        .map(|v| v.first().is_some_and(Option::is_some))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_reads_survive_a_stopped_node() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let mut c1 = cluster.client(1).await;
        for i in 0..20 {
            c0.put(put(&format!("k{i}"), &format!("v{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("put k{i}: {s}"));
        }
        for i in 0..20 {
            let r = c1
                .get(get(&format!("k{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("get k{i}: {s}"))
                .into_inner();
            assert_eq!(values(&r), vec![Bytes::from(format!("v{i}"))]);
        }
        // The third replica gets every write too, after the answer.
        let kv2 = cluster.nodes[2].kv.clone();
        eventually("node 2 to hold k19", || stored(&kv2, "k19")).await;

        cluster.stop(2).await;
        for i in 20..40 {
            c1.put(put(&format!("k{i}"), &format!("v{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("put k{i} with a node down: {s}"));
        }
        for i in 0..40 {
            let r = c0
                .get(get(&format!("k{i}"), quorum(3, 2, 2)))
                .await
                .unwrap_or_else(|s| panic!("get k{i} with a node down: {s}"))
                .into_inner();
            assert_eq!(values(&r), vec![Bytes::from(format!("v{i}"))]);
        }
        // R=3 cannot be met any more, and the error says why.
        let err = c0
            .get(get("k1", quorum(3, 3, 2)))
            .await
            .err()
            .unwrap_or_else(|| panic!("R=3 with a node down must fail"));
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        // It fails as soon as n2's failure makes R=3 unreachable, naming the failed replica.
        assert!(
            err.message().contains("of 3 answers") && err.message().contains("n2"),
            "{err}"
        );
        // The coordinator kept a hint for the stopped replica of each write it could not reach
        // (each once its fan-out ended, just after the answer).
        let kv1 = cluster.nodes[1].kv.clone();
        eventually("one hint per write made while n2 was down", || {
            let kv1 = kv1.clone();
            async move {
                kv1.storage()
                    .read(|v| v.hints("n2", None, 100))
                    .await
                    .is_ok_and(|h| h.len() == 20)
            }
        })
        .await;
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_coordinators_come_back_as_siblings() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let mut c2 = cluster.client(2).await;
        c0.put(put("cart", "apple", None))
            .await
            .unwrap_or_else(|s| panic!("{s}"));
        c2.put(put("cart", "pear", None))
            .await
            .unwrap_or_else(|s| panic!("{s}"));
        let r = c0
            .get(get("cart", quorum(3, 3, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"))
            .into_inner();
        assert_eq!(values(&r), vec![Bytes::from("apple"), Bytes::from("pear")]);
        // Writing back with the merged context resolves them everywhere.
        let mut resolve = put("cart", "apple,pear", quorum(3, 2, 3));
        resolve.context = r.context;
        c2.put(resolve).await.unwrap_or_else(|s| panic!("{s}"));
        let r = c0
            .get(get("cart", quorum(3, 3, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"))
            .into_inner();
        assert_eq!(values(&r), vec![Bytes::from("apple,pear")]);
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_fixes_a_replica_that_missed_a_write() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        // Everyone believes n2 is down: the write skips it (no fallback in a 3-node cluster)
        // and the coordinator keeps a hint for it.
        cluster.set_down(&[2]);
        c0.put(put("missed", "v", quorum(3, 2, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"));
        // The hint is kept once the fan-out ends, just after the answer.
        let kv0 = cluster.nodes[0].kv.clone();
        eventually("the coordinator's hint for n2", || {
            let kv0 = kv0.clone();
            async move {
                kv0.storage()
                    .read(|v| v.hints("n2", None, 10))
                    .await
                    .is_ok_and(|h| h.len() == 1)
            }
        })
        .await;
        assert!(!stored(&cluster.nodes[2].kv, "missed").await);
        // n2 is back: a read asking all three finds it missing and repairs it.
        cluster.set_down(&[]);
        let r = c0
            .get(get("missed", quorum(3, 3, 2)))
            .await
            .unwrap_or_else(|s| panic!("{s}"))
            .into_inner();
        assert_eq!(values(&r), vec![Bytes::from("v")]);
        let kv2 = cluster.nodes[2].kv.clone();
        eventually("read repair of n2", || stored(&kv2, "missed")).await;
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_replicas_forward_and_scan_sees_every_key_once() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let mut c1 = cluster.client(1).await;
        // N=1: two nodes of three are not replicas of a key, so most requests are forwarded.
        let keys: Vec<String> = (0..30).map(|i| format!("user:{i:02}")).collect();
        for k in &keys {
            c0.put(put(k, k, quorum(1, 1, 1)))
                .await
                .unwrap_or_else(|s| panic!("put {k}: {s}"));
        }
        for k in &keys {
            let r = c1
                .get(get(k, quorum(1, 1, 1)))
                .await
                .unwrap_or_else(|s| panic!("get {k}: {s}"))
                .into_inner();
            assert_eq!(values(&r), vec![Bytes::from(k.clone())], "{k}");
        }
        // Every key is on exactly one node; a cluster scan pages through all of them in order.
        let mut seen = Vec::new();
        let mut cursor = Bytes::new();
        loop {
            let page = c1
                .scan(pb::ScanRequest {
                    bounds: Some(pb::scan_request::Bounds::Prefix(Bytes::from("user:"))),
                    cursor: cursor.clone(),
                    page_size: 7,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("scan: {s}"))
                .into_inner();
            seen.extend(
                page.entries
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.key).into_owned()),
            );
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        assert_eq!(seen, keys);
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_quorums_and_bad_peer_input_are_invalid_argument() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = Cluster::start(3).await;
        let mut c0 = cluster.client(0).await;
        let too_big = c0
            .put(put("k", "v", quorum(4, 2, 2)))
            .await
            .err()
            .unwrap_or_else(|| panic!("N=4 on 3 nodes must fail"));
        assert_eq!(too_big.code(), Code::InvalidArgument);
        assert!(
            too_big.message().contains("larger than the cluster"),
            "{too_big}"
        );
        let r_above_n = c0
            .get(get("k", quorum(2, 3, 1)))
            .await
            .err()
            .unwrap_or_else(|| panic!("R > N must fail"));
        assert_eq!(r_above_n.code(), Code::InvalidArgument);
        let mut replica = ReplicaClient::new(cluster.channel(1).await);
        let garbage = replica
            .merge(MergeRequest {
                items: vec![Item {
                    key: Bytes::from("k"),
                    object: Bytes::from_static(b"\xff\x00not an object"),
                }],
                hint_for: String::new(),
                from: "test".into(),
            })
            .await
            .err()
            .unwrap_or_else(|| panic!("a malformed object must be refused"));
        assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage}");
        assert!(!stored(&cluster.nodes[1].kv, "k").await, "nothing stored");
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sloppy_quorum_counts_a_hinted_fallback_and_strict_does_not() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut cluster = Cluster::start(4).await;
        // n1 stops without anyone being told (it stays in every live set): sends to it fail
        // after the plan. Keys are written through n3, on keys n3 is a primary of (so n3
        // coordinates; a forward to an undetected dead node fails, see docs/kv.md).
        let mut c = cluster.client(3).await;
        let down = NodeId::from("n1");
        cluster.stop(1).await;
        let quorum = |mode: pb::QuorumMode| {
            Some(pb::Quorum {
                n: 3,
                r: 2,
                w: 3,
                mode: mode as i32,
            })
        };
        let keys: Vec<String> = (0..200)
            .map(|i| format!("s{i}"))
            .filter(|k| cluster.write_set(k).contains(&NodeId::from("n3")))
            .take(12)
            .collect();
        let with_down: Vec<&String> = keys
            .iter()
            .filter(|k| cluster.write_set(k).contains(&down))
            .collect();
        assert!(!with_down.is_empty(), "some key must have n1 as a primary");
        let with_down_count = with_down.len();
        for key in &keys {
            // Sloppy: the fallback stands in for n1 (with a hint) and counts toward W=3.
            c.put(put(key, "v", quorum(pb::QuorumMode::Sloppy)))
                .await
                .unwrap_or_else(|s| panic!("sloppy put {key}: {s}"));
            // Strict: only primaries count, so W=3 fails exactly when n1 is one of them.
            let strict = c.put(put(key, "w", quorum(pb::QuorumMode::Strict))).await;
            if with_down.contains(&key) {
                let s = strict
                    .err()
                    .unwrap_or_else(|| panic!("strict put {key} must fail"));
                assert_eq!(s.code(), Code::Unavailable, "{s}");
                assert!(s.message().contains("of 3 acknowledgements"), "{s}");
                assert!(s.message().contains("n1"), "{s}");
            } else {
                strict.unwrap_or_else(|s| panic!("strict put {key}: {s}"));
            }
        }
        // The stand-ins (and the coordinator, for strict writes n1 missed) hold hints for n1.
        let holders: Vec<KvNode<MemStorage>> = [0, 2, 3]
            .iter()
            .map(|&i| cluster.nodes[i].kv.clone())
            .collect();
        eventually("hints for n1", || {
            let holders = holders.clone();
            async move {
                let mut total = 0;
                for kv in &holders {
                    total += kv
                        .storage()
                        .read(|v| v.hints("n1", None, 100))
                        .await
                        .map_or(0, |h| h.len());
                }
                total >= with_down_count
            }
        })
        .await;
        cluster.shutdown().await;
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}
