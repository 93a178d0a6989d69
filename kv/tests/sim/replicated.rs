//! The cluster under test: five `ClusterNode`s (N=3, R=W=2, sloppy quorum) on in-memory disks,
//! wired the way a kv-server node is: SWIM gossip over simulated UDP feeding the live set,
//! hinted handoff, anti-entropy and the map authority with its partition transfers, with
//! intervals shortened so that a run settles within a few simulated seconds.
//!
//! A cluster may also change its ring during the run, under the same partitions, loss and
//! crashes as the client writes: *joiners* come up outside the ring at a seeded time and join
//! it through a founder, retrying as `kv-server --join` does; *leavers* are founders that ask to
//! leave at a seeded time and hand their partitions off; *lost* founders stop for good at a
//! seeded time and an operator on another founder `remove`s them, so their partitions are
//! rebuilt from the surviving replicas. The run is judged on the final ring.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::cluster::aae::{AaeConfig, TrackedStorage};
use ringkit_kv::cluster::admin::{RingChange, Topology};
use ringkit_kv::cluster::assemble::ClusterNodeConfig;
use ringkit_kv::cluster::channels::Connector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::hints::HandoffConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::topology::{ClusterMap, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::model::key_hash;
use ringkit_kv::storage::{MemStorage, StorageExt};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

use super::cluster::{NodeFuture, NodeSpec, SimCluster};
use super::net::{GRPC_PORT, Incoming, connect};
use super::udp::{GOSSIP_PORT, SimUdp, gossip_addr};

/// Replicas per key.
const N: usize = 3;

/// Earliest simulated time of a ring change (a joiner coming up, a leaver asking to leave);
/// each adds a seeded delay of up to [`CHANGE_SPREAD_MS`], so changes land in the middle of
/// the faults (which run until 3 s).
const CHANGE_FROM_MS: u64 = 300;

/// Spread of the ring changes' start times.
const CHANGE_SPREAD_MS: u64 = 2_000;

/// How long a node waits before asking again after a refused or failed join or leave.
const CHANGE_RETRY: Duration = Duration::from_millis(500);

/// How long one `leave` call waits for the hand-off before it is asked again.
const LEAVE_PATIENCE: Duration = Duration::from_secs(5);

/// The seeded moment of a node's ring change.
fn change_at(spec: &NodeSpec) -> Duration {
    Duration::from_millis(CHANGE_FROM_MS + spec.seed % CHANGE_SPREAD_MS)
}

/// Timings of the simulated cluster (simulated time).
#[derive(Clone, Debug)]
pub(crate) struct Replicated {
    /// The founders' host names: the bootstrap member list.
    pub(crate) names: Vec<String>,
    /// Nodes that start outside the ring and join it during the run.
    pub(crate) joiners: Vec<String>,
    /// Founders that leave the ring during the run.
    pub(crate) leavers: Vec<String>,
    /// Founders that stop for good during the run and are removed from the ring.
    pub(crate) lost: Vec<String>,
    /// Per-replica RPC timeout of the coordinator.
    pub(crate) replica_timeout: Duration,
    /// How often handoff looks at its backlog.
    pub(crate) handoff_interval: Duration,
    /// Longest handoff backoff after failures.
    pub(crate) handoff_backoff_max: Duration,
    /// Anti-entropy pair interval: each peer is swept about this often.
    pub(crate) aae_interval: Duration,
    /// Age after which anti-entropy reaps a tombstone every replica holds.
    pub(crate) tombstone_grace: Duration,
    /// The founders' bootstrap map: the ring until a node has started.
    map: Arc<ClusterMap>,
    /// Each node's view of the cluster map in this run (its latest incarnation's), by name:
    /// the newest of them is the ring the run is judged by.
    maps: Rc<RefCell<BTreeMap<String, watch::Receiver<Arc<ClusterMap>>>>>,
    /// This run's directory of the nodes' saved cluster maps (`TopologyConfig::state_file`,
    /// as kv-server sets it): like the in-memory disks, a node's file outlives its crashes.
    state_dir: Rc<RefCell<Option<tempfile::TempDir>>>,
}

impl Replicated {
    /// A cluster founded by `names`, with timings for short runs.
    pub(crate) fn new(names: Vec<String>) -> Self {
        let map = Arc::new(bootstrap(&names));
        Self {
            map,
            maps: Rc::default(),
            state_dir: Rc::default(),
            names,
            joiners: Vec::new(),
            leavers: Vec::new(),
            lost: Vec::new(),
            replica_timeout: Duration::from_millis(500),
            handoff_interval: Duration::from_millis(250),
            handoff_backoff_max: Duration::from_secs(2),
            aae_interval: Duration::from_millis(500),
            tombstone_grace: Duration::from_secs(2),
        }
    }

    /// This cluster, with `joiners` joining it during the run.
    pub(crate) fn joined_by(mut self, joiners: Vec<String>) -> Self {
        self.joiners = joiners;
        self
    }

    /// This cluster, with the founders `leavers` leaving it during the run.
    pub(crate) fn left_by(mut self, leavers: Vec<String>) -> Self {
        self.leavers = leavers;
        self
    }

    /// This cluster, with the founders `lost` stopping for good during the run and being
    /// removed by an operator.
    pub(crate) fn losing(mut self, lost: Vec<String>) -> Self {
        self.lost = lost;
        self
    }

    /// The founder whose host also runs the operator that removes lost nodes: the last one
    /// that is not lost itself (not the claimant, so its requests are forwarded).
    fn operator(&self) -> Option<&String> {
        self.names.iter().rev().find(|n| !self.lost.contains(n))
    }

    /// The newest map of this cluster any node of the run has installed (the bootstrap map
    /// before any node started). A joiner's own one-node ring, before it has joined, is not a
    /// map of this cluster (no founder is on it), whatever its epoch.
    fn latest(&self) -> Arc<ClusterMap> {
        let founders: Vec<NodeId> = self
            .names
            .iter()
            .map(|n| NodeId::from(n.as_str()))
            .collect();
        self.maps
            .borrow()
            .values()
            .map(|rx| Arc::clone(&rx.borrow()))
            .filter(|map| founders.iter().any(|f| map.ring().node(f).is_some()))
            .max_by_key(|map| map.epoch())
            .unwrap_or_else(|| Arc::clone(&self.map))
    }
}

/// The members named `names`, with their simulated addresses.
fn members(names: &[String]) -> Vec<Member> {
    names
        .iter()
        .map(|n| {
            let mut m = Member::new(n.as_str(), format!("{n}:{GRPC_PORT}"));
            m.gossip_addr = Some(format!("{n}:{GOSSIP_PORT}"));
            m
        })
        .collect()
}

/// The ring of the simulated cluster: the 512 partitions a real 5-node cluster gets
/// (`RingConfig::for_cluster_size(5)`), so anti-entropy and transfers run at production scale.
fn ring() -> RingConfig {
    RingConfig::for_cluster_size(5).with_replicas(N)
}

/// The bootstrap map every node builds (the same on all of them).
///
/// # Panics
/// If the member list is invalid (a test bug).
fn bootstrap(names: &[String]) -> ClusterMap {
    let first = names.first().cloned().unwrap_or_default();
    let mut config = ClusterConfig::new(first.as_str(), members(names));
    config.ring = Some(ring());
    config
        .bootstrap_map()
        .unwrap_or_else(|e| panic!("simulated cluster config: {e}"))
}

/// A lazily connecting channel to `addr` over the simulated network (the `Connector` seam).
fn sim_channel(addr: &str) -> Result<Channel, KvError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| KvError::Config(format!("simulated peer address {addr:?}: {e}")))?
        // The production connector's settings (`TcpConnector`): a connection black-holed by a
        // partition is found dead by HTTP/2 keep-alive and replaced.
        .connect_timeout(Duration::from_secs(1))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(connect)))
}

