//! The cluster under test: five `ClusterNode`s (N=3, R=W=2, sloppy quorum) on in-memory disks,
//! wired the way a kv-server node is: SWIM gossip over simulated UDP feeding the live set,
//! hinted handoff, and anti-entropy, with intervals shortened so that a run settles within a few
//! simulated seconds.

use std::sync::Arc;
use std::time::Duration;

use ringkit_hashring::RingConfig;
use ringkit_kv::cluster::aae::AaeConfig;
use ringkit_kv::cluster::assemble::ClusterNodeConfig;
use ringkit_kv::cluster::channels::Connector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::hints::HandoffConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::topology::{ClusterMap, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::model::key_hash;
use tonic::transport::{Channel, Endpoint};

use super::cluster::{NodeFuture, NodeSpec, SimCluster};
use super::net::{GRPC_PORT, Incoming, connect};
use super::udp::{GOSSIP_PORT, SimUdp, gossip_addr};

/// Replicas per key.
const N: usize = 3;

/// Timings of the simulated cluster (simulated time).
#[derive(Clone, Debug)]
pub(crate) struct Replicated {
    /// Every node's host name: the bootstrap member list.
    pub(crate) names: Vec<String>,
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
    /// The bootstrap map (owners of a key, for the convergence check).
    map: Arc<ClusterMap>,
}

impl Replicated {
    /// A cluster of `names` with timings for short runs.
    pub(crate) fn new(names: Vec<String>) -> Self {
        let map = Arc::new(bootstrap(&names));
        Self {
            map,
            names,
            replica_timeout: Duration::from_millis(500),
            handoff_interval: Duration::from_millis(250),
            handoff_backoff_max: Duration::from_secs(2),
            aae_interval: Duration::from_millis(500),
            tombstone_grace: Duration::from_secs(2),
        }
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

/// One node's software, assembled exactly as kv-server assembles a cluster node
/// (`ClusterNode::start`: coordinator, gossip, hinted handoff, anti-entropy, topology); returns
/// only if it fails to start or serve.
async fn run_node(cluster: Replicated, spec: NodeSpec) -> Result<(), KvError> {
    // Gossip addresses are IPs on turmoil's network, known inside a simulated host.
    let members: Vec<Member> = members(&cluster.names)
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
    let mut gossip = node.default_gossip()?;
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
        spec.disk,
        Arc::new(spec.clock),
        connector,
        Some(socket),
    )?;
    started
        .serve(Incoming::bind(GRPC_PORT).await?, std::future::pending())
        .await
}

impl SimCluster for Replicated {
    fn describe(&self) -> String {
        format!(
            "{} complete ClusterNodes (gossip, hinted handoff, anti-entropy), N={N} R=W=2 sloppy",
            self.names.len()
        )
    }

    fn node(&self, spec: NodeSpec) -> NodeFuture {
        let cluster = self.clone();
        Box::pin(async move {
            run_node(cluster, spec).await?;
            Ok(())
        })
    }

    fn route(&self, _key: &str, draw: usize, names: &[String]) -> String {
        names[draw % names.len()].clone()
    }

    fn owners(&self, key: &[u8], _names: &[String]) -> Vec<String> {
        self.map
            .replica_set(key_hash(key), N)
            .read
            .iter()
            .map(|id| id.as_str().to_owned())
            .collect()
    }
}
