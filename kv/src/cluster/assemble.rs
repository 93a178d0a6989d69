//! [`ClusterNode::start`]: the one call that assembles a complete cluster node (store with
//! anti-entropy tracking, node, coordinator, gossip feeding the live set, hinted handoff,
//! anti-entropy, the map authority with its admin service, partition transfers), used by
//! `kv-server` and by the turmoil simulation alike, so the simulation tests what ships.

use std::net::SocketAddr;
use std::sync::Arc;

use ringkit_hashring::NodeId;

use super::aae::{self, Aae, AaeConfig, AaeTrees, GrpcAaePeers, TrackedStorage};
use super::admin::{KvAdminService, Topology, TopologyConfig, convert};
use super::channels::Connector;
use super::config::ClusterConfig;
use super::gossip::{self, DatagramSocket, GossipConfig};
use super::hints::{HandoffConfig, spawn_handoff};
use super::node::ClusterNode;
use super::transfer::{self, TransferConfig};
use crate::clock::Clock;
use crate::error::KvError;
use crate::node::{KvNode, NodeConfig};
use crate::storage::Storage;

/// Everything a complete cluster node is configured with, besides its store and sockets.
#[derive(Clone, Debug)]
pub struct ClusterNodeConfig {
    /// The local node: limits, admission, maintenance (its `tombstone_grace` must be `None`).
    pub node: NodeConfig,
    /// Identity, members, ring, coordination.
    pub cluster: ClusterConfig,
    /// Gossip settings; `None` derives them from `cluster` with
    /// [`default_gossip`](Self::default_gossip).
    pub gossip: Option<GossipConfig>,
    /// Hinted handoff timings.
    pub handoff: HandoffConfig,
    /// Anti-entropy: exchange interval, IO budget, tree shape, tombstone reaping. Its `n` is
    /// set to the node's default N at start.
    pub aae: AaeConfig,
    /// Map authority: ring announcements and admin RPC timeouts.
    pub topology: TopologyConfig,
    /// Partition transfers after join, leave and remove.
    pub transfer: TransferConfig,
}

impl ClusterNodeConfig {
    /// Defaults around `cluster`; the node config takes the cluster's node id and never reaps
    /// tombstones on its own (anti-entropy does, once every replica has them).
    pub fn new(cluster: ClusterConfig) -> Self {
        let mut node = NodeConfig::new(cluster.node_id.as_str());
        node.maintenance.tombstone_grace = None;
        Self {
            node,
            cluster,
            gossip: None,
            handoff: HandoffConfig::default(),
            aae: AaeConfig::default(),
            topology: TopologyConfig::default(),
            transfer: TransferConfig::default(),
        }
    }

    /// Gossip settings derived from the member list: this node's gRPC address, the other
    /// members' gossip addresses as seeds, every member assumed live until gossip connects.
    ///
    /// # Errors
    /// [`KvError::Config`] when this node is not a member or a gossip address does not parse.
    pub fn default_gossip(&self) -> Result<GossipConfig, KvError> {
        let me = &self.cluster.node_id;
        let Some(local) = self.cluster.members.iter().find(|m| m.id == *me) else {
            return Err(KvError::Config(format!(
                "cluster node_id {:?} is not in the members list",
                me.as_str()
            )));
        };
        let mut seeds = Vec::new();
        for m in self.cluster.members.iter().filter(|m| m.id != *me) {
            if let Some(addr) = &m.gossip_addr {
                let parsed: SocketAddr = addr.parse().map_err(|e| {
                    KvError::Config(format!("gossip address {addr:?} of member {}: {e}", m.id))
                })?;
                seeds.push(parsed);
            }
        }
        let mut config = GossipConfig::new(me.clone(), local.grpc_addr.clone(), seeds);
        config.assume_live = self
            .cluster
            .members
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<NodeId>>();
        Ok(config)
    }
}

