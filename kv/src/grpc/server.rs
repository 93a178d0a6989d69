//! Serving a node over gRPC on a listener or any stream of connections the caller provides.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpIncoming};

use super::pb;
use super::service::KvService;
use crate::error::KvError;
use crate::node::KvNode;
use crate::storage::Storage;

/// Room for protobuf framing on top of the value limit.
const MESSAGE_OVERHEAD: usize = 1024 * 1024;
/// Smallest message limit: enough for batches of small values.
const MIN_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The largest gRPC message the client API accepts and sends for `node`'s value limit.
pub(crate) fn message_limit<S: Storage>(node: &KvNode<S>) -> usize {
    node.config()
        .limits
        .max_value_bytes
        .saturating_add(MESSAGE_OVERHEAD)
        .max(MIN_MESSAGE_BYTES)
}

/// Serves `node` on the connections `incoming` yields until `shutdown` completes, then drains:
/// in-flight requests finish, queued writes are committed and synced, and the store is closed.
///
/// Alongside `ringkit.kv.v1.Kv` it serves `grpc.health.v1.Health` (SERVING while up) and gRPC
/// reflection, and runs background maintenance (TTL purge, tombstone reaping).
///
/// The caller owns the socket: a `TcpListener` bound to port 0 in tests, a real address in the
/// binary, or turmoil's simulated network.
///
/// # Errors
/// Transport failures; the store is closed in every case.
pub async fn serve<S, I, IO, IE, F>(
    node: KvNode<S>,
    incoming: I,
    shutdown: F,
) -> Result<(), KvError>
where
    S: Storage,
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = ()>,
{
    let limit = message_limit(&node);
    let kv = pb::kv_server::KvServer::new(KvService::new(node.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<pb::kv_server::KvServer<KvService<S>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| KvError::Internal(format!("reflection descriptors: {e}")))?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let maintenance = {
        let node = node.clone();
        tokio::spawn(async move {
            node.run_maintenance(async {
                let _ = stop_rx.await;
            })
            .await;
        })
    };

    tracing::info!(node_id = %node.config().node_id, actor = %node.storage().actor(), "kv node serving");
    let served = tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(kv)
        .serve_with_incoming_shutdown(incoming, async {
            shutdown.await;
            reporter
                .set_not_serving::<pb::kv_server::KvServer<KvService<S>>>()
                .await;
        })
        .await;

    let _ = stop_tx.send(());
    let _ = maintenance.await;
    node.close().await;
    tracing::info!("kv node stopped; writer drained");
    served.map_err(KvError::from)
}

/// [`serve`] on a bound TCP listener, with `TCP_NODELAY` on every connection (small replies
/// must not wait for Nagle's algorithm).
///
/// # Errors
/// As [`serve`].
pub async fn serve_listener<S, F>(
    node: KvNode<S>,
    listener: tokio::net::TcpListener,
    shutdown: F,
) -> Result<(), KvError>
where
    S: Storage,
    F: Future<Output = ()>,
{
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    serve(node, incoming, shutdown).await
}