/// Starts one node's software, assembled exactly as kv-server assembles a cluster node
/// (`ClusterNode::start`: coordinator, gossip, hinted handoff, anti-entropy, the map authority
/// and partition transfers), with `members` as its bootstrap list and gossip seeded with them
/// and `seeds`; registers its map with the run.
async fn start(
    cluster: &Replicated,
    spec: &NodeSpec,
    members: &[String],
    seeds: &[String],
) -> Result<ClusterNode<TrackedStorage<MemStorage>>, KvError> {
    // Gossip addresses are IPs on turmoil's network, known inside a simulated host.
    let members: Vec<Member> = self::members(members)
        .into_iter()
        .map(|mut m| {
            m.gossip_addr = Some(gossip_addr(m.id.as_str()).to_string());
            m
        })
        .collect();
    let mut config = ClusterConfig::new(spec.name.as_str(), members);
    config.ring = Some(ring());
    config.coordinator.replica_timeout = cluster.replica_timeout;
    let mut node = ClusterNodeConfig::new(config);
    node.topology.state_file = cluster
        .state_dir
        .borrow()
        .as_ref()
        .map(|dir| dir.path().join(format!("{}.cluster-map.json", spec.name)));
    let mut gossip = node.default_gossip()?;
    gossip.seeds.extend(seeds.iter().map(|s| gossip_addr(s)));
    gossip.advertise = Some(gossip_addr(&spec.name));
    // Every life has a larger incarnation than the last: simulated wall-clock milliseconds.
    gossip.incarnation = turmoil::since_epoch().map_or(1, |d| d.as_millis() as u64);
    gossip.rng_seed = spec.seed;
    node.gossip = Some(gossip);
    node.handoff = HandoffConfig {
        interval: cluster.handoff_interval,
        backoff_max: cluster.handoff_backoff_max,
        ..HandoffConfig::default()
    };
    node.aae = AaeConfig {
        pair_interval: cluster.aae_interval,
        tombstone_grace: Some(cluster.tombstone_grace),
        reap_scan_every: cluster.tombstone_grace,
        min_tick: Duration::from_millis(5),
        ..AaeConfig::default()
    };
    let connector: Arc<dyn Connector> = Arc::new(sim_channel);
    let socket = SimUdp::bind(GOSSIP_PORT).await?;
    let started = ClusterNode::start(
        node,
        spec.disk.clone(),
        Arc::new(spec.clock.clone()),
        connector,
        Some(socket),
    )?;
    cluster
        .maps
        .borrow_mut()
        .insert(spec.name.clone(), started.map_sender().subscribe());
    Ok(started)
}

