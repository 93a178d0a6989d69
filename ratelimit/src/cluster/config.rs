//! Cluster configuration: who I am, who my peers are, how to forward.

use std::time::Duration;

use crate::error::Error;

/// One member of the static peer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Node id, the same on every node's list (it decides placement).
    pub id: String,
    /// gRPC address, e.g. `http://10.0.0.2:50061`.
    pub addr: String,
}

impl Peer {
    /// Parses `id=http://host:port`.
    ///
    /// # Errors
    /// [`Error::Config`] if the `=` or either side is missing.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text.split_once('=') {
            Some((id, addr)) if !id.trim().is_empty() && !addr.trim().is_empty() => Ok(Peer {
                id: id.trim().to_owned(),
                addr: addr.trim().to_owned(),
            }),
            _ => Err(Error::Config(format!(
                "peer `{text}` is not `id=http://host:port`"
            ))),
        }
    }
}

/// How a node takes part in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id; it must not appear in `peers`.
    pub node_id: String,
    /// The other nodes. Every node must list the same set (itself aside), or nodes disagree on
    /// owners and a key gets counted in two places.
    pub peers: Vec<Peer>,
    /// Extra time a forwarder waits to fill a batch. Zero (the default) batches adaptively:
    /// everything that arrives while a batch is on the wire goes in the next one.
    pub batch_window: Duration,
    /// Most operations in one forward.
    pub max_batch: usize,
    /// Batches in flight to one peer at once.
    pub max_in_flight: usize,
    /// Longest wait for an owner before it is treated as down.
    pub forward_timeout: Duration,
    /// How long a failed owner is skipped before being tried again.
    pub down_cooldown: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: "node-1".into(),
            peers: Vec::new(),
            batch_window: Duration::ZERO,
            max_batch: 256,
            max_in_flight: 4,
            forward_timeout: Duration::from_millis(250),
            down_cooldown: Duration::from_secs(2),
        }
    }
}

impl ClusterConfig {
    /// Checks the config.
    ///
    /// # Errors
    /// [`Error::Config`] naming the problem.
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_id.trim().is_empty() {
            return Err(Error::Config("cluster node id is empty".into()));
        }
        let mut ids: Vec<&str> = self.peers.iter().map(|p| p.id.as_str()).collect();
        ids.push(&self.node_id);
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Config(format!(
                "node id `{}` appears twice in the cluster (peers must not list this node)",
                w[0]
            )));
        }
        if self.max_batch == 0 || self.max_batch > crate::grpc::MAX_BATCH {
            return Err(Error::Config(format!(
                "max_batch must be between 1 and {}",
                crate::grpc::MAX_BATCH
            )));
        }
        if self.max_in_flight == 0 {
            return Err(Error::Config("max_in_flight must be at least 1".into()));
        }
        if self.forward_timeout.is_zero() {
            return Err(Error::Config("forward_timeout must be above zero".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        let p = Peer::parse("b=http://127.0.0.1:1").unwrap();
        assert_eq!(p.id, "b");
        assert!(Peer::parse("nope").is_err());
        let mut c = ClusterConfig {
            node_id: "a".into(),
            peers: vec![p.clone()],
            ..ClusterConfig::default()
        };
        c.validate().unwrap();
        c.peers.push(Peer {
            id: "a".into(),
            ..p
        });
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("`a` appears twice")
        );
    }
}
