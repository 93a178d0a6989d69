//! What [`super::Membership`] hands back to its driver: datagrams, events and member states.

use std::net::SocketAddr;

use bytes::Bytes;

use super::{MemberIdentity, RingAnnouncement};

/// A datagram the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The destination's gossip address.
    pub to: SocketAddr,
    /// The bytes to send, as one datagram.
    pub payload: Bytes,
}

/// How this member currently sees another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; treated as alive until it refutes or is declared down.
    Suspect,
    /// Declared down (or left); not live.
    Down,
}

impl MemberState {
    /// Whether requests may be sent to it (SWIM treats suspects as alive).
    #[must_use]
    pub fn is_live(self) -> bool {
        self != Self::Down
    }
}

/// One member as this node sees it (for the admin API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// Its current identity (the latest life known).
    pub identity: MemberIdentity,
    /// Its state.
    pub state: MemberState,
}

/// A change worth telling the rest of the node about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member became live (joined, or came back after being down).
    Up(MemberIdentity),
    /// A live member was declared down (crashed, partitioned away, or left).
    Down(MemberIdentity),
    /// A node started a new life (restart): `old` is gone, `new` replaces it.
    Restarted {
        /// The previous identity.
        old: MemberIdentity,
        /// The new one.
        new: MemberIdentity,
    },
    /// This node was declared down by the cluster and rejoined as `new` (its next life).
    Rejoined {
        /// This node's new identity.
        new: MemberIdentity,
    },
    /// This node knows no live member any more (alone, or partitioned away).
    Isolated,
    /// This node is known by at least one live member.
    Connected,
    /// Someone announced a ring version newer than any seen: pull it.
    RingEpoch(RingAnnouncement),
}
