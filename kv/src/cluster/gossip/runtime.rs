//! The tokio shell around [`Membership`]: one task selecting over the socket, the next SWIM
//! deadline and commands; it publishes the [`LiveSet`] on a `watch` channel.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use ringkit_hashring::NodeId;
use ringkit_hashring::membership::{
    MemberEvent, MemberIdentity, MemberStatus, Membership, RingAnnouncement,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{DatagramSocket, GossipConfig};
use crate::cluster::topology::LiveSet;
use crate::error::KvError;

/// Receive buffer: larger than any datagram foca accepts, so oversize ones are seen (and refused).
const RECV_BUFFER: usize = 65_536;

/// What the handle asks of the driver task.
enum Command {
    /// Spread a ring version.
    Announce(RingAnnouncement),
    /// Send join requests to these gossip addresses.
    Contact(Vec<SocketAddr>),
    /// Say goodbye, then stop (the sender learns when the farewell is out).
    Leave(oneshot::Sender<()>),
}

/// A running gossip member. Dropping it stops the task without a farewell (as a crash would);
/// [`leave`](Self::leave) says goodbye first.
#[derive(Debug)]
pub struct GossipHandle {
    /// This node's identity at start.
    identity: MemberIdentity,
    /// The live set the driver publishes.
    live: watch::Receiver<LiveSet>,
    /// Every known member with its state, for the admin API.
    members: watch::Receiver<Arc<Vec<MemberStatus>>>,
    /// The newest ring announcement heard.
    announcements: watch::Receiver<Option<RingAnnouncement>>,
    /// The highest ring epoch a peer announced (news or not).
    peer_epoch: watch::Receiver<u64>,
    /// To the driver task.
    commands: mpsc::Sender<Command>,
    /// The driver task; taken by the first `leave` or `shutdown`.
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// Starts gossip on `socket`: joins through the seeds, then keeps the live set current.
///
/// # Errors
/// [`KvError::Config`] for invalid settings; [`KvError::Io`] if the socket has no local address
/// and none is advertised.
pub fn spawn<S: DatagramSocket>(config: GossipConfig, socket: S) -> Result<GossipHandle, KvError> {
    config.validate()?;
    let addr = match config.advertise {
        Some(a) => a,
        None => socket.local_addr().map_err(|e| KvError::Io(Arc::new(e)))?,
    };
    let identity = config.identity(addr);
    let mut swim = Membership::new(identity.clone(), &config.swim, config.rng_seed)
        .map_err(|e| KvError::Config(format!("gossip: {e}")))?;
    let start = Instant::now();
    if let Err(e) = swim.join(config.seeds.iter().copied(), Duration::ZERO) {
        tracing::warn!(error = %e, "gossip: join request failed; retrying with the next round");
    }
    let assumed: BTreeSet<NodeId> = config.assume_live.iter().cloned().collect();
    let (live_tx, live) = watch::channel(Arc::new(with_assumed(swim.live_nodes(), &assumed)));
    let (members_tx, members) = watch::channel(Arc::new(swim.members()));
    let (ann_tx, announcements) = watch::channel(None);
    let (peer_epoch_tx, peer_epoch) = watch::channel(0);
    let (commands, rx) = mpsc::channel(64);
    let driver = Driver {
        swim,
        socket: Arc::new(socket),
        start,
        assumed,
        assume_until: start + config.assume_live_for,
        live_tx,
        members_tx,
        ann_tx,
        peer_epoch_tx,
    };
    let task = tokio::spawn(driver.run(rx));
    Ok(GossipHandle {
        identity,
        live,
        members,
        announcements,
        peer_epoch,
        commands,
        task: std::sync::Mutex::new(Some(task)),
    })
}

impl GossipHandle {
    /// This node's identity as it started (its gossip address, incarnation).
    pub fn identity(&self) -> &MemberIdentity {
        &self.identity
    }

    /// The live set, updated as gossip learns: what the coordinator routes by.
    pub fn live(&self) -> watch::Receiver<LiveSet> {
        self.live.clone()
    }

    /// Every node gossip knows of, with its state (alive, suspect, down): for the admin API.
    pub fn members(&self) -> Arc<Vec<MemberStatus>> {
        self.members.borrow().clone()
    }

    /// The newest ring version someone announced (a newer one than seen before): pull it.
    pub fn ring_announcements(&self) -> watch::Receiver<Option<RingAnnouncement>> {
        self.announcements.clone()
    }

    /// Copies every live-set change into `target` (the node's own live-set channel, which the
    /// coordinator reads) until `shutdown` completes or gossip stops.
    pub fn feed_live(
        &self,
        target: watch::Sender<LiveSet>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let mut live = self.live();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                target.send_replace(live.borrow_and_update().clone());
                tokio::select! {
                    () = &mut shutdown => break,
                    changed = live.changed() => if changed.is_err() { break },
                }
            }
        })
    }

    /// The highest ring epoch any peer has announced, even one this node already had (0 before
    /// any): evidence that this node has heard the cluster since it started.
    pub fn peer_epoch(&self) -> u64 {
        *self.peer_epoch.borrow()
    }

    /// Spreads a ring version by gossip; announcing the current one again re-spreads it.
    pub async fn announce_ring(&self, announcement: RingAnnouncement) {
        // A closed channel means gossip has stopped: nothing left to spread it.
        let _ = self.commands.send(Command::Announce(announcement)).await;
    }

    /// Introduces this node to the members at `addrs` (gossip addresses learned elsewhere, such
    /// as a new ring member's): each gets a join request once.
    pub async fn contact(&self, addrs: Vec<SocketAddr>) {
        // A closed channel means gossip has stopped: nobody to introduce.
        let _ = self.commands.send(Command::Contact(addrs)).await;
    }

    /// Tells a few members this node is leaving (so they need not detect it), then stops.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = rx.await;
        }
        self.stop(false).await;
    }

    /// Stops gossip without a farewell: the others detect it as a failure.
    pub async fn shutdown(&self) {
        self.stop(true).await;
    }

    async fn stop(&self, abort: bool) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if abort {
                task.abort();
            }
            let _ = task.await;
        }
    }
}

