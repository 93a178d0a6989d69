//! Ownership changes under load, in one process on 127.0.0.1:0 with real gRPC and real UDP
//! gossip: a fourth node joins a three-node cluster while a writer keeps writing, its partitions
//! stream to it, then a node leaves and hands its partitions off. Every acknowledged write must
//! still be readable at the end. Bounded in time; every node, task and socket is stopped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::admin::{KvAdminService, Topology, TopologyConfig};
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::gossip::{self, GossipConfig, GossipHandle};
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::pb;
use ringkit_kv::cluster::pb::kv_admin_client::KvAdminClient;
use ringkit_kv::cluster::topology::{ClusterMap, Member};
use ringkit_kv::cluster::transfer::{self, TransferConfig};
use ringkit_kv::error::KvError;
use ringkit_kv::grpc::pb as kvpb;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::model::ActorId;
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::MemStorage;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Upper bound on the whole test.
const TEST_BOUND: Duration = Duration::from_secs(120);
/// Upper bound on one ownership change (join or leave) to finish streaming.
const CHANGE_BOUND: Duration = Duration::from_secs(60);

struct Running {
    member: Member,
    kv: KvNode<MemStorage>,
    topology: Topology,
    gossip: Arc<GossipHandle>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), KvError>>>,
}

impl Running {
    async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            match t.await {
                Ok(Ok(())) => {}
                other => panic!("{} stopped badly: {other:?}", self.member.id),
            }
        }
        self.gossip.shutdown().await;
    }
}

/// Binds a node's sockets and describes it.
async fn bind(name: &str) -> (Member, TcpListener, UdpSocket) {
    let tcp = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let udp = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind udp: {e}"));
    let mut member = Member::new(
        name,
        tcp.local_addr().map(|a| a.to_string()).unwrap_or_default(),
    );
    member.gossip_addr = udp.local_addr().ok().map(|a| a.to_string());
    (member, tcp, udp)
}

/// Starts a node with gossip, the admin service and the transfer task. `members` is its
/// bootstrap list (the cluster for founders, only itself for a joiner).
async fn start(
    index: u64,
    (member, tcp, udp): (Member, TcpListener, UdpSocket),
    members: Vec<Member>,
    seeds: Vec<SocketAddr>,
) -> Running {
    let mut config = NodeConfig::new(member.id.as_str());
    config.maintenance.tombstone_grace = None;
    let kv = KvNode::new(
        MemStorage::new(ActorId(100 + index)),
        config,
        Arc::new(SystemClock),
    )
    .unwrap_or_else(|e| panic!("node: {e}"));
    let mut cluster = ClusterConfig::new(member.id.clone(), members);
    cluster.ring = Some(ringkit_hashring::RingConfig::for_cluster_size(8));
    cluster.coordinator.replica_timeout = Duration::from_secs(2);
    let mut node = ClusterNode::new(kv.clone(), cluster, Arc::new(TcpConnector::default()))
        .unwrap_or_else(|e| panic!("cluster node: {e}"));
    let mut g = GossipConfig::new(member.id.clone(), member.grpc_addr.clone(), seeds);
    g.rng_seed = index;
    g.assume_live = node
        .map_sender()
        .borrow()
        .members()
        .map(|m| m.id.clone())
        .collect();
    let gossip = Arc::new(gossip::spawn(g, udp).unwrap_or_else(|e| panic!("gossip: {e}")));
    let feed = gossip.feed_live(node.live_sender().clone(), node.shutdown_signal());
    node.add_task(feed);
    let topology = Topology::new(
        member.clone(),
        node.map_sender().clone(),
        node.live_sender().subscribe(),
        node.channels().clone(),
        Some(Arc::clone(&gossip)),
        TopologyConfig {
            announce_every: Duration::from_millis(500),
            rpc_timeout: Duration::from_secs(5),
        },
    );
    let sync = topology.spawn_sync(node.shutdown_signal());
    node.add_task(sync);
    let moves = TransferConfig {
        page_rows: 64,
        settle: Duration::from_millis(300),
        retry_every: Duration::from_millis(200),
        max_parallel: 4,
    };
    let streamer = transfer::spawn(
        topology.clone(),
        Arc::new(kv.clone()),
        node.peers(),
        moves,
        node.shutdown_signal(),
    );
    node.add_task(streamer);
    node.routes_mut()
        .add_service(KvAdminService::new(topology.clone()).into_server());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.serve_listener(tcp, async {
        let _ = stopped.await;
    }));
    Running {
        member,
        kv,
        topology,
        gossip,
        stop: Some(stop),
        task: Some(task),
    }
}

