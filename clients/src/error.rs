//! The one error type of this crate.

/// What can go wrong before a request is sent.
///
/// Errors returned by a server arrive as [`tonic::Status`] from the stubs themselves.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// An endpoint is not a URI tonic can dial, e.g. a bare `host` without a port.
    #[error("endpoint `{endpoint}` is not a valid URI (write it as http://host:port): {source}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        #[source]
        source: tonic::transport::Error,
    },
    /// Connecting to an endpoint failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint dialled.
        endpoint: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A node of the ring was given no endpoint to dial.
    #[error("ring node `{0}` has no endpoint: give every ring member an address")]
    MissingEndpoint(ringkit_hashring::NodeId),
    /// The member list does not make a ring (empty, or a node named twice).
    #[error("cannot build the ring of members: {0}")]
    Ring(#[from] ringkit_hashring::HashRingError),
}
