//! Ring-aware routing: send each key's request straight to the node that owns it.

use std::collections::HashMap;
use std::sync::Arc;

use ringkit_hashring::{Node, NodeId, PartitionedRing, Placement, RingConfig};
use tonic::transport::Channel;

use crate::{ClientError, connect};

/// A channel per cluster member, and the ring that says which member owns a key.
///
/// A keyed ringkit service (a rate limiter cluster, a kv cluster) accepts a request on any node and
/// forwards it to the key's owner. A client that knows the ring saves that hop: it asks the
/// [`RingRouter`] for the key's owner and calls it directly. The ring must be the one the cluster
/// uses; [`RingRouter::static_members`] builds the ring a static-member cluster builds from the
/// same member ids.
///
/// Clones are cheap and share the channels (tonic channels multiplex one HTTP/2 connection).
#[derive(Clone, Debug)]
pub struct RingRouter {
    /// Which member owns a key, and the fallbacks after it.
    ring: Arc<PartitionedRing>,
    /// One lazily connected channel per member, so a dead member costs nothing until it is asked.
    channels: Arc<HashMap<NodeId, Channel>>,
}

impl RingRouter {
    /// Routes over `ring`, dialling each of its nodes at the endpoint given for it
    /// (`http://host:port`, or `host:port`). Connections open lazily, on first use.
    ///
    /// Call it inside a tokio runtime: lazy channels spawn their connection task there.
    ///
    /// # Errors
    /// [`ClientError::BadEndpoint`] for an endpoint that is not a URI, and
    /// [`ClientError::MissingEndpoint`] for a ring node without one.
    pub fn from_ring<I, K, E>(ring: PartitionedRing, endpoints: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (K, E)>,
        K: Into<NodeId>,
        E: AsRef<str>,
    {
        let mut given: HashMap<NodeId, E> = endpoints
            .into_iter()
            .map(|(id, endpoint)| (id.into(), endpoint))
            .collect();
        let mut channels = HashMap::with_capacity(ring.nodes().len());
        for node in ring.nodes() {
            let endpoint = given
                .remove(&node.id)
                .ok_or_else(|| ClientError::MissingEndpoint(node.id.clone()))?;
            let channel = connect::endpoint(endpoint.as_ref())?.connect_lazy();
            channels.insert(node.id.clone(), channel);
        }
        Ok(Self {
            ring: Arc::new(ring),
            channels: Arc::new(channels),
        })
    }

    /// Routes over a static member list `(node id, endpoint)`, with the ring a static-member
    /// ringkit cluster builds from the same ids: equal weights, no zones and
    /// [`RingConfig::for_cluster_size`] partitions.
    ///
    /// # Errors
    /// [`ClientError::Ring`] for an empty list or a repeated id, and the errors of
    /// [`RingRouter::from_ring`].
    pub fn static_members<I, K, E>(members: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (K, E)>,
        K: Into<NodeId>,
        E: AsRef<str>,
    {
        let members: Vec<(NodeId, E)> = members
            .into_iter()
            .map(|(id, endpoint)| (id.into(), endpoint))
            .collect();
        let nodes: Vec<Node> = members
            .iter()
            .map(|(id, _)| Node::new(id.clone()))
            .collect();
        let ring = PartitionedRing::new(RingConfig::for_cluster_size(nodes.len()), nodes)?;
        Self::from_ring(ring, members)
    }

    /// The ring this router follows.
    pub fn ring(&self) -> &PartitionedRing {
        &self.ring
    }

    /// The owner of `key` and a channel to it. `None` only for an empty ring, which
    /// [`RingRouter::from_ring`] cannot build.
    pub fn owner(&self, key: &[u8]) -> Option<(&NodeId, Channel)> {
        let id = self.ring.owner(key)?;
        Some((id, self.channel(id)?))
    }

    /// The first `n` nodes of `key`'s preference list, then the others as fallbacks, each with a
    /// channel: try them in order when the owner does not answer.
    pub fn preference_list<'a>(
        &'a self,
        key: &[u8],
        n: usize,
    ) -> impl Iterator<Item = (&'a NodeId, Channel)> + 'a {
        self.ring
            .preference_list(key, n)
            .filter_map(|id| Some((id, self.channel(id)?)))
    }

    /// The channel to member `id`, if it is one.
    pub fn channel(&self, id: &NodeId) -> Option<Channel> {
        self.channels.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> RingRouter {
        RingRouter::static_members([
            ("a", "127.0.0.1:1"),
            ("b", "127.0.0.1:2"),
            ("c", "http://127.0.0.1:3"),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn routes_each_key_to_the_owner_the_ring_names() {
        let router = three();
        let ring = PartitionedRing::new(
            RingConfig::for_cluster_size(3),
            ["c", "a", "b"].map(Node::new),
        )
        .unwrap();
        for i in 0..200u32 {
            let key = i.to_be_bytes();
            let (id, _) = router.owner(&key).unwrap();
            assert_eq!(Some(id), ring.owner(&key));
        }
    }

    #[tokio::test]
    async fn preference_list_names_every_member_once() {
        let router = three();
        let mut ids: Vec<String> = router
            .preference_list(b"user:42", 3)
            .map(|(id, _)| id.to_string())
            .collect();
        ids.sort();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_ring_node_without_an_endpoint_is_refused() {
        let ring = PartitionedRing::new(RingConfig::for_cluster_size(2), ["a", "b"].map(Node::new))
            .unwrap();
        let err = RingRouter::from_ring(ring, [("a", "127.0.0.1:1")]).unwrap_err();
        assert!(matches!(err, ClientError::MissingEndpoint(id) if id.as_str() == "b"));
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_refused_with_its_text() {
        let err = RingRouter::static_members([("a", "not a uri")]).unwrap_err();
        assert!(err.to_string().contains("not a uri"), "{err}");
    }

    #[test]
    fn an_empty_member_list_is_refused() {
        let none: [(&str, &str); 0] = [];
        assert!(matches!(
            RingRouter::static_members(none),
            Err(ClientError::Ring(_))
        ));
    }
}