async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("uri: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Waits until every node in `nodes` has a map with no transfer pending at an epoch at least
/// `epoch`, and returns that map (as node 0 sees it).
async fn settled(nodes: &[&Running], epoch: u64) -> Arc<ClusterMap> {
    let wait = async {
        loop {
            let maps: Vec<Arc<ClusterMap>> = nodes.iter().map(|n| n.topology.map()).collect();
            let done = maps.iter().all(|m| {
                m.epoch() >= epoch && m.pending().is_empty() && m.epoch() == maps[0].epoch()
            });
            if done {
                return Arc::clone(&maps[0]);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(CHANGE_BOUND, wait)
        .await
        .unwrap_or_else(|_| {
            let epochs: Vec<_> = nodes
                .iter()
                .map(|n| {
                    (
                        n.member.id.to_string(),
                        n.topology.map().epoch(),
                        n.topology.map().pending().len(),
                        n.gossip
                            .members()
                            .iter()
                            .map(|m| {
                                format!(
                                    "{}#{}:{:?}",
                                    m.identity.node,
                                    m.identity.incarnation % 1000,
                                    m.state
                                )
                            })
                            .collect::<Vec<_>>(),
                    )
                })
                .collect();
            panic!("ring did not settle: (node, epoch, partitions pending, gossip view) {epochs:?}")
        })
}

/// Writes keys `w{i}` through the nodes in turn until told to stop; returns the acknowledged
/// ones (key -> value).
fn writer(
    addrs: Vec<String>,
    mut stop: oneshot::Receiver<()>,
) -> JoinHandle<BTreeMap<String, String>> {
    tokio::spawn(async move {
        let mut clients = Vec::new();
        for a in &addrs {
            clients.push(KvClient::new(channel(a).await));
        }
        let mut acked = BTreeMap::new();
        let mut i = 0usize;
        while stop.try_recv().is_err() {
            let (key, value) = (format!("w{i}"), format!("v{i}"));
            let request = kvpb::PutRequest {
                key: Bytes::from(key.clone()),
                value: Bytes::from(value.clone()),
                quorum: Some(kvpb::Quorum {
                    n: 3,
                    r: 2,
                    w: 2,
                    mode: 0,
                }),
                ..Default::default()
            };
            let n = clients.len();
            if clients[i % n].put(request).await.is_ok() {
                acked.insert(key, value);
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        acked
    })
}

/// Every acknowledged write is readable at R=2 through `readers`; returns the keys that are not.
async fn lost(readers: &[&Running], acked: &BTreeMap<String, String>) -> Vec<String> {
    let mut clients = Vec::new();
    for r in readers {
        clients.push(KvClient::new(channel(&r.member.grpc_addr).await));
    }
    let mut missing = Vec::new();
    for (n, (key, value)) in acked.iter().enumerate() {
        let request = kvpb::GetRequest {
            key: Bytes::from(key.clone()),
            quorum: Some(kvpb::Quorum {
                n: 3,
                r: 2,
                w: 2,
                mode: 0,
            }),
        };
        let i = n % clients.len();
        let got = clients[i]
            .get(request)
            .await
            .unwrap_or_else(|s| panic!("get {key}: {s}"))
            .into_inner();
        if !got.siblings.iter().any(|s| s.value == value.as_bytes()) {
            missing.push(key.clone());
        }
    }
    missing
}

/// The completion check seen from outside: every node of `nodes` stores every acknowledged key
/// it replicates under `map` (waiting a little for the replication that follows an ack).
async fn owners_hold_their_keys(
    nodes: &[&Running],
    map: &ClusterMap,
    acked: &BTreeMap<String, String>,
) {
    for node in nodes {
        let mine: Vec<(&String, &String)> = acked
            .iter()
            .filter(|(k, _)| {
                map.replica_set(ringkit_hashring::key_hash(k.as_bytes()), 3)
                    .write
                    .contains(&node.member.id)
            })
            .collect();
        let mut absent = Vec::new();
        for _ in 0..100 {
            let keys: Vec<Bytes> = mine
                .iter()
                .map(|(k, _)| Bytes::from((*k).clone()))
                .collect();
            let stored = node
                .kv
                .read_objects(keys)
                .await
                .unwrap_or_else(|e| panic!("read: {e}"));
            absent = mine
                .iter()
                .zip(&stored)
                .filter(|((_, v), o)| {
                    !o.as_ref()
                        .is_some_and(|o| o.siblings().iter().any(|s| s.value == v.as_bytes()))
                })
                .map(|((k, _), _)| (*k).clone())
                .collect();
            if absent.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            absent.is_empty(),
            "{} lacks {} of its {} keys: {absent:?}",
            node.member.id,
            absent.len(),
            mine.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_leaves_under_load_without_losing_a_write() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut sockets = Vec::new();
        for name in ["n0", "n1", "n2", "n3"] {
            sockets.push(bind(name).await);
        }
        let founders: Vec<Member> = sockets[..3].iter().map(|s| s.0.clone()).collect();
        let seed: SocketAddr = founders[0]
            .gossip_addr
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("seed"));
        let mut sockets = sockets.into_iter();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let s = sockets.next().unwrap_or_else(|| panic!("sockets"));
            nodes.push(start(i, s, founders.clone(), vec![seed]).await);
        }
        let epoch0 = nodes[0].topology.map().epoch();

        let addrs: Vec<String> = founders.iter().map(|m| m.grpc_addr.clone()).collect();
        let (stop_writer, stopped) = oneshot::channel();
        let load = writer(addrs.clone(), stopped);
        // Past the claimant's start-up grace (two re-announce periods) so it decides at once.
        tokio::time::sleep(Duration::from_millis(1200)).await;

        // n3 joins through n1 (not the claimant: the request is forwarded).
        let s3 = sockets.next().unwrap_or_else(|| panic!("sockets"));
        let solo = vec![s3.0.clone()];
        // No gossip seed: the claimant introduces itself when it installs the map with n3.
        nodes.push(start(3, s3, solo, vec![]).await);
        let joined = nodes[3]
            .topology
            .join_through(&founders[1].grpc_addr)
            .await
            .unwrap_or_else(|e| panic!("join: {e}"));
        assert!(joined.epoch() > epoch0);
        assert!(
            !joined.pending().is_empty(),
            "the join streams partitions to n3"
        );
        let join_transfers: usize = joined.pending().values().map(Vec::len).sum();
        let all: Vec<&Running> = nodes.iter().collect();
        let after_join = settled(&all, joined.epoch() + 1).await;
        assert!(after_join.ring().node(&NodeId::from("n3")).is_some());
        assert!(after_join.ring().slots_of(&NodeId::from("n3")).count() > 0);

        // n2 leaves, asked through the admin API of n3 (forwarded to the claimant n0).
        let mut admin = KvAdminClient::new(channel(&nodes[3].member.grpc_addr).await);
        let change = admin
            .leave(pb::LeaveRequest {
                node_id: "n2".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("leave: {s}"))
            .into_inner();
        assert!(change.changed);
        let leave_transfers = change
            .map
            .as_ref()
            .and_then(|m| serde_json::from_slice::<ClusterMap>(&m.json).ok())
            .map_or(0, |m| m.pending().values().map(Vec::len).sum::<usize>());
        assert!(leave_transfers > 0, "n2's partitions must be handed off");
        let rest: Vec<&Running> = [0, 1, 3].iter().map(|&i| &nodes[i]).collect();
        let after_leave = settled(&rest, change.map.as_ref().map_or(0, |m| m.epoch) + 1).await;
        assert!(
            after_leave.member(&NodeId::from("n2")).is_none(),
            "n2 is off the map once handed off"
        );

        let _ = stop_writer.send(());
        let acked = load.await.unwrap_or_else(|e| panic!("writer: {e}"));
        assert!(
            acked.len() > 50,
            "the writer made progress: {} writes",
            acked.len()
        );
        nodes[2].stop().await;

        // Every acknowledged write is readable from the remaining three nodes.
        let rest: Vec<&Running> = [0, 1, 3].iter().map(|&i| &nodes[i]).collect();
        let missing = lost(&rest, &acked).await;
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost: {missing:?}",
            missing.len(),
            acked.len()
        );
        owners_hold_their_keys(&rest, &after_leave, &acked).await;
        println!(
            "{} acknowledged writes, all readable; join moved {join_transfers} partition slots, \
             leave {leave_transfers}",
            acked.len()
        );
        for i in [0, 1, 3] {
            nodes[i].stop().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_removed_and_its_partitions_rebuilt_from_the_survivors() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut sockets = Vec::new();
        for name in ["n0", "n1", "n2", "n3"] {
            sockets.push(bind(name).await);
        }
        let members: Vec<Member> = sockets.iter().map(|s| s.0.clone()).collect();
        let seed: SocketAddr = members[0]
            .gossip_addr
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("seed"));
        let mut nodes = Vec::new();
        for (i, s) in sockets.into_iter().enumerate() {
            nodes.push(start(i as u64, s, members.clone(), vec![seed]).await);
        }
        let addrs: Vec<String> = members[..3].iter().map(|m| m.grpc_addr.clone()).collect();
        let (stop_writer, stopped) = oneshot::channel();
        let load = writer(addrs, stopped);
        tokio::time::sleep(Duration::from_millis(1200)).await;

        // n3 crashes: gossip notices, the ring does not change by itself.
        let epoch = nodes[0].topology.map().epoch();
        nodes[3].stop().await;
        let gone = NodeId::from("n3");
        let noticed = async {
            while nodes[..3].iter().any(|n| n.topology.live().contains(&gone)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), noticed)
            .await
            .unwrap_or_else(|_| panic!("n3's crash went unnoticed"));
        assert_eq!(
            nodes[0].topology.map().epoch(),
            epoch,
            "a crash is not a departure"
        );
        assert!(nodes[0].topology.map().member(&gone).is_some());

        let mut admin = KvAdminClient::new(channel(&nodes[2].member.grpc_addr).await);
        let change = admin
            .remove(pb::RemoveRequest {
                node_id: "n3".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("remove: {s}"))
            .into_inner();
        assert!(change.changed);
        let survivors: Vec<&Running> = nodes[..3].iter().collect();
        let after = settled(&survivors, change.map.as_ref().map_or(0, |m| m.epoch) + 1).await;
        assert!(after.member(&gone).is_none());

        let _ = stop_writer.send(());
        let acked = load.await.unwrap_or_else(|e| panic!("writer: {e}"));
        assert!(
            acked.len() > 50,
            "the writer made progress: {} writes",
            acked.len()
        );
        let missing = lost(&survivors, &acked).await;
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost: {missing:?}",
            missing.len(),
            acked.len()
        );
        owners_hold_their_keys(&survivors, &after, &acked).await;
        println!(
            "n3 removed after its crash; {} acknowledged writes, all readable and fully replicated",
            acked.len()
        );
        for node in &mut nodes[..3] {
            node.stop().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}
