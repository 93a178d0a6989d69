//! Hinted handoff end to end, with complete nodes (`ClusterNode::start`: SQLite, gossip over
//! UDP, the real coordinator, `Replica` service and handoff task) on 127.0.0.1:0.
//!
//! A replica is down while a client writes: the coordinator keeps a durable hint for it. The
//! coordinator itself then restarts (its hints must survive), and when the replica comes back it
//! receives every write it missed through handoff alone (anti-entropy is slowed to once an hour
//! so it cannot be what repairs the replica), after which no hint is left. Bounded in time;
//! every node it starts is stopped.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::TrackedStorage;
use ringkit_kv::cluster::assemble::ClusterNodeConfig;
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::hints::pending_hints;
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
    // Anti-entropy would also repair the returning replica; keep it out of the way.
    config.aae.pair_interval = Duration::from_secs(3600);
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

/// Restarts member `i` on its own addresses and data directory.
async fn restart(i: usize, members: &[Member], dir: &std::path::Path) -> Running {
    let tcp = TcpListener::bind(&members[i].grpc_addr)
        .await
        .unwrap_or_else(|e| panic!("rebind n{i}: {e}"));
    let udp = UdpSocket::bind(members[i].gossip_addr.as_deref().unwrap_or_default())
        .await
        .unwrap_or_else(|e| panic!("rebind udp n{i}: {e}"));
    start(i, members, dir, tcp, udp)
}

async fn halt(r: Running) {
    let _ = r.stop.send(());
    match r.task.await {
        Ok(Ok(())) => {}
        other => panic!("node stopped badly: {other:?}"),
    }
}

/// Hints `kv` holds for `target`.
async fn hints_for(kv: &KvNode<Store>, target: &str) -> u64 {
    pending_hints(kv)
        .await
        .unwrap_or_else(|e| panic!("pending hints: {e}"))
        .iter()
        .filter(|b| b.target == target)
        .map(|b| b.hints)
        .sum()
}

/// Polls `cond` every 50 ms, up to 300 times.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_replica_gets_every_missed_write_from_durable_hints() {
    tokio::time::timeout(TEST_BOUND, async {
        let dirs: Vec<tempfile::TempDir> = (0..3)
            .map(|_| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")))
            .collect();
        let mut sockets = Vec::new();
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
            sockets.push((t, u));
        }
        let mut nodes: Vec<Option<Running>> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, (t, u))| Some(start(i, &members, dirs[i].path(), t, u)))
            .collect();

        // n2 is down while the client writes through n0 (N=3 of 3 nodes: every key has n2 as
        // a replica, and there is no stand-in, so the coordinator keeps the hints itself).
        if let Some(n2) = nodes[2].take() {
            halt(n2).await;
        }
        let ch = Channel::from_shared(format!("http://{}", members[0].grpc_addr))
            .unwrap_or_else(|e| panic!("uri: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let mut client = KvClient::new(ch);
        let keys: Vec<Bytes> = (0..30).map(|i| Bytes::from(format!("k{i:02}"))).collect();
        for k in &keys {
            client
                .put(pb::PutRequest {
                    key: k.clone(),
                    value: k.clone(),
                    quorum: Some(pb::Quorum {
                        n: 3,
                        r: 2,
                        w: 2,
                        mode: 0,
                    }),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("put with n2 down: {s}"));
        }
        let n0 = nodes[0].take().unwrap_or_else(|| panic!("n0 runs"));
        let kv0 = n0.kv.clone();
        eventually("n0 holds a hint per write for n2", async || {
            hints_for(&kv0, "n2").await == 30
        })
        .await;

        // The hint holder restarts: its hints are on disk.
        halt(n0).await;
        let n0 = restart(0, &members, dirs[0].path()).await;
        let kv0 = n0.kv.clone();
        nodes[0] = Some(n0);
        assert_eq!(hints_for(&kv0, "n2").await, 30, "hints survive a restart");

        // n2 comes back empty-handed for those keys; handoff alone brings them.
        let n2 = restart(2, &members, dirs[2].path()).await;
        let kv2 = n2.kv.clone();
        nodes[2] = Some(n2);
        eventually("n2 received every write it missed", async || {
            kv2.read_objects(keys.clone())
                .await
                .is_ok_and(|v| v.iter().all(Option::is_some))
        })
        .await;
        let stored = kv2
            .read_objects(keys.clone())
            .await
            .unwrap_or_else(|e| panic!("read n2: {e}"));
        for (k, o) in keys.iter().zip(stored) {
            let o = o.unwrap_or_else(|| panic!("{k:?} missing on n2"));
            assert_eq!(o.siblings().len(), 1, "{k:?}");
            assert_eq!(o.siblings()[0].value, *k);
        }
        eventually("the hints are gone", async || {
            hints_for(&kv0, "n2").await == 0
        })
        .await;
        for n in nodes.into_iter().flatten() {
            halt(n).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}