/// A founder: starts on the bootstrap ring and serves; returns only if it fails to start or
/// serve. The operator's founder also removes the lost nodes (see [`remove_lost`]).
async fn run_node(cluster: Replicated, spec: NodeSpec) -> Result<(), KvError> {
    let started = start(&cluster, &spec, &cluster.names, &[]).await?;
    let operator = cluster.operator() == Some(&spec.name) && !cluster.lost.is_empty();
    let topology = started_topology(&started)?;
    let serve = started.serve(Incoming::bind(GRPC_PORT).await?, std::future::pending());
    if !operator {
        return serve.await;
    }
    let (served, ()) = tokio::join!(serve, remove_lost(topology, cluster.lost.clone()));
    served
}

/// The map authority of a started node.
fn started_topology(
    started: &ClusterNode<TrackedStorage<MemStorage>>,
) -> Result<Topology, KvError> {
    started
        .topology()
        .cloned()
        .ok_or_else(|| KvError::Internal("a started cluster node has a topology".into()))
}

/// The operator: from [`CHANGE_FROM_MS`] on, asks every [`CHANGE_RETRY`] to `remove` each lost
/// node still on the map, as `ringctl kv admin remove` would be run again and again. Until a
/// lost node has stopped and gossip reports it down, the claimant refuses (a live node must
/// leave); a restarted operator starts over, and a node already removed is skipped.
async fn remove_lost(topology: Topology, lost: Vec<String>) {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(CHANGE_FROM_MS).saturating_sub(now)).await;
    loop {
        let map = topology.map();
        let Some(id) = lost
            .iter()
            .map(|n| NodeId::from(n.as_str()))
            .find(|id| map.member(id).is_some())
        else {
            return;
        };
        match topology.submit(RingChange::Remove(id.clone()), false).await {
            Ok((map, _)) => tracing::info!(epoch = map.epoch(), "removed {id}"),
            Err(e) => tracing::debug!(error = %e, "remove of {id} refused; asking again"),
        }
        tokio::time::sleep(CHANGE_RETRY).await;
    }
}

