//! Node identities and the attributes placement reads (weight, zone).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The name of a physical node, as every ring and diff refers to it.
///
/// Cheap to clone (an `Arc<str>`), ordered by its bytes (rings sort nodes by id, which is what
/// makes placement independent of the order nodes were listed in), and serialised as a plain
/// string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Wraps a name; prefer `NodeId::from("...")` or `.into()` at call sites.
    #[must_use]
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The name as a string slice.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({:?})", &*self.0)
    }
}

impl From<&str> for NodeId {
    fn from(id: &str) -> Self {
        Self(Arc::from(id))
    }
}

impl From<String> for NodeId {
    fn from(id: String) -> Self {
        Self(Arc::from(id))
    }
}

impl From<&String> for NodeId {
    fn from(id: &String) -> Self {
        Self(Arc::from(id.as_str()))
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

fn default_weight() -> u32 {
    1
}

/// A physical node as placement sees it: who it is, how much it should hold, and where it fails.
///
/// `weight` is relative: a node of weight 2 is meant to own twice the keyspace of a node of
/// weight 1 (each strategy documents how closely it gets there). `zone` is a failure domain
/// (rack, availability zone): preference lists spread their replicas over as many zones as exist.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// Unique name of the node; rings refuse two nodes with the same id.
    pub id: NodeId,
    /// Relative capacity, at least 1 (1 when deserialised without one).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Failure domain, if the deployment has them; nodes without a zone share one unnamed zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl Node {
    /// A node of weight 1 and no zone.
    #[must_use]
    pub fn new(id: impl Into<NodeId>) -> Self {
        Self {
            id: id.into(),
            weight: 1,
            zone: None,
        }
    }

    /// Sets the relative weight (validated when a ring is built: 0 is refused).
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// Puts the node in a failure domain.
    #[must_use]
    pub fn with_zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = Some(zone.into());
        self
    }
}

impl From<&str> for Node {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<NodeId> for Node {
    fn from(id: NodeId) -> Self {
        Self::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_round_trips_as_a_plain_string() {
        let id = NodeId::from("node-a");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"node-a\"");
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
    }

    #[test]
    fn node_defaults_weight_to_one_when_deserialised() {
        let node: Node = serde_json::from_str(r#"{"id":"a"}"#).unwrap();
        assert_eq!(node, Node::new("a"));
        let zoned = Node::new("b").with_weight(3).with_zone("eu-1");
        let back: Node = serde_json::from_str(&serde_json::to_string(&zoned).unwrap()).unwrap();
        assert_eq!(back, zoned);
    }
}