impl Drop for GossipHandle {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            task.abort();
        }
    }
}

fn with_assumed(mut live: BTreeSet<NodeId>, assumed: &BTreeSet<NodeId>) -> BTreeSet<NodeId> {
    live.extend(assumed.iter().cloned());
    live
}

/// The task that owns the SWIM state machine and the socket.
struct Driver<S> {
    /// The sans-IO member.
    swim: Membership,
    /// Where datagrams come and go.
    socket: Arc<S>,
    /// Time zero of the member's clock (`now` is time since then).
    start: Instant,
    /// Reported live until gossip knows them (in any state) or `assume_until` passes.
    assumed: BTreeSet<NodeId>,
    /// When `assumed` stops counting whatever gossip knows.
    assume_until: Instant,
    /// Publishes the live set.
    live_tx: watch::Sender<LiveSet>,
    /// Publishes the member states.
    members_tx: watch::Sender<Arc<Vec<MemberStatus>>>,
    /// Publishes ring announcements that are news.
    ann_tx: watch::Sender<Option<RingAnnouncement>>,
    /// Publishes the highest epoch a peer announced.
    peer_epoch_tx: watch::Sender<u64>,
}

impl<S: DatagramSocket> Driver<S> {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; RECV_BUFFER];
        let socket = Arc::clone(&self.socket);
        loop {
            let wake = self.swim.poll_timeout().map(|d| self.start + d);
            let sleep = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let assuming = !self.assumed.is_empty();
            let assume_until = self.assume_until;
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => break,
                    Some(Command::Announce(a)) => {
                        if let Err(e) = self.swim.announce_ring(&a) {
                            tracing::warn!(error = %e, "gossip: cannot announce ring epoch {}", a.epoch);
                        }
                    }
                    Some(Command::Contact(addrs)) => {
                        let now = self.now();
                        if let Err(e) = self.swim.contact(addrs, now) {
                            tracing::warn!(error = %e, "gossip: cannot contact new members");
                        }
                    }
                    Some(Command::Leave(done)) => {
                        let now = self.now();
                        if let Err(e) = self.swim.leave(now) {
                            tracing::warn!(error = %e, "gossip: farewell failed");
                        }
                        self.flush().await;
                        let _ = done.send(());
                        break;
                    }
                },
                received = socket.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        let now = self.now();
                        if let Err(e) = self.swim.handle_datagram(&buf[..n], now) {
                            tracing::debug!(%from, error = %e, "gossip: datagram refused");
                        }
                    }
                    Err(e) => {
                        // ICMP errors surface here on some systems; a dead socket must not spin.
                        tracing::debug!(error = %e, "gossip: receive failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                },
                () = sleep => {
                    let now = self.now();
                    if let Err(e) = self.swim.handle_timeout(now) {
                        tracing::debug!(error = %e, "gossip: timer");
                    }
                }
                () = tokio::time::sleep_until(assume_until), if assuming => self.assumed.clear(),
            }
            self.flush().await;
            self.publish();
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    async fn flush(&mut self) {
        while let Some(t) = self.swim.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.payload, t.to).await {
                tracing::debug!(to = %t.to, error = %e, "gossip: send failed");
            }
        }
    }

    fn publish(&mut self) {
        while let Some(event) = self.swim.poll_event() {
            match event {
                MemberEvent::Up(id) => tracing::info!(member = %id, "gossip: member up"),
                MemberEvent::Down(id) => tracing::warn!(member = %id, "gossip: member down"),
                MemberEvent::Restarted { old, new } => {
                    tracing::info!(%old, %new, "gossip: member restarted");
                }
                MemberEvent::Rejoined { new } => {
                    tracing::warn!(%new, "gossip: we were declared down; rejoined");
                }
                MemberEvent::Connected => {}
                MemberEvent::Isolated => tracing::warn!("gossip: no live member known"),
                MemberEvent::RingEpoch(a) => {
                    self.ann_tx.send_replace(Some(a));
                }
            }
        }
        let members = self.swim.members();
        if !self.assumed.is_empty() {
            // An assumed member stops being assumed once gossip has its own opinion of it.
            self.assumed
                .retain(|n| !members.iter().any(|m| &m.identity.node == n));
        }
        let peer = self.swim.peer_announced_epoch();
        self.peer_epoch_tx.send_if_modified(|cur| {
            let changed = *cur != peer;
            *cur = peer;
            changed
        });
        let live = with_assumed(self.swim.live_nodes(), &self.assumed);
        self.live_tx.send_if_modified(|cur| {
            let changed = **cur != live;
            if changed {
                *cur = Arc::new(live);
            }
            changed
        });
        self.members_tx.send_if_modified(|cur| {
            let changed = **cur != members;
            if changed {
                *cur = Arc::new(members);
            }
            changed
        });
    }
}