/// A lost node: a founder that serves until its seeded time, then stops for good: its store
/// closes and its gossip and background tasks end, so its peers soon find it down (connections
/// still open when its drain grace ran out are abandoned, and answer with errors until they
/// close). A restart after that time, from the fault schedule's heal, does not bring it back;
/// one before it (the node crashed earlier) serves again until the same time.
async fn run_lost(cluster: Replicated, spec: NodeSpec) -> Result<(), KvError> {
    let end = change_at(&spec);
    if turmoil::sim_elapsed().unwrap_or_default() < end {
        let started = start(&cluster, &spec, &cluster.names, &[]).await?;
        let stop = async move {
            let now = turmoil::sim_elapsed().unwrap_or_default();
            tokio::time::sleep(end.saturating_sub(now)).await;
        };
        started
            .serve(Incoming::bind(GRPC_PORT).await?, stop)
            .await?;
        tracing::info!("stopped for good");
    }
    std::future::pending().await
}

/// A joiner: comes up at its seeded time as a ring of its own, serves (the claimant and the
/// transfers call it back), and asks the founders in turn to let it join until one does, as
/// `kv-server --join` does. A restarted joiner asks again: for a member that is already on the
/// ring the answer is the current map.
async fn run_joiner(cluster: Replicated, spec: NodeSpec) -> Result<(), KvError> {
    let now = turmoil::sim_elapsed().unwrap_or_default();
    tokio::time::sleep(change_at(&spec).saturating_sub(now)).await;
    let started = start(
        &cluster,
        &spec,
        std::slice::from_ref(&spec.name),
        &cluster.names,
    )
    .await?;
    let topology = started_topology(&started)?;
    let stored_rows = spec.disk.read(|view| view.stats()).await?.rows;
    let founders: Vec<String> = cluster
        .names
        .iter()
        .map(|n| format!("{n}:{GRPC_PORT}"))
        .collect();
    let join = async move {
        for seed in founders.iter().cycle() {
            match topology.join_through_holding(seed, stored_rows).await {
                Ok(map) => {
                    tracing::info!(epoch = map.epoch(), "joined through {seed}");
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "join through {seed} failed; retrying");
                    tokio::time::sleep(CHANGE_RETRY).await;
                }
            }
        }
    };
    let serve = started.serve(Incoming::bind(GRPC_PORT).await?, std::future::pending());
    let (served, ()) = tokio::join!(serve, join);
    served
}

