//! Complete cluster nodes (`ClusterNode::start`: SQLite, gossip over UDP, hinted handoff,
//! anti-entropy, admin) on 127.0.0.1:0: a node stops, writes and reads go on at W=R=2, and the
//! node catches up after a restart on the same data directory. Bounded in time; every node it
//! starts is stopped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::TrackedStorage;
use ringkit_kv::cluster::assemble::ClusterNodeConfig;
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::topology::Member;
use ringkit_kv::error::KvError;
use ringkit_kv::grpc::pb::{self, kv_client::KvClient};
use ringkit_kv::node::KvNode;
use ringkit_kv::storage::{SqliteConfig, SqliteStorage};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Upper bound on the test.
const TEST_BOUND: Duration = Duration::from_secs(90);

type Store = TrackedStorage<SqliteStorage>;

/// One running node.
struct Running {
    kv: KvNode<Store>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), KvError>>,
}

/// Starts member `i` of `members` on the given sockets, storing in `dir`.
fn start(
    i: usize,
    members: &[Member],
    dir: &std::path::Path,
    tcp: TcpListener,
    udp: UdpSocket,
) -> Running {
    let id = NodeId::from(format!("n{i}"));
    let mut cluster = ClusterConfig::new(id.clone(), members.to_vec());
    cluster.coordinator.replica_timeout = Duration::from_millis(500);
    let mut config = ClusterNodeConfig::new(cluster);
    config.handoff.interval = Duration::from_millis(200);
    config.handoff.backoff_min = Duration::from_millis(100);
    config.handoff.backoff_max = Duration::from_millis(500);
    let store = SqliteStorage::open(SqliteConfig::new(dir, id.as_str()))
        .unwrap_or_else(|e| panic!("open n{i}: {e}"));
    let node = ClusterNode::start(
        config,
        store,
        Arc::new(SystemClock),
        Arc::new(TcpConnector::default()),
        Some(udp),
    )
    .unwrap_or_else(|e| panic!("start n{i}: {e}"));
    let kv = node.node().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.serve_listener(tcp, async {
        let _ = stopped.await;
    }));
    Running { kv, stop, task }
}

async fn halt(r: Running) {
    let _ = r.stop.send(());
    match r.task.await {
        Ok(Ok(())) => {}
        other => panic!("node stopped badly: {other:?}"),
    }
}

async fn client(addr: &str) -> KvClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("uri: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    KvClient::new(ch)
}

fn q() -> Option<pb::Quorum> {
    Some(pb::Quorum {
        n: 3,
        r: 2,
        w: 2,
        mode: 0,
    })
}

async fn holds_all(kv: &KvNode<Store>, keys: &[Bytes]) -> bool {
    kv.read_objects(keys.to_vec())
        .await
        .map(|v| v.iter().all(Option::is_some))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_does_not_stop_the_cluster_and_catches_up_after_restart() {
    tokio::time::timeout(TEST_BOUND, async {
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")))
            .collect();
        let mut tcps = Vec::new();
        let mut udps = Vec::new();
        let mut members = Vec::new();
        for i in 0..3 {
            let t = TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            let u = UdpSocket::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind udp: {e}"));
            let mut m = Member::new(
                format!("n{i}"),
                t.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string(),
            );
            m.gossip_addr = Some(u.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string());
            members.push(m);
            tcps.push(t);
            udps.push(u);
        }
        let mut nodes: Vec<Option<Running>> = Vec::new();
        for (i, (t, u)) in tcps.into_iter().zip(udps).enumerate() {
            nodes.push(Some(start(i, &members, dirs[i].path(), t, u)));
        }
        let mut c0 = client(&members[0].grpc_addr).await;
        let mut c1 = client(&members[1].grpc_addr).await;
        let keys: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("k{i:02}"))).collect();
        for k in &keys[..20] {
            c0.put(pb::PutRequest {
                key: k.clone(),
                value: k.clone(),
                quorum: q(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("put: {s}"));
        }

        // n2 stops; writes and reads go on at W=R=2.
        if let Some(n2) = nodes[2].take() {
            halt(n2).await;
        }
        for k in &keys[20..] {
            c1.put(pb::PutRequest {
                key: k.clone(),
                value: k.clone(),
                quorum: q(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("put with n2 down: {s}"));
        }
        for k in &keys {
            let r = c0
                .get(pb::GetRequest {
                    key: k.clone(),
                    quorum: q(),
                })
                .await
                .unwrap_or_else(|s| panic!("get with n2 down: {s}"))
                .into_inner();
            assert_eq!(r.siblings.len(), 1, "{k:?}");
            assert_eq!(r.siblings[0].value, *k);
        }

        // n2 restarts on its data directory and addresses: hints bring it what it missed.
        let t = TcpListener::bind(&members[2].grpc_addr)
            .await
            .unwrap_or_else(|e| panic!("rebind: {e}"));
        let u = UdpSocket::bind(members[2].gossip_addr.as_deref().unwrap_or_default())
            .await
            .unwrap_or_else(|e| panic!("rebind udp: {e}"));
        let n2 = start(2, &members, dirs[2].path(), t, u);
        let kv2 = n2.kv.clone();
        nodes[2] = Some(n2);
        let mut caught_up = false;
        for _ in 0..300 {
            if holds_all(&kv2, &keys).await {
                caught_up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(caught_up, "n2 did not receive the writes it missed");
        for n in nodes.into_iter().flatten() {
            halt(n).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}
