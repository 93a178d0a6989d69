//! [`Membership`]: the sans-IO SWIM member (foca) with its timers kept on an injected clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec, State, Timer};
use rand_foca::SeedableRng;
use rand_foca::rngs::SmallRng;

use super::broadcast::EpochHandler;
use super::{
    MemberEvent, MemberIdentity, MemberState, MemberStatus, MembershipConfig, RingAnnouncement,
    Transmit,
};
use crate::{HashRingError, NodeId};

type Swim = Foca<MemberIdentity, PostcardCodec, SmallRng, EpochHandler>;

/// What a scheduled deadline does when it passes.
#[derive(Debug)]
enum Due {
    /// A timer foca asked for.
    Swim(Timer<MemberIdentity>),
    /// Retry the seeds while no member is known.
    Rejoin,
}

/// One SWIM member: feed it datagrams and the time, send what it hands back.
///
/// Pure: no sockets, no clock, no global randomness. `now` is any monotonic [`Duration`] (the
/// tokio shell passes time since it started; tests pass a fake clock), randomness comes from a
/// seed, so a cluster of these in one test replays exactly.
///
/// The driver loop: after every call, drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event), and wake up at [`poll_timeout`](Self::poll_timeout) to call
/// [`handle_timeout`](Self::handle_timeout).
///
/// ```
/// use std::time::Duration;
/// use ringkit_hashring::membership::{MemberIdentity, Membership, MembershipConfig};
///
/// let me = MemberIdentity::new("a", "127.0.0.1:7001".parse()?, "127.0.0.1:50071", 1);
/// let mut swim = Membership::new(me, &MembershipConfig::default(), 42)?;
/// swim.join(["127.0.0.1:7002".parse()?], Duration::ZERO)?;
/// let hello = swim.poll_transmit().expect("a join request to the seed");
/// assert_eq!(hello.to, "127.0.0.1:7002".parse()?);
/// assert_eq!(swim.live_nodes().len(), 1, "only itself until the seed answers");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Membership {
    /// The SWIM protocol itself.
    foca: Swim,
    /// Collects foca's outputs during one call; drained into the queues below right after.
    runtime: AccumulatingRuntime<MemberIdentity>,
    /// Shared with the broadcast handler foca owns: ring announcements received.
    announcements: EpochHandler,
    /// Pending deadlines, in time order (the sequence number keeps equal times in order).
    timers: BTreeMap<(Duration, u64), Due>,
    /// Tie-breaker for timers due at the same instant (insertion order).
    seq: u64,
    /// The latest time seen; timers foca schedules count from it.
    now: Duration,
    /// Gossip addresses to join through while isolated.
    seeds: Vec<SocketAddr>,
    /// Whether foca knows at least one live member.
    connected: bool,
    /// Pause between join requests to the seeds while isolated.
    rejoin_every: Duration,
    /// Datagrams waiting for the driver.
    outbox: VecDeque<Transmit>,
    /// Events waiting for the driver.
    events: VecDeque<MemberEvent>,
}

