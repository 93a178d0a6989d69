//! The crate's one error type.

use crate::NodeId;

/// Everything that can go wrong building or changing a placement.
///
/// Lookups never fail (a built strategy always has at least one node); only construction, changes
/// and deserialisation return this. Each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashRingError {
    /// The strategy was given no nodes, or the last node was removed.
    #[error(
        "the ring has no nodes: give it at least one node (a ring cannot place keys on nothing)"
    )]
    EmptyRing,
    /// A node's weight is outside what the strategy accepts.
    #[error("node {node} has weight {weight}: {reason}")]
    BadWeight {
        /// The offending node.
        node: NodeId,
        /// The weight it was given.
        weight: u32,
        /// What is allowed instead.
        reason: &'static str,
    },
    /// A node id is unusable (for instance empty).
    #[error("bad node id {node:?}: {reason}")]
    BadNodeId {
        /// The offending id.
        node: NodeId,
        /// What is allowed instead.
        reason: &'static str,
    },
    /// A configuration value is out of range; the message names the field and the fix.
    #[error("bad ring configuration: {field}: {reason}")]
    BadConfig {
        /// The configuration field at fault.
        field: &'static str,
        /// What is wrong and what to use instead.
        reason: String,
    },
    /// The same node id appears twice, or an added node is already a member.
    #[error(
        "node {node} is already in the ring: node ids must be unique (remove it first to change it)"
    )]
    DuplicateNode {
        /// The repeated id.
        node: NodeId,
    },
    /// A node named in a change is not a member.
    #[error("node {node} is not in the ring: check the id against `nodes()`")]
    UnknownNode {
        /// The missing id.
        node: NodeId,
    },
    /// A partition number (typically from a peer or a request) is not below the partition count.
    #[error("partition {partition} does not exist: this ring has partitions 0..{partitions}")]
    UnknownPartition {
        /// The number given.
        partition: u32,
        /// The ring's partition count.
        partitions: u32,
    },
    /// The gossip layer refused an input (a malformed or foreign datagram, an oversize
    /// announcement): the driver logs it and carries on.
    #[error("membership: {reason}")]
    Membership {
        /// What foca or the announcement codec reported.
        reason: String,
    },
    /// A deserialised ring breaks an invariant (index out of range, repeated replica, ...).
    #[error(
        "ring data is inconsistent: {reason}; it was not produced by this crate or was altered"
    )]
    CorruptRing {
        /// The broken invariant.
        reason: String,
    },
}

#[cfg(feature = "tonic")]
impl From<HashRingError> for tonic::Status {
    /// Bad input is `INVALID_ARGUMENT`; a duplicate or missing node is `ALREADY_EXISTS` or
    /// `NOT_FOUND`; an empty ring is `UNAVAILABLE` (nothing can serve until a node joins). The
    /// message is the error's own, which says what to change.
    fn from(err: HashRingError) -> Self {
        let code = match &err {
            HashRingError::EmptyRing => tonic::Code::Unavailable,
            HashRingError::DuplicateNode { .. } => tonic::Code::AlreadyExists,
            HashRingError::UnknownNode { .. } | HashRingError::UnknownPartition { .. } => {
                tonic::Code::NotFound
            }
            _ => tonic::Code::InvalidArgument,
        };
        tonic::Status::new(code, err.to_string())
    }
}

#[cfg(all(test, feature = "tonic"))]
mod tests {
    use super::*;

    #[test]
    fn maps_to_grpc_codes() {
        let status = tonic::Status::from(HashRingError::UnknownNode {
            node: NodeId::from("x"),
        });
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().contains("not in the ring"));
        let status = tonic::Status::from(HashRingError::BadConfig {
            field: "partitions",
            reason: "3 is not a power of two".into(),
        });
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