impl<S: Storage> ClusterNode<TrackedStorage<S>> {
    /// Builds and starts a complete cluster node over `storage` (wrapped so that every write
    /// keeps the anti-entropy trees current): the node, the coordinator, gossip on
    /// `gossip_socket` (its live set drives every request; without a socket every member counts
    /// as live), hinted handoff, anti-entropy, the map authority (ring changes, admin service)
    /// and partition transfers. Serve it with [`serve`](Self::serve), which also stops all of
    /// it. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`KvError::Config`] for invalid settings; gossip socket errors; storage errors while
    /// building the anti-entropy trees.
    pub fn start<D: DatagramSocket>(
        config: ClusterNodeConfig,
        storage: S,
        clock: Arc<dyn Clock>,
        connector: Arc<dyn Connector>,
        gossip_socket: Option<D>,
    ) -> Result<Self, KvError> {
        let gossip_config = match (&gossip_socket, config.gossip.clone()) {
            (None, _) => None,
            (Some(_), Some(g)) => Some(g),
            (Some(_), None) => Some(config.default_gossip()?),
        };
        let mut aae_config = config.aae.clone();
        aae_config.n = config.node.quorum.n as usize;
        let trees = Arc::new(AaeTrees::new(aae_config.shape)?);
        let node = KvNode::new(TrackedStorage::new(storage, trees), config.node, clock)?;
        let id = config.cluster.node_id.clone();
        let mut cluster = ClusterNode::new(node.clone(), config.cluster, connector)?;
        let local = cluster
            .coordinator()
            .map()
            .member(&id)
            .cloned()
            .ok_or_else(|| KvError::Config(format!("node {id} is not in its own map")))?;

        let handoff = spawn_handoff(
            node.clone(),
            cluster.peers(),
            cluster.map_sender().subscribe(),
            cluster.live_sender().subscribe(),
            config.handoff,
        )?;
        let stop = cluster.shutdown_signal();
        cluster.add_task(tokio::spawn(async move {
            stop.await;
            handoff.shutdown().await;
        }));

        let gossip = match (gossip_socket, gossip_config) {
            (Some(socket), Some(g)) => Some(Arc::new(gossip::spawn(g, socket)?)),
            _ => None,
        };
        if let Some(handle) = &gossip {
            forward_live(&mut cluster, Arc::clone(handle));
        }

        let topology = Topology::new(
            local,
            cluster.map_sender().clone(),
            cluster.live_sender().subscribe(),
            cluster.channels().clone(),
            gossip,
            config.topology,
        );
        cluster.add_task(topology.spawn_sync(cluster.shutdown_signal()));
        cluster.add_task(transfer::spawn(
            topology.clone(),
            Arc::new(node.clone()),
            cluster.peers(),
            config.transfer,
            cluster.shutdown_signal(),
        ));
        let rpc_timeout = aae_config.rpc_timeout;
        let anti_entropy = Aae::new(
            id,
            node.clone(),
            aae_config,
            cluster.map_sender().subscribe(),
            cluster.live_sender().subscribe(),
        )?;
        let hints_of = node.clone();
        let status_of = anti_entropy.clone();
        let admin = KvAdminService::new(topology.clone())
            .with_handoffs(Arc::new(move || {
                let n = hints_of.clone();
                Box::pin(async move { super::hints::pending_hints(&n).await })
            }))
            .with_aae(Arc::new(move || Some(convert::aae(&status_of.status()))));
        cluster.routes_mut().add_service(admin.into_server());
        cluster
            .routes_mut()
            .add_service(aae::service(anti_entropy.clone()));
        let aae_peers = Arc::new(GrpcAaePeers::new(cluster.channels().clone(), rpc_timeout));
        cluster.add_task(aae::spawn(
            anti_entropy,
            aae_peers,
            cluster.peers(),
            cluster.shutdown_signal(),
        ));
        cluster.set_topology(topology);
        Ok(cluster)
    }
}

/// Copies gossip's live set into the node's until the node stops, then says goodbye.
fn forward_live<S: Storage>(cluster: &mut ClusterNode<S>, handle: Arc<gossip::GossipHandle>) {
    let feed = handle.feed_live(cluster.live_sender().clone(), cluster.shutdown_signal());
    cluster.add_task(tokio::spawn(async move {
        if feed.await.is_err() {
            tracing::error!("the live-set feed task panicked");
        }
        // A clean stop says goodbye, so peers stop sending at once instead of after failure
        // detection; the ring is untouched (leaving the ring is `leave`).
        handle.leave().await;
    }));
}
