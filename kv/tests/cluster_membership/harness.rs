//! The in-process cluster the membership tests run: nodes with gossip (real UDP), the map
//! authority and its admin service, and the transfer task, on 127.0.0.1:0; a writer; checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::admin::{KvAdminService, Topology, TopologyConfig};
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::gossip::{self, GossipConfig, GossipHandle};
use ringkit_kv::cluster::node::ClusterNode;
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
pub(crate) const TEST_BOUND: Duration = Duration::from_secs(120);
/// Upper bound on one ownership change (join or leave) to finish streaming.
pub(crate) const CHANGE_BOUND: Duration = Duration::from_secs(60);

pub(crate) struct Running {
    pub(crate) member: Member,
    pub(crate) kv: KvNode<MemStorage>,
    pub(crate) topology: Topology,
    pub(crate) gossip: Arc<GossipHandle>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), KvError>>>,
}

impl Running {
    pub(crate) async fn stop(&mut self) {
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
pub(crate) async fn bind(name: &str) -> (Member, TcpListener, UdpSocket) {
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
pub(crate) async fn start(
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
            ..TopologyConfig::default()
        },
    );
    let sync = topology.spawn_sync(node.shutdown_signal());
    node.add_task(sync);
    let moves = TransferConfig {
        page_rows: 64,
        settle: Duration::from_millis(300),
        retry_every: Duration::from_millis(200),
        max_parallel: 4,
        report_window: Duration::from_millis(50),
        ..TransferConfig::default()
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

pub(crate) async fn channel(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("uri: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Waits until every node in `nodes` has a map with no transfer pending at an epoch at least
/// `epoch`, and returns that map (as node 0 sees it).
pub(crate) async fn settled(nodes: &[&Running], epoch: u64) -> Arc<ClusterMap> {
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
pub(crate) fn writer(
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
pub(crate) async fn lost(readers: &[&Running], acked: &BTreeMap<String, String>) -> Vec<String> {
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
pub(crate) async fn owners_hold_their_keys(
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
