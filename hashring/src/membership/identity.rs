//! [`MemberIdentity`]: who a gossip member is, and how a restarted node supersedes its old self.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::NodeId;

/// One life of one node, as gossip knows it.
///
/// SWIM declares a silent member down and remembers that verdict for a while, so a node that
/// comes back must come back as a *new* identity. The `incarnation` does that: a node starts with
/// a number larger than any it used before (the shell uses its start time in milliseconds), and
/// a member declared down by mistake renews itself with `incarnation + 1`. Two identities with
/// the same gossip address are two lives of one node: the larger incarnation wins.
///
/// This incarnation is the node's *life* counter; foca's own `Incarnation` (a `u16` a member
/// bumps to refute suspicion within one life) is separate and internal.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberIdentity {
    /// The node's ring name: what liveness is reported for.
    pub node: NodeId,
    /// Where its gossip socket receives datagrams; unique per live node, and what seeds are
    /// addressed by.
    pub gossip_addr: SocketAddr,
    /// Where its gRPC server listens, so that a member learned from gossip can be called
    /// (the ring map is pulled from there).
    pub grpc_addr: String,
    /// The life counter (see the type's docs): larger means newer.
    pub incarnation: u64,
}

impl MemberIdentity {
    /// An identity for `node` starting a new life numbered `incarnation`.
    #[must_use]
    pub fn new(
        node: impl Into<NodeId>,
        gossip_addr: SocketAddr,
        grpc_addr: impl Into<String>,
        incarnation: u64,
    ) -> Self {
        Self {
            node: node.into(),
            gossip_addr,
            grpc_addr: grpc_addr.into(),
            incarnation,
        }
    }

    /// A placeholder for a seed known only by its gossip address: foca accepts a join request
    /// (`Announce`) addressed to any identity with the receiver's address, and the reply
    /// carries the seed's real identity.
    pub(crate) fn seed(gossip_addr: SocketAddr) -> Self {
        Self {
            node: NodeId::from(""),
            gossip_addr,
            grpc_addr: String::new(),
            incarnation: 0,
        }
    }

    /// Whether `self` is a later life than `other` (ties broken by node id, so that the
    /// answer is the same on every member even for a misconfigured duplicate address).
    fn newer_than(&self, other: &Self) -> bool {
        (self.incarnation, &self.node) > (other.incarnation, &other.node)
    }
}

impl foca::Identity for MemberIdentity {
    type Addr = SocketAddr;

    /// A member that learns it was declared down rejoins at once as its next life.
    fn renew(&self) -> Option<Self> {
        Some(Self {
            incarnation: self.incarnation.saturating_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.gossip_addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.newer_than(adversary)
    }
}

impl fmt::Debug for MemberIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.node, self.incarnation, self.gossip_addr)
    }
}

impl fmt::Display for MemberIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    fn id(node: &str, inc: u64) -> MemberIdentity {
        MemberIdentity::new(
            node,
            "127.0.0.1:7000".parse().unwrap(),
            "127.0.0.1:50071",
            inc,
        )
    }

    #[test]
    fn later_life_wins_the_address() {
        assert!(id("a", 2).win_addr_conflict(&id("a", 1)));
        assert!(!id("a", 1).win_addr_conflict(&id("a", 2)));
        // Same life, different names: decided the same way everywhere.
        assert!(id("b", 1).win_addr_conflict(&id("a", 1)));
        assert!(!id("a", 1).win_addr_conflict(&id("b", 1)));
    }

    #[test]
    fn renew_moves_to_the_next_life() {
        let renewed = id("a", 7).renew().unwrap();
        assert_eq!(renewed.incarnation, 8);
        assert!(renewed.win_addr_conflict(&id("a", 7)));
        assert_eq!(renewed.addr(), id("a", 7).addr());
        assert_eq!(id("a", u64::MAX).renew().unwrap().incarnation, u64::MAX);
    }
}
