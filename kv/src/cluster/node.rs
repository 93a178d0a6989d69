//! [`ClusterNode`]: one kv node as a member of a cluster. It wires the local [`KvNode`], the
//! cluster map and live set, the channels to peers, the [`Coordinator`], and serves the client
//! API (coordinated) and the internal `Replica` service on the connections the caller provides.
//!
//! Other parts of the cluster (gossip, hinted handoff, anti-entropy, admin) plug in before
//! `serve`: extra gRPC services through [`ClusterNode::routes_mut`], background tasks through
//! [`ClusterNode::shutdown_signal`] and [`ClusterNode::add_task`]; `serve` stops them and waits
//! for them before closing the store.

use std::future::Future;
use std::sync::Arc;

use ringkit_hashring::NodeId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tonic::service::RoutesBuilder;
use tonic::transport::server::{Connected, TcpIncoming};

use super::admin::Topology;
use super::batching::BatchingPeers;
use super::channels::{Channels, Connector};
use super::config::ClusterConfig;
use super::coordinator::Coordinator;
use super::kv_service::ClusterKvService;
use super::pb::replica_server::ReplicaServer;
use super::peers::{GrpcPeers, ReplicaPeers};
use super::replica_service::ReplicaService;
use super::topology::{ClusterMap, LiveSet};
use crate::error::KvError;
use crate::grpc::pb::kv_server::KvServer;
use crate::grpc::server::{drain_deadline, message_limit, server_builder, until_drained};
use crate::node::KvNode;
use crate::storage::Storage;

/// Most objects in one replication RPC to a peer.
const REPLICATION_BATCH: usize = 256;
/// Replication RPCs in flight to one peer at once.
const REPLICATION_PIPELINE: usize = 4;

/// A kv node in cluster mode: build it with [`new`](Self::new), plug in extra services and
/// tasks, then [`serve`](Self::serve) it.
pub struct ClusterNode<S> {
    /// The local replica.
    node: KvNode<S>,
    /// This node's id.
    id: NodeId,
    /// Publishes the cluster map (ring changes come from TOPOLOGY's join/leave/remove).
    map: watch::Sender<Arc<ClusterMap>>,
    /// Publishes the live set (gossip updates it; every member until then).
    live: watch::Sender<LiveSet>,
    /// Channels to members.
    channels: Channels,
    /// Object transfer to other replicas over gRPC.
    peers: Arc<GrpcPeers>,
    /// Coordinates client requests.
    coordinator: Coordinator<S>,
    /// Extra gRPC services to serve alongside ours.
    routes: RoutesBuilder,
    /// Background tasks to wait for at shutdown.
    tasks: Vec<JoinHandle<()>>,
    /// Flipped to true when the node stops; tasks watch it.
    stop: watch::Sender<bool>,
    /// The map authority, when [`ClusterNode::start`] runs one (join, leave, remove).
    topology: Option<Topology>,
}

impl<S> std::fmt::Debug for ClusterNode<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<S: Storage> ClusterNode<S> {
    /// Builds the node: the bootstrap map from `config`, every member live until gossip says
    /// otherwise, channels built by `connector`.
    ///
    /// # Errors
    /// [`KvError::Config`] for an invalid `config`, or when `node` would reap tombstones on its
    /// own (`maintenance.tombstone_grace` must be `None` in a cluster: a replica that drops a
    /// tombstone alone lets a stale replica resurrect the deleted value; anti-entropy reaps
    /// tombstones once every replica has them).
    pub fn new(
        node: KvNode<S>,
        config: ClusterConfig,
        connector: Arc<dyn Connector>,
    ) -> Result<Self, KvError> {
        if node.config().maintenance.tombstone_grace.is_some() {
            return Err(KvError::Config(
                "maintenance.tombstone_grace must be None in cluster mode (anti-entropy reaps \
                 tombstones once every replica has them)"
                    .into(),
            ));
        }
        let map = config.bootstrap_map()?;
        let everyone: LiveSet = Arc::new(map.members().map(|m| m.id.clone()).collect());
        let (map_tx, map_rx) = watch::channel(Arc::new(map));
        let (live_tx, live_rx) = watch::channel(everyone);
        let channels = Channels::new(connector, map_rx.clone());
        let peers = Arc::new(GrpcPeers::new(
            channels.clone(),
            config.node_id.clone(),
            config.coordinator.replica_timeout,
        ));
        // Client writes and reads replicate one key at a time; batching coalesces the
        // concurrent ones per peer into one RPC each.
        let batching = Arc::new(BatchingPeers::new(
            Arc::clone(&peers) as Arc<dyn ReplicaPeers>,
            REPLICATION_BATCH,
            REPLICATION_PIPELINE,
        ));
        let coordinator = Coordinator::new(
            node.clone(),
            config.node_id.clone(),
            map_rx,
            live_rx,
            batching,
            config.coordinator.clone(),
        )?;
        Ok(Self {
            node,
            id: config.node_id,
            map: map_tx,
            live: live_tx,
            channels,
            peers,
            coordinator,
            routes: RoutesBuilder::default(),
            tasks: Vec::new(),
            stop: watch::channel(false).0,
            topology: None,
        })
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    /// The local replica.
    pub fn node(&self) -> &KvNode<S> {
        &self.node
    }

    /// The coordinator (what the client API calls).
    pub fn coordinator(&self) -> &Coordinator<S> {
        &self.coordinator
    }

    /// Channels to members (for other internal clients).
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// Object transfer to other replicas, one call per call (no coalescing): what hinted
    /// handoff, anti-entropy and partition transfer use, since they batch themselves.
    pub fn peers(&self) -> Arc<dyn ReplicaPeers> {
        Arc::clone(&self.peers) as Arc<dyn ReplicaPeers>
    }

    /// Publishes cluster maps: a newer map replaces the current one for every request.
    pub fn map_sender(&self) -> &watch::Sender<Arc<ClusterMap>> {
        &self.map
    }

    /// Publishes live sets (gossip's view of who is up).
    pub fn live_sender(&self) -> &watch::Sender<LiveSet> {
        &self.live
    }

    /// The map authority (join through a seed, leave), when the node runs one.
    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref()
    }

