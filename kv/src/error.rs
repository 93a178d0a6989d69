//! The crate's error type and its mapping to gRPC status codes.

use std::sync::Arc;

use crate::model::{ContextError, LimitError, WireError, WriteRejection};

/// Everything that can go wrong in ringkit-kv.
///
/// Sources that are not `Clone` are held in an `Arc`, because one failed group commit fails every
/// request in it with the same error.
#[derive(Clone, Debug, thiserror::Error)]
pub enum KvError {
    /// A key, value, batch or page size broke a configured limit (the message names it).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A context token was malformed, altered, or issued for another key.
    #[error(transparent)]
    InvalidContext(#[from] ContextError),
    /// A scan cursor was malformed, altered, or belongs to another scan.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// Some other request field is invalid (the message says which and why).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The data model refused the write (too many siblings, a context with forged dots).
    #[error(transparent)]
    Rejected(#[from] WriteRejection),
    /// SQLite reported an error.
    #[error("storage error: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    /// A stored row does not decode: the database was altered outside ringkit or is damaged.
    #[error("stored data is corrupt ({what}): {reason}")]
    Corrupt {
        /// Which row or field.
        what: String,
        /// What the decoder found.
        reason: WireError,
    },
    /// The store is shut down or its worker threads are gone.
    #[error("storage is closed")]
    Closed,
    /// A filesystem operation failed (creating the data directory, for instance).
    #[error("i/o error: {0}")]
    Io(Arc<std::io::Error>),
    /// The data directory belongs to a different node, or its metadata is unusable.
    #[error("data directory identity problem: {0}")]
    Identity(String),
    /// A configuration value is invalid (the message names the field).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A broken internal invariant (a bug): reported instead of panicking.
    #[error("internal error: {0}")]
    Internal(String),
    /// The gRPC transport failed (the listener, a connection).
    #[error("transport error: {0}")]
    Transport(Arc<tonic::transport::Error>),
    /// A node id that is not a member of the current cluster map.
    #[error("unknown cluster node {0:?}")]
    UnknownNode(String),
    /// A peer replica answered a cluster call with an error.
    #[error("peer {node} failed: {status:?}: {message}")]
    Peer {
        /// The peer's node id.
        node: String,
        /// The gRPC code it returned.
        status: tonic::Code,
        /// Its message.
        message: String,
    },
    /// A peer replica did not answer within the per-replica timeout.
    #[error("peer {node} timed out")]
    Timeout {
        /// The peer's node id.
        node: String,
    },
    /// A ring change (join, leave, remove) cannot be applied in the cluster's current state; the
    /// message says why and when to retry (for instance: transfers still in progress).
    #[error("ring change refused: {0}")]
    RingChange(String),
    /// Too few replicas answered for the request's quorum; the message says how many did, of
    /// how many, and which timed out or failed. A write may still have reached some replicas.
    #[error("quorum not reached: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for KvError {
    fn from(e: rusqlite::Error) -> Self {
        KvError::Sqlite(Arc::new(e))
    }
}

impl From<std::io::Error> for KvError {
    fn from(e: std::io::Error) -> Self {
        KvError::Io(Arc::new(e))
    }
}

impl From<tonic::transport::Error> for KvError {
    fn from(e: tonic::transport::Error) -> Self {
        KvError::Transport(Arc::new(e))
    }
}

impl KvError {
    /// The gRPC code a client should see for this error.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            KvError::Limit(_)
            | KvError::InvalidContext(_)
            | KvError::InvalidCursor(_)
            | KvError::InvalidArgument(_)
            | KvError::Config(_) => Code::InvalidArgument,
            KvError::Rejected(WriteRejection::TooManySiblings { .. }) => Code::FailedPrecondition,
            KvError::Rejected(WriteRejection::ContextFromFuture { .. }) => Code::InvalidArgument,
            KvError::Rejected(WriteRejection::CounterExhausted) => Code::ResourceExhausted,
            KvError::Corrupt { .. } => Code::DataLoss,
            KvError::Closed
            | KvError::Transport(_)
            | KvError::UnknownNode(_)
            | KvError::Timeout { .. }
            | KvError::Unavailable(_) => Code::Unavailable,
            KvError::Peer { status, .. } => *status,
            KvError::Identity(_) | KvError::RingChange(_) => Code::FailedPrecondition,
            KvError::Sqlite(_) | KvError::Io(_) | KvError::Internal(_) => Code::Internal,
        }
    }
}

impl From<KvError> for tonic::Status {
    fn from(e: KvError) -> Self {
        tonic::Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_invalid_argument_with_the_limit() {
        let s = tonic::Status::from(KvError::from(LimitError::ValueTooLarge { len: 5, max: 4 }));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(s.message().contains("limit of 4 bytes"));
        let s = tonic::Status::from(KvError::from(WriteRejection::TooManySiblings {
            siblings: 3,
            max: 2,
        }));
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    }
}
