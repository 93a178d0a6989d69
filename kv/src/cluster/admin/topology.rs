//! [`Topology`]: this node's authority over the cluster map: applies ring changes when it is the
//! decider, forwards them otherwise, installs newer maps and spreads their epoch by gossip.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ringkit_hashring::membership::RingAnnouncement;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tonic::Request;

use super::claim::{Applied, RingChange, apply, decider};
use super::convert::{map_from_message, map_to_message};
use super::persist::{self, MapFile};
use crate::cluster::channels::Channels;
use crate::cluster::gossip::GossipHandle;
use crate::cluster::pb;
use crate::cluster::pb::kv_admin_client::KvAdminClient;
use crate::cluster::topology::{ClusterMap, LiveSet, Member};
use crate::error::KvError;

/// Settings of the map authority.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    /// Every node re-announces its map's epoch this often, so members that missed a change
    /// (down, partitioned) still learn of it.
    pub announce_every: Duration,
    /// Deadline of one admin call to another node (forwarding, pulling a map).
    pub rpc_timeout: Duration,
    /// Where the map is saved after every change and read back at start (a file in the data
    /// directory). `None` keeps it in memory only, and a restart starts from the bootstrap
    /// map. That is safe only without ring changes: a claimant restarted without its file
    /// forgets the epochs it decided (ADR 0440, "Ring versions").
    pub state_file: Option<PathBuf>,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            announce_every: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(5),
            state_file: None,
        }
    }
}

/// The map authority of one node. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Topology {
    /// Shared by every clone (the service, the sync task, the transfer task).
    inner: Arc<Inner>,
}

/// The state behind a [`Topology`].
struct Inner {
    /// This node's entry (id and addresses), as it announces itself.
    local: Member,
    /// The node's map channel: what every request reads; only `install` sends on it.
    map: watch::Sender<Arc<ClusterMap>>,
    /// Gossip's view of who is up: `remove` and the dead-claimant rule read it.
    live: watch::Receiver<LiveSet>,
    /// Connections to members (forwarding to the claimant, pulling maps).
    channels: Channels,
    /// Spreads epochs and introduces this node to new members; `None` in gossip-less setups.
    gossip: Option<Arc<GossipHandle>>,
    /// Timings and the state file.
    config: TopologyConfig,
    /// Serialises decisions: one change at a time on top of the current map.
    deciding: Mutex<()>,
    /// Set once a map was pulled from a peer (or there is no gossip to wait for); see
    /// [`Topology::synced`] for the other ways to be in step.
    synced: AtomicBool,
    /// The saved copy of the map, when configured.
    file: Option<Arc<MapFile>>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("local", &self.inner.local.id)
            .field("epoch", &self.map().epoch())
            .finish_non_exhaustive()
    }
}

