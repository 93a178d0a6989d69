//! Sans-IO routing: which node owns a key, skipping nodes recently seen down.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringkit_hashring::{Node, NodeId, PartitionedRing, Placement, RingConfig};

use crate::error::Error;

/// The ring and the down marks. Time is passed in.
#[derive(Debug)]
pub struct Routing {
    /// Placement of keys over the static member list.
    ring: PartitionedRing,
    /// This node (never marked down: it is always the last resort).
    me: NodeId,
    /// Nodes skipped until the instant given.
    down_until: HashMap<NodeId, Instant>,
}

impl Routing {
    /// Routing over `members` (this node included).
    ///
    /// # Errors
    /// [`Error::Config`] if the ring cannot be built.
    pub fn new(me: &str, members: impl IntoIterator<Item = String>) -> Result<Self, Error> {
        let nodes: Vec<Node> = members.into_iter().map(Node::new).collect();
        let ring = PartitionedRing::new(RingConfig::for_cluster_size(nodes.len()), nodes)
            .map_err(|e| Error::Config(format!("cluster ring: {e}")))?;
        Ok(Routing {
            ring,
            me: NodeId::from(me),
            down_until: HashMap::new(),
        })
    }

    /// This node's id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The owner of `key` at `now`: the first node of its preference list not marked down.
    pub fn route(&self, key: &[u8], now: Instant) -> NodeId {
        let n = self.ring.nodes().len();
        self.ring
            .preference_list(key, n)
            .find(|id| **id == self.me || !self.is_down(id, now))
            .cloned()
            .unwrap_or_else(|| self.me.clone())
    }

    /// The key's owner when every node is up.
    pub fn owner(&self, key: &[u8]) -> Option<&NodeId> {
        self.ring.owner(key)
    }

    /// Marks `node` down for `cooldown` from `now`: its keys go to the next node of their
    /// preference lists, whose counters start fresh.
    pub fn mark_down(&mut self, node: &NodeId, now: Instant, cooldown: Duration) {
        if *node != self.me {
            self.down_until.insert(node.clone(), now + cooldown);
        }
    }

    /// Whether `node` is being skipped at `now`.
    pub fn is_down(&self, node: &NodeId, now: Instant) -> bool {
        self.down_until.get(node).is_some_and(|until| now < *until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_owner_hands_over_to_the_next_node_then_comes_back() {
        let mut r = Routing::new("a", ["a", "b", "c"].map(String::from)).unwrap();
        let now = Instant::now();
        // Find a key owned by b.
        let key = (0u32..)
            .map(|i| i.to_be_bytes())
            .find(|k| r.owner(k).map(|n| n.as_str()) == Some("b"))
            .unwrap();
        assert_eq!(r.route(&key, now).as_str(), "b");
        r.mark_down(&NodeId::from("b"), now, Duration::from_secs(2));
        let next = r.route(&key, now);
        assert_ne!(next.as_str(), "b");
        assert_eq!(
            r.route(&key, now + Duration::from_secs(2)).as_str(),
            "b",
            "cooldown over"
        );
        r.mark_down(&NodeId::from("a"), now, Duration::from_secs(2));
        assert!(!r.is_down(&NodeId::from("a"), now), "self is never down");
    }
}
