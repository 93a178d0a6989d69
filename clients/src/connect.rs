//! Dialling a ringkit server with the settings every client here shares.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::ClientError;

/// How long a connection attempt may take before it fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Parses `endpoint` (`http://host:port`; a bare `host:port` gets `http://`) with ringkit's
/// defaults: a connect timeout and TCP_NODELAY, since every ringkit RPC is small and latency-bound.
///
/// # Errors
/// [`ClientError::BadEndpoint`] when the text is not a URI.
pub fn endpoint(endpoint: &str) -> Result<Endpoint, ClientError> {
    let uri = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    Endpoint::from_shared(uri)
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
        .map_err(|source| ClientError::BadEndpoint {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// Connects to `endpoint` now, so that a wrong address fails here rather than on the first call.
///
/// # Errors
/// [`ClientError::BadEndpoint`] or [`ClientError::Connect`].
pub async fn connect(endpoint_text: &str) -> Result<Channel, ClientError> {
    endpoint(endpoint_text)?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            endpoint: endpoint_text.to_owned(),
            source,
        })
}
