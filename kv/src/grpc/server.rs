//! Serving a node over gRPC on a listener or any stream of connections the caller provides.

use std::future::Future;
use std::time::Duration;

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

/// How often a server pings a client connection that has been quiet, and how long it waits for
/// the answer before closing it: a client whose host crashed or was cut off leaves a half-open
/// connection nothing else would close. The same figures as the cluster's peer channels.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_INTERVAL`].
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stopping server waits for its clients to finish their requests and close their
/// connections. A graceful HTTP/2 shutdown waits for every client to go, and a client that never
/// answers the server's GOAWAY (its host crashed, or a partition cut it off) would hold the
/// server, its store and its gossip open for as long as its connection lasts.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// A tonic server builder with the settings every kv server shares (keepalive pings).
pub(crate) fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// Splits `shutdown` into the signal a server is given and a deadline that completes
/// [`DRAIN_GRACE`] after the signal has: pass both to [`until_drained`].
pub(crate) fn drain_deadline<F: Future<Output = ()>>(
    shutdown: F,
) -> (impl Future<Output = ()>, impl Future<Output = ()>) {
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let deadline = async move {
        match stopped.await {
            Ok(()) => tokio::time::sleep(DRAIN_GRACE).await,
            // The server ended without being asked to: it is not draining.
            Err(_) => std::future::pending().await,
        }
    };
    (signal, deadline)
}

/// Runs a server (`served`, given the signal of [`drain_deadline`]) until it has drained, or
/// until `deadline`. Connections still open then are left to end on their own (their requests
/// fail once the store is closed) while the caller stops its tasks and closes the store.
pub(crate) async fn until_drained<E>(
    served: impl Future<Output = Result<(), E>>,
    deadline: impl Future<Output = ()>,
) -> Result<(), E> {
    tokio::select! {
        served = served => served,
        () = deadline => {
            tracing::warn!(
                grace = ?DRAIN_GRACE,
                "clients still connected after the drain grace; no longer waiting for them"
            );
            Ok(())
        }
    }
}

/// The largest gRPC message the client API accepts and sends for `node`'s value limit.
pub(crate) fn message_limit<S: Storage>(node: &KvNode<S>) -> usize {
    node.config()
        .limits
        .max_value_bytes
        .saturating_add(MESSAGE_OVERHEAD)
        .max(MIN_MESSAGE_BYTES)
}

/// Serves `node` on the connections `incoming` yields until `shutdown` completes, then drains:
/// in-flight requests finish (for at most [`DRAIN_GRACE`]), queued writes are committed and
/// synced, and the store is closed.
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
    let (signal, deadline) = drain_deadline(async {
        shutdown.await;
        reporter
            .set_not_serving::<pb::kv_server::KvServer<KvService<S>>>()
            .await;
    });
    let served = until_drained(
        server_builder()
            .add_service(health)
            .add_service(reflection)
            .add_service(kv)
            .serve_with_incoming_shutdown(incoming, signal),
        deadline,
    )
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