impl Topology {
    /// The authority for `local`, publishing maps on `map` (the node's watch), reading liveness
    /// from `live`, reaching other nodes through `channels`, announcing through `gossip`.
    pub fn new(
        local: Member,
        map: watch::Sender<Arc<ClusterMap>>,
        live: watch::Receiver<LiveSet>,
        channels: Channels,
        gossip: Option<Arc<GossipHandle>>,
        config: TopologyConfig,
    ) -> Self {
        let no_gossip = gossip.is_none();
        let file = config.state_file.clone().map(|p| Arc::new(MapFile::new(p)));
        if let Some(f) = &file {
            // A saved map newer than the bootstrap one is where this node left off.
            match persist::load(f.path()) {
                Ok(Some(saved)) => {
                    let epoch = saved.epoch();
                    if map.send_if_modified(|cur| {
                        let newer = epoch > cur.epoch();
                        if newer {
                            *cur = Arc::new(saved);
                        }
                        newer
                    }) {
                        tracing::info!(epoch, path = %f.path().display(), "restored the saved cluster map");
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "ignoring the saved cluster map"),
            }
        }
        let inner = Inner {
            local,
            map,
            live,
            channels,
            gossip,
            config,
            deciding: Mutex::new(()),
            synced: AtomicBool::new(no_gossip),
            file,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// This node's member entry.
    pub fn local(&self) -> &Member {
        &self.inner.local
    }

    /// The current map.
    pub fn map(&self) -> Arc<ClusterMap> {
        self.inner.map.borrow().clone()
    }

    /// A receiver of map changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMap>> {
        self.inner.map.subscribe()
    }

    /// Who gossip says is live now.
    pub fn live(&self) -> LiveSet {
        self.inner.live.borrow().clone()
    }

    /// The gossip runtime, when this node runs one.
    pub fn gossip(&self) -> Option<&Arc<GossipHandle>> {
        self.inner.gossip.as_ref()
    }

    /// Applies `change` here if this node decides it under its map, else forwards it once to
    /// the decider. Returns the resulting map and whether it changed.
    ///
    /// # Errors
    /// What [`apply`] refuses; [`KvError::Unavailable`] when a forwarded change reaches a node
    /// that is not the decider under its own map (maps in flux: retry) or the decider cannot
    /// be reached.
    pub async fn submit(
        &self,
        change: RingChange,
        forwarded: bool,
    ) -> Result<(Arc<ClusterMap>, bool), KvError> {
        let map = self.map();
        let who = decider(&map, &change, &self.live());
        if who == self.inner.local.id {
            return self.decide(change).await;
        }
        if forwarded {
            return Err(KvError::Unavailable(format!(
                "{} is not the claimant at epoch {} ({who} is): the maps are changing, retry",
                self.inner.local.id,
                map.epoch()
            )));
        }
        let channel = self.inner.channels.get(&who)?;
        let mut client = KvAdminClient::new(channel);
        let call = async {
            match forward_request(&change) {
                Forward::Join(r) => client.join(with_mark(r)).await,
                Forward::Leave(r) => client.leave(with_mark(r)).await,
                Forward::Remove(r) => client.remove(with_mark(r)).await,
                Forward::Complete(r) => client.complete_transfer(with_mark(r)).await,
            }
        };
        let reply = tokio::time::timeout(self.inner.config.rpc_timeout, call)
            .await
            .map_err(|_| KvError::Timeout {
                node: who.to_string(),
            })?
            .map_err(|s| KvError::Peer {
                node: who.to_string(),
                status: s.code(),
                message: s.message().to_owned(),
            })?
            .into_inner();
        let changed = reply.changed;
        let message = reply
            .map
            .ok_or_else(|| KvError::Internal(format!("{who} answered a change without a map")))?;
        let theirs = Arc::new(map_from_message(&message)?);
        self.install(Arc::clone(&theirs));
        Ok((theirs, changed))
    }

    async fn decide(&self, change: RingChange) -> Result<(Arc<ClusterMap>, bool), KvError> {
        if !self.synced() {
            return Err(KvError::Unavailable(format!(
                "{} has not yet heard the cluster's ring epoch since it started (it would decide \
                 on a map that may be stale): retry in a few seconds",
                self.inner.local.id
            )));
        }
        let _one_at_a_time = self.inner.deciding.lock().await;
        let map = self.map();
        match apply(&map, &change, &self.live())? {
            Applied::Unchanged => Ok((map, false)),
            Applied::Changed(next) => {
                tracing::info!(epoch = next.epoch(), ?change, "ring change applied");
                self.install(Arc::clone(&next));
                Ok((next, true))
            }
        }
    }

    /// Whether this node may trust its map enough to decide changes: it runs without gossip, or
    /// it is the ring's only member, or it pulled a map from a peer, or a peer has announced
    /// an epoch and none announced one newer than this node's. A node that restarted into a
    /// partition alone therefore decides nothing until it hears the cluster.
    pub fn synced(&self) -> bool {
        if self.inner.synced.load(Ordering::Acquire) {
            return true;
        }
        let map = self.map();
        let alone =
            map.ring().nodes().len() == 1 && map.ring().node(&self.inner.local.id).is_some();
        let heard = self
            .inner
            .gossip
            .as_ref()
            .is_some_and(|g| (1..=map.epoch()).contains(&g.peer_epoch()));
        alone || heard
    }

    /// Publishes `map` if it is newer than the current one, and announces it. Returns whether
    /// it was installed.
    pub fn install(&self, map: Arc<ClusterMap>) -> bool {
        let epoch = map.epoch();
        let mut strangers: Vec<std::net::SocketAddr> = Vec::new();
        let installed = self.inner.map.send_if_modified(|cur| {
            let newer = epoch > cur.epoch();
            if newer {
                // Members new to the map may not know our gossip yet (a node that joined by
                // itself, with no seeds): introduce ourselves.
                strangers = map
                    .members()
                    .filter(|m| cur.member(&m.id).is_none() && m.id != self.inner.local.id)
                    .filter_map(|m| m.gossip_addr.as_deref()?.parse().ok())
                    .collect();
                *cur = map;
            }
            newer
        });
        if installed {
            self.save();
            self.announce(epoch);
            if let (Some(gossip), false) = (&self.inner.gossip, strangers.is_empty()) {
                let gossip = Arc::clone(gossip);
                tokio::spawn(async move { gossip.contact(strangers).await });
            }
        }
        installed
    }

    /// Saves the current map (newest wins), when a state file is set, before the caller
    /// announces it or answers the change that made it. This blocks the calling thread for a
    /// file write and sync, which is acceptable because maps change only on ring changes.
    ///
    /// It must not run in the background. The claimant decides an epoch, answers, and
    /// announces it. If it then crashed before a background save finished, it would restart
    /// on an older map. The cluster would still hear the lost epoch announced from the
    /// claimant, but no node could serve it, and completed transfers would be pending again.
    /// The simulation showed what that costs when it ran its nodes without state files:
    /// seed 192 of `a_join_under_seeded_faults`, where the claimant crashed after deciding
    /// epochs 3 to 6, stayed stuck for good with 255 transfers pending.
    fn save(&self) {
        if let Some(file) = &self.inner.file
            && let Err(e) = file.save_if_newer(&self.map())
        {
            tracing::warn!(error = %e, path = %file.path().display(), "could not save the cluster map");
        }
    }

    /// Pulls the map from the node serving gRPC at `grpc_addr` and installs it if newer.
    ///
    /// # Errors
    /// Transport failures, timeouts, and a map that does not validate.
    pub async fn pull(&self, grpc_addr: &str) -> Result<bool, KvError> {
        let mut client = KvAdminClient::new(self.inner.channels.to_addr(grpc_addr)?);
        let reply = tokio::time::timeout(
            self.inner.config.rpc_timeout,
            client.get_cluster_map(pb::GetClusterMapRequest {}),
        )
        .await
        .map_err(|_| KvError::Timeout {
            node: grpc_addr.to_owned(),
        })?
        .map_err(|s| KvError::Peer {
            node: grpc_addr.to_owned(),
            status: s.code(),
            message: s.message().to_owned(),
        })?;
        let installed = self.install(Arc::new(map_from_message(reply.get_ref())?));
        self.inner.synced.store(true, Ordering::Release);
        Ok(installed)
    }

    /// Spreads the current epoch by gossip (no-op without gossip).
    pub fn announce(&self, epoch: u64) {
        if let Some(gossip) = &self.inner.gossip {
            let a = RingAnnouncement {
                epoch,
                from: self.inner.local.id.clone(),
                grpc_addr: self.inner.local.grpc_addr.clone(),
            };
            let gossip = Arc::clone(gossip);
            tokio::spawn(async move { gossip.announce_ring(a).await });
        }
    }

    /// Starts the sync task: pulls newer maps that gossip announces, re-announces ours
    /// periodically. It ends when `shutdown` completes.
    pub fn spawn_sync(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let Some(gossip) = this.inner.gossip.clone() else {
                return;
            };
            let mut heard = gossip.ring_announcements();
            let mut tick = tokio::time::interval(this.inner.config.announce_every);
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = tick.tick() => {
                        this.announce(this.map().epoch());
                        // A pull that failed is retried here: the newest announcement stays
                        // in the channel until a newer one replaces it.
                        let news = heard.borrow().clone();
                        if let Some(a) = news.filter(|a| a.epoch > this.map().epoch())
                            && let Err(e) = this.pull(&a.grpc_addr).await
                        {
                            tracing::warn!(error = %e, from = %a.from, "could not pull ring epoch {}", a.epoch);
                        }
                    }
                    changed = heard.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let news = heard.borrow_and_update().clone();
                        if let Some(a) = news.filter(|a| a.epoch > this.map().epoch())
                            && let Err(e) = this.pull(&a.grpc_addr).await
                        {
                            tracing::warn!(error = %e, from = %a.from, "could not pull ring epoch {}", a.epoch);
                        }
                    }
                }
            }
        })
    }

    /// Joins the cluster through the member serving gRPC at `seed_grpc_addr` (any member: it
    /// forwards to the claimant) and installs the resulting map. Call it before serving client
    /// requests: until then this node's map is its own bootstrap map.
    ///
    /// # Errors
    /// The seed is unreachable or refuses the join (the message says why).
    pub async fn join_through(&self, seed_grpc_addr: &str) -> Result<Arc<ClusterMap>, KvError> {
        self.join_through_holding(seed_grpc_addr, 0).await
    }

    /// [`join_through`](Self::join_through), telling the cluster how many rows this node's
    /// store already holds: a node that is not yet a member is refused unless it is empty
    /// (rows from an earlier life could bring deleted keys back). Pass the store's row count.
    ///
    /// # Errors
    /// As `join_through`; [`KvError::Peer`] with FAILED_PRECONDITION for a non-empty newcomer.
    pub async fn join_through_holding(
        &self,
        seed_grpc_addr: &str,
        stored_rows: u64,
    ) -> Result<Arc<ClusterMap>, KvError> {
        let me = &self.inner.local;
        let mut client = KvAdminClient::new(self.inner.channels.to_addr(seed_grpc_addr)?);
        let request = pb::JoinRequest {
            node_id: me.id.to_string(),
            grpc_addr: me.grpc_addr.clone(),
            gossip_addr: me.gossip_addr.clone().unwrap_or_default(),
            zone: me.zone.clone().unwrap_or_default(),
            stored_rows,
        };
        let reply = tokio::time::timeout(self.inner.config.rpc_timeout, client.join(request))
            .await
            .map_err(|_| KvError::Timeout {
                node: seed_grpc_addr.to_owned(),
            })?
            .map_err(|s| KvError::Peer {
                node: seed_grpc_addr.to_owned(),
                status: s.code(),
                message: s.message().to_owned(),
            })?
            .into_inner();
        let message = reply.map.ok_or_else(|| {
            KvError::Internal(format!("{seed_grpc_addr} answered the join without a map"))
        })?;
        let map = Arc::new(map_from_message(&message)?);
        self.install(Arc::clone(&map));
        Ok(map)
    }

    /// Leaves the ring: asks the claimant, then waits until this node's partitions have been
    /// handed off (it is off the map) or `patience` runs out. The transfer task must be running.
    ///
    /// # Errors
    /// The claimant refuses or cannot be reached; [`KvError::Timeout`] if the hand-off takes
    /// longer than `patience` (it goes on in the background).
    pub async fn leave(&self, patience: Duration) -> Result<(), KvError> {
        let me = self.inner.local.id.clone();
        self.submit(RingChange::Leave(me.clone()), false).await?;
        let mut maps = self.subscribe();
        tokio::time::timeout(patience, maps.wait_for(|m| m.member(&me).is_none()))
            .await
            .map_err(|_| KvError::Timeout {
                node: me.to_string(),
            })?
            .map_err(|_| KvError::Closed)?;
        Ok(())
    }

    /// The current map in its wire form.
    pub fn map_message(&self) -> Result<pb::ClusterMapMessage, KvError> {
        map_to_message(&self.map())
    }
}

