//! [`ClusterConfig`]: what a node needs to join the cluster at start: who it is, who the
//! members are, and how requests are coordinated.

use ringkit_hashring::{NodeId, RingConfig};

use super::coordinator::CoordinatorConfig;
use super::topology::{ClusterMap, Member};
use crate::error::KvError;

/// Settings of a [`ClusterNode`](super::node::ClusterNode).
///
/// Bootstrap: every node is started with the same `members` (and `ring`), so every node builds
/// the same ring; later changes come only from explicit join/leave/remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's id: must be one of `members`.
    pub node_id: NodeId,
    /// The initial members, with their addresses (order does not matter).
    pub members: Vec<Member>,
    /// Shape of the ring; `None` picks `RingConfig::for_cluster_size(members.len())`. Every
    /// node must use the same value.
    pub ring: Option<RingConfig>,
    /// Request coordination (per-replica timeout, read repair bound).
    pub coordinator: CoordinatorConfig,
}

impl ClusterConfig {
    /// A configuration for `node_id` among `members`, with defaults elsewhere.
    pub fn new(node_id: impl Into<NodeId>, members: Vec<Member>) -> Self {
        Self {
            node_id: node_id.into(),
            members,
            ring: None,
            coordinator: CoordinatorConfig::default(),
        }
    }

    /// The ring shape in effect.
    pub fn ring_config(&self) -> RingConfig {
        self.ring
            .unwrap_or_else(|| RingConfig::for_cluster_size(self.members.len()))
    }

    /// Checks the settings and builds the bootstrap map.
    ///
    /// # Errors
    /// [`KvError::Config`] naming the problem: no members, this node not among them, duplicate
    /// ids, empty addresses, or a ring the members cannot form.
    pub fn bootstrap_map(&self) -> Result<ClusterMap, KvError> {
        self.coordinator.validate()?;
        if self.members.is_empty() {
            return Err(KvError::Config(
                "cluster members must list at least this node".into(),
            ));
        }
        if !self.members.iter().any(|m| m.id == self.node_id) {
            return Err(KvError::Config(format!(
                "cluster node_id {:?} is not in the members list",
                self.node_id.as_str()
            )));
        }
        if let Some(m) = self.members.iter().find(|m| m.grpc_addr.is_empty()) {
            return Err(KvError::Config(format!(
                "cluster member {} has an empty grpc address",
                m.id
            )));
        }
        ClusterMap::bootstrap(self.ring_config(), self.members.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<Member> {
        vec![Member::new("a", "h:1"), Member::new("b", "h:2")]
    }

    #[test]
    fn valid_config_builds_the_same_map_in_any_order() {
        let a = ClusterConfig::new("a", members());
        let mut rev = members();
        rev.reverse();
        let b = ClusterConfig::new("b", rev);
        let (ma, mb) = match (a.bootstrap_map(), b.bootstrap_map()) {
            (Ok(x), Ok(y)) => (x, y),
            other => panic!("{other:?}"),
        };
        assert_eq!(ma.ring(), mb.ring());
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let e = ClusterConfig::new("z", members()).bootstrap_map();
        assert!(
            matches!(e, Err(KvError::Config(ref m)) if m.contains("\"z\"")),
            "{e:?}"
        );
        let e = ClusterConfig::new("a", vec![]).bootstrap_map();
        assert!(matches!(e, Err(KvError::Config(_))));
        let e = ClusterConfig::new("a", vec![Member::new("a", "")]).bootstrap_map();
        assert!(matches!(e, Err(KvError::Config(ref m)) if m.contains("empty grpc")));
    }
}