impl Membership {
    /// A member with identity `me` that knows nobody yet; `rng_seed` drives every random choice.
    ///
    /// # Errors
    /// [`HashRingError::BadConfig`] if `config` does not validate.
    pub fn new(
        me: MemberIdentity,
        config: &MembershipConfig,
        rng_seed: u64,
    ) -> Result<Self, HashRingError> {
        let announcements = EpochHandler::default();
        let foca = Foca::with_custom_broadcast(
            me,
            config.to_foca()?,
            SmallRng::seed_from_u64(rng_seed),
            PostcardCodec,
            announcements.clone(),
        );
        Ok(Self {
            foca,
            runtime: AccumulatingRuntime::new(),
            announcements,
            timers: BTreeMap::new(),
            seq: 0,
            now: Duration::ZERO,
            seeds: Vec::new(),
            connected: false,
            rejoin_every: config.rejoin_every,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// This node's current identity (it changes when the node rejoins after a false verdict).
    #[must_use]
    pub fn identity(&self) -> &MemberIdentity {
        self.foca.identity()
    }

    /// Joins through `seeds` (gossip addresses; our own is skipped): sends each a join request
    /// now, and again every `rejoin_every` while no member is known.
    ///
    /// # Errors
    /// [`HashRingError::Membership`] if a request cannot be encoded.
    pub fn join(
        &mut self,
        seeds: impl IntoIterator<Item = SocketAddr>,
        now: Duration,
    ) -> Result<(), HashRingError> {
        self.advance(now);
        let own = self.identity().gossip_addr;
        let unique: std::collections::BTreeSet<SocketAddr> =
            seeds.into_iter().filter(|s| *s != own).collect();
        self.seeds = unique.into_iter().collect();
        self.announce_to_seeds()
    }

    /// Sends a join request to each of `addrs` once (our own address skipped), without changing
    /// the seeds: how a node introduces itself to members it learns of elsewhere (a new ring
    /// member's gossip address, say). Already known members just answer with their view.
    ///
    /// # Errors
    /// [`HashRingError::Membership`] if a request cannot be encoded.
    pub fn contact(
        &mut self,
        addrs: impl IntoIterator<Item = SocketAddr>,
        now: Duration,
    ) -> Result<(), HashRingError> {
        self.advance(now);
        let own = self.identity().gossip_addr;
        let mut result = Ok(());
        for addr in addrs.into_iter().filter(|a| *a != own) {
            if let Err(e) = self
                .foca
                .announce(MemberIdentity::seed(addr), &mut self.runtime)
            {
                result = Err(swim_error(e));
            }
        }
        self.drain();
        result
    }

    /// Feeds one received datagram.
    ///
    /// # Errors
    /// [`HashRingError::Membership`] for a datagram that is malformed, too big, or from
    /// ourselves: the driver logs it and carries on (the network may deliver anything).
    pub fn handle_datagram(&mut self, data: &[u8], now: Duration) -> Result<(), HashRingError> {
        self.advance(now);
        let result = self
            .foca
            .handle_data(data, &mut self.runtime)
            .map_err(swim_error);
        self.drain();
        result
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.timers.keys().next().map(|&(at, _)| at)
    }

    /// Runs every deadline that has passed by `now`, in order.
    ///
    /// # Errors
    /// The first [`HashRingError::Membership`] a timer raised; the later ones still ran.
    pub fn handle_timeout(&mut self, now: Duration) -> Result<(), HashRingError> {
        self.advance(now);
        let mut first_error = None;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let result = match entry.remove() {
                Due::Swim(timer) => self
                    .foca
                    .handle_timer(timer, &mut self.runtime)
                    .map_err(swim_error),
                Due::Rejoin => {
                    if self.connected {
                        Ok(())
                    } else {
                        self.announce_to_seeds()
                    }
                }
            };
            self.drain();
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next membership event.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }

    /// Spreads a ring version by gossip (piggybacked on the next messages); announcing the
    /// current epoch again re-spreads it, for members that missed it.
    ///
    /// # Errors
    /// [`HashRingError::Membership`] if the announcement does not fit a datagram (node id over
    /// 255 bytes or gRPC address too long).
    pub fn announce_ring(&mut self, announcement: &RingAnnouncement) -> Result<(), HashRingError> {
        let data = announcement
            .encode()
            .ok_or_else(|| HashRingError::Membership {
                reason: format!("node id {} is longer than 255 bytes", announcement.from),
            })?;
        self.foca.add_broadcast(&data).map_err(swim_error)?;
        Ok(())
    }

    /// The highest ring epoch announced by anyone (0 before any).
    #[must_use]
    pub fn latest_announced_epoch(&self) -> u64 {
        self.announcements.latest()
    }

    /// The highest ring epoch a *peer* has announced, even one this node already had (0 before
    /// any): a restarted node uses it to know it has heard the cluster before deciding anything.
    #[must_use]
    pub fn peer_announced_epoch(&self) -> u64 {
        self.announcements.peer()
    }

    /// Leaves gracefully: tells a few members we are down so they need not detect it. The
    /// member stays silent afterwards; a restart is a new [`Membership`] with a new incarnation.
    ///
    /// # Errors
    /// [`HashRingError::Membership`] if the farewell cannot be encoded.
    pub fn leave(&mut self, now: Duration) -> Result<(), HashRingError> {
        self.advance(now);
        let result = self
            .foca
            .leave_cluster(&mut self.runtime)
            .map_err(swim_error);
        self.drain();
        self.timers.clear();
        self.seeds.clear();
        result
    }

    /// Every node this member has heard of, with its latest identity and state, this node
    /// included (always alive), sorted by node id.
    #[must_use]
    pub fn members(&self) -> Vec<MemberStatus> {
        let mut best: BTreeMap<NodeId, MemberStatus> = BTreeMap::new();
        let me = self.identity();
        best.insert(
            me.node.clone(),
            MemberStatus {
                identity: me.clone(),
                state: MemberState::Alive,
            },
        );
        for m in self.foca.iter_membership_state() {
            let state = match m.state() {
                State::Alive => MemberState::Alive,
                State::Suspect => MemberState::Suspect,
                State::Down => MemberState::Down,
            };
            let status = MemberStatus {
                identity: m.id().clone(),
                state,
            };
            let node = m.id().node.clone();
            match best.get(&node) {
                // A live identity beats a dead one; among equals the later life wins.
                Some(cur)
                    if (cur.state.is_live(), cur.identity.incarnation)
                        >= (state.is_live(), status.identity.incarnation) => {}
                _ => {
                    best.insert(node, status);
                }
            }
        }
        best.into_values().collect()
    }

    /// The nodes believed live (alive or suspect), this node included.
    #[must_use]
    pub fn live_nodes(&self) -> BTreeSet<NodeId> {
        let mut live: BTreeSet<NodeId> = self
            .foca
            .iter_members()
            .map(|m| m.id().node.clone())
            .collect();
        live.insert(self.identity().node.clone());
        live
    }

    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    fn schedule(&mut self, after: Duration, due: Due) {
        self.seq += 1;
        self.timers.insert((self.now + after, self.seq), due);
    }

    fn announce_to_seeds(&mut self) -> Result<(), HashRingError> {
        let mut result = Ok(());
        for seed in self.seeds.clone() {
            if let Err(e) = self
                .foca
                .announce(MemberIdentity::seed(seed), &mut self.runtime)
            {
                result = Err(swim_error(e));
            }
        }
        self.drain();
        if !self.seeds.is_empty() {
            self.schedule(self.rejoin_every, Due::Rejoin);
        }
        result
    }

    /// Moves foca's outputs into the queues.
    fn drain(&mut self) {
        while let Some((to, payload)) = self.runtime.to_send() {
            self.outbox.push_back(Transmit {
                to: to.gossip_addr,
                payload,
            });
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.schedule(after, Due::Swim(timer));
        }
        while let Some(note) = self.runtime.to_notify() {
            let event = match note {
                OwnedNotification::MemberUp(id) => MemberEvent::Up(id),
                OwnedNotification::MemberDown(id) => MemberEvent::Down(id),
                OwnedNotification::Rename(old, new) => MemberEvent::Restarted { old, new },
                OwnedNotification::Rejoin(new) => MemberEvent::Rejoined { new },
                OwnedNotification::Active => {
                    self.connected = true;
                    MemberEvent::Connected
                }
                OwnedNotification::Idle | OwnedNotification::Defunct => {
                    let was = std::mem::replace(&mut self.connected, false);
                    if was && !self.seeds.is_empty() {
                        self.schedule(self.rejoin_every, Due::Rejoin);
                    }
                    MemberEvent::Isolated
                }
            };
            self.events.push_back(event);
        }
        for announcement in self.announcements.drain() {
            self.events.push_back(MemberEvent::RingEpoch(announcement));
        }
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("identity", self.identity())
            .field("live", &self.live_nodes())
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

fn swim_error(e: foca::Error) -> HashRingError {
    HashRingError::Membership {
        reason: e.to_string(),
    }
}