/// Metadata marking a change forwarded by a member (so it is not forwarded again).
pub(crate) const FORWARDED: &str = "x-ringkit-forwarded";

/// A change as the request that forwards it to the claimant.
enum Forward {
    /// `KvAdmin/Join`.
    Join(pb::JoinRequest),
    /// `KvAdmin/Leave`.
    Leave(pb::LeaveRequest),
    /// `KvAdmin/Remove`.
    Remove(pb::RemoveRequest),
    /// `KvAdmin/CompleteTransfer`.
    Complete(pb::CompleteTransferRequest),
}

fn forward_request(change: &RingChange) -> Forward {
    match change {
        RingChange::Join(m) => Forward::Join(pb::JoinRequest {
            node_id: m.id.to_string(),
            grpc_addr: m.grpc_addr.clone(),
            gossip_addr: m.gossip_addr.clone().unwrap_or_default(),
            zone: m.zone.clone().unwrap_or_default(),
            // Checked by the node that took the request; the claimant does not repeat it.
            stored_rows: 0,
        }),
        RingChange::Leave(id) => Forward::Leave(pb::LeaveRequest {
            node_id: id.to_string(),
        }),
        RingChange::Remove(id) => Forward::Remove(pb::RemoveRequest {
            node_id: id.to_string(),
        }),
        RingChange::Complete(done) => Forward::Complete(pb::CompleteTransferRequest {
            transfers: done
                .iter()
                .map(|d| pb::Transfer {
                    partition: d.partition.0,
                    from: d.from.to_string(),
                    to: d.to.to_string(),
                    since: d.since,
                })
                .collect(),
        }),
    }
}

fn with_mark<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}
