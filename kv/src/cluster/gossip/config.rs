//! [`GossipConfig`]: who this node is to gossip, whom it joins through, and the SWIM timings.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_hashring::NodeId;
use ringkit_hashring::membership::{MemberIdentity, MembershipConfig};

use crate::error::KvError;

/// Settings of one node's gossip runtime ([`super::spawn`]).
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// This node's ring id.
    pub node: NodeId,
    /// The gossip address others reach this node at; `None` takes the socket's local address
    /// (right for loopback and tests, wrong behind NAT or on `0.0.0.0`).
    pub advertise: Option<SocketAddr>,
    /// This node's gRPC address, carried in its identity so members learned by gossip can be
    /// called.
    pub grpc_addr: String,
    /// This life's number: larger than any earlier life of this node (see
    /// [`fresh_incarnation`]); the simulation sets it explicitly.
    pub incarnation: u64,
    /// Gossip addresses to join through (any live member will do; ours is skipped).
    pub seeds: Vec<SocketAddr>,
    /// Nodes reported live until gossip has its own view of them (the configured members), so
    /// that requests are not refused during the first probe rounds.
    pub assume_live: Vec<NodeId>,
    /// How long `assume_live` holds at most (then only what gossip knows counts).
    pub assume_live_for: Duration,
    /// SWIM timings; the defaults detect a failure within 2 s.
    pub swim: MembershipConfig,
    /// Seed of the random choices (probe order, gossip targets); replays in simulation.
    pub rng_seed: u64,
}

impl GossipConfig {
    /// A config for `node` serving gRPC at `grpc_addr`, joining through `seeds`, with default
    /// timings, a fresh incarnation and a random seed.
    pub fn new(
        node: impl Into<NodeId>,
        grpc_addr: impl Into<String>,
        seeds: Vec<SocketAddr>,
    ) -> Self {
        Self {
            node: node.into(),
            advertise: None,
            grpc_addr: grpc_addr.into(),
            incarnation: fresh_incarnation(),
            seeds,
            assume_live: Vec::new(),
            assume_live_for: Duration::from_secs(2),
            swim: MembershipConfig::default(),
            rng_seed: rand::random(),
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`KvError::Config`] naming the bad field.
    pub fn validate(&self) -> Result<(), KvError> {
        if self.node.as_str().is_empty() || self.node.as_str().len() > 255 {
            return Err(KvError::Config(format!(
                "gossip: node id {:?} must be 1 to 255 bytes",
                self.node.as_str()
            )));
        }
        if self.grpc_addr.is_empty() {
            return Err(KvError::Config("gossip: grpc_addr is empty".into()));
        }
        self.swim
            .validate()
            .map_err(|e| KvError::Config(format!("gossip: {e}")))
    }

    /// This node's identity once its gossip address is known.
    pub(crate) fn identity(&self, gossip_addr: SocketAddr) -> MemberIdentity {
        MemberIdentity::new(
            self.node.clone(),
            gossip_addr,
            self.grpc_addr.clone(),
            self.incarnation,
        )
    }
}

/// An incarnation for a life starting now: milliseconds since the Unix epoch, so a restarted
/// node supersedes its previous life (clocks would have to step back further than the restart
/// took for this to fail; the old life is then still declared down by SWIM, only later).
pub fn fresh_incarnation() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names_and_timings() {
        let ok = GossipConfig::new("a", "127.0.0.1:1", vec![]);
        ok.validate().unwrap();
        assert!(ok.incarnation > 1_600_000_000_000);
        let bad = GossipConfig {
            node: NodeId::from(""),
            ..ok.clone()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("node id"));
        let mut bad = ok;
        bad.swim.probe_rtt = Duration::from_secs(9);
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("probe_rtt")
        );
    }
}