/// A leaver: a founder that, at its seeded time, asks to leave (through the claimant, as
/// `ringctl kv admin leave` does) and waits for its partitions to be handed off, asking again
/// after a failure or a wait longer than [`LEAVE_PATIENCE`], until it is off the map. It keeps
/// serving afterwards, as a node does until its operator stops it. A restarted leaver asks
/// again; one that is already off the map has nothing to do.
async fn run_leaver(cluster: Replicated, spec: NodeSpec) -> Result<(), KvError> {
    let started = start(&cluster, &spec, &cluster.names, &[]).await?;
    let topology = started_topology(&started)?;
    let me = NodeId::from(spec.name.as_str());
    let at = change_at(&spec);
    let leave = async move {
        let now = turmoil::sim_elapsed().unwrap_or_default();
        tokio::time::sleep(at.saturating_sub(now)).await;
        while topology.map().member(&me).is_some() {
            match topology.leave(LEAVE_PATIENCE).await {
                Ok(()) => tracing::info!(epoch = topology.map().epoch(), "left the ring"),
                Err(e) => {
                    tracing::debug!(error = %e, "leave not done yet; asking again");
                    tokio::time::sleep(CHANGE_RETRY).await;
                }
            }
        }
    };
    let serve = started.serve(Incoming::bind(GRPC_PORT).await?, std::future::pending());
    let (served, ()) = tokio::join!(serve, leave);
    served
}

impl SimCluster for Replicated {
    fn describe(&self) -> String {
        let mut changes = String::new();
        if !self.joiners.is_empty() {
            changes += &format!(", {:?} joining under the faults", self.joiners);
        }
        if !self.leavers.is_empty() {
            changes += &format!(", {:?} leaving under the faults", self.leavers);
        }
        if !self.lost.is_empty() {
            changes += &format!(", {:?} lost and removed under the faults", self.lost);
        }
        format!(
            "{} complete ClusterNodes (gossip, hinted handoff, anti-entropy){changes}, N={N} R=W=2 sloppy",
            self.names.len()
        )
    }

    fn node(&self, spec: NodeSpec) -> NodeFuture {
        let cluster = self.clone();
        Box::pin(async move {
            if cluster.joiners.contains(&spec.name) {
                run_joiner(cluster, spec).await?;
            } else if cluster.leavers.contains(&spec.name) {
                run_leaver(cluster, spec).await?;
            } else if cluster.lost.contains(&spec.name) {
                run_lost(cluster, spec).await?;
            } else {
                run_node(cluster, spec).await?;
            }
            Ok(())
        })
    }

    fn route(&self, _key: &str, draw: usize, names: &[String]) -> String {
        names[draw % names.len()].clone()
    }

    fn owners(&self, key: &[u8], _names: &[String]) -> Vec<String> {
        self.latest()
            .replica_set(key_hash(key), N)
            .read
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect()
    }

    fn begin_run(&self) {
        self.maps.borrow_mut().clear();
        let dir = tempfile::tempdir()
            .unwrap_or_else(|e| panic!("a directory for the simulated nodes' maps: {e}"));
        *self.state_dir.borrow_mut() = Some(dir);
    }

    fn ring_settled(&self) -> Result<(), String> {
        let map = self.latest();
        let epoch = map.epoch();
        let outside: Vec<&String> = self
            .joiners
            .iter()
            .filter(|j| map.ring().node(&NodeId::from(j.as_str())).is_none())
            .collect();
        if !outside.is_empty() {
            return Err(format!("{outside:?} not on the ring at epoch {epoch}"));
        }
        let staying: Vec<&String> = self
            .leavers
            .iter()
            .chain(&self.lost)
            .filter(|l| map.member(&NodeId::from(l.as_str())).is_some())
            .collect();
        if !staying.is_empty() {
            return Err(format!("{staying:?} still members at epoch {epoch}"));
        }
        let pending: usize = map.pending().values().map(Vec::len).sum();
        if pending > 0 {
            return Err(format!(
                "{pending} partition transfers still pending at epoch {epoch}"
            ));
        }
        // Nodes that have left need not follow the ring any more.
        let behind: Vec<String> = self
            .maps
            .borrow()
            .iter()
            .filter(|(name, _)| map.member(&NodeId::from(name.as_str())).is_some())
            .filter(|(_, rx)| rx.borrow().epoch() < epoch)
            .map(|(name, _)| name.clone())
            .collect();
        if !behind.is_empty() {
            return Err(format!(
                "{behind:?} still on a ring older than epoch {epoch}"
            ));
        }
        Ok(())
    }
}