    /// Records the map authority that [`ClusterNode::start`] built.
    pub(super) fn set_topology(&mut self, topology: Topology) {
        self.topology = Some(topology);
    }

    /// Extra gRPC services to serve on the same connections (anti-entropy, admin).
    pub fn routes_mut(&mut self) -> &mut RoutesBuilder {
        &mut self.routes
    }

    /// A future that completes when the node starts stopping: give it to background tasks.
    pub fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }

    /// A background task `serve` waits for after signalling shutdown (it must end soon after
    /// [`shutdown_signal`](Self::shutdown_signal) completes).
    pub fn add_task(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Serves the client API (coordinated), the `Replica` service, health, reflection and any
    /// added services on `incoming` until `shutdown` completes and the clients have gone (or
    /// [`DRAIN_GRACE`](crate::grpc::DRAIN_GRACE) has passed); then stops background tasks, waits
    /// for them, and closes the store (queued writes are committed and synced).
    ///
    /// # Errors
    /// Transport failures; the store is closed in every case.
    pub async fn serve<I, IO, IE, F>(self, incoming: I, shutdown: F) -> Result<(), KvError>
    where
        I: Stream<Item = Result<IO, IE>>,
        IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
        IE: Into<Box<dyn std::error::Error + Send + Sync>>,
        F: Future<Output = ()>,
    {
        let limit = message_limit(&self.node);
        let kv = KvServer::new(ClusterKvService::new(
            self.coordinator.clone(),
            self.channels.clone(),
        ))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
        let replica = ReplicaServer::new(ReplicaService::new(self.coordinator.clone()))
            .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(super::MAX_MESSAGE_BYTES);
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_serving::<KvServer<ClusterKvService<S>>>()
            .await;
        reporter
            .set_serving::<ReplicaServer<ReplicaService<S>>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(super::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| KvError::Internal(format!("reflection descriptors: {e}")))?;

        let Self {
            node,
            id,
            mut routes,
            mut tasks,
            stop,
            coordinator,
            ..
        } = self;
        let maintenance = {
            let node = node.clone();
            let mut rx = stop.subscribe();
            tokio::spawn(async move {
                node.run_maintenance(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            })
        };
        tasks.push(maintenance);
        routes
            .add_service(health)
            .add_service(reflection)
            .add_service(kv)
            .add_service(replica);

        tracing::info!(node_id = %id, actor = %node.storage().actor(), "kv cluster node serving");
        let (signal, deadline) = drain_deadline(async {
            shutdown.await;
            reporter
                .set_not_serving::<KvServer<ClusterKvService<S>>>()
                .await;
        });
        let served = until_drained(
            server_builder()
                .add_routes(routes.routes())
                .serve_with_incoming_shutdown(incoming, signal),
            deadline,
        )
        .await;
        // Finish the fan-outs of answered requests (bounded by replica timeouts) while the
        // store is still open, so their hints are kept; then stop the background tasks.
        coordinator
            .drain(coordinator.config().replica_timeout * 4)
            .await;
        let _ = stop.send(true);
        for t in tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "a cluster background task failed");
            }
        }
        node.close().await;
        tracing::info!(node_id = %id, "kv cluster node stopped; writer drained");
        served.map_err(KvError::from)
    }

    /// [`serve`](Self::serve) on a bound TCP listener, with `TCP_NODELAY` on every connection.
    ///
    /// # Errors
    /// As [`serve`](Self::serve).
    pub async fn serve_listener<F>(
        self,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> Result<(), KvError>
    where
        F: Future<Output = ()>,
    {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        self.serve(incoming, shutdown).await
    }
}
