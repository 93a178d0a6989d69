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

/// How often both ends of a connection (a server, and the cluster's peer channels) ping it once
/// it has been quiet, and how long they wait for the answer before closing it: a peer whose host
/// crashed or was cut off leaves a half-open connection that nothing else would close.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// See [`KEEPALIVE_INTERVAL`].
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

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
        if stopped.await.is_ok() {
            tokio::time::sleep(DRAIN_GRACE).await;
        } else {
            // The signal was dropped unfired: only when the server has already ended.
            std::future::pending::<()>().await;
        }
    };
    (signal, deadline)
}

/// Runs a server (`served`, given the signal of [`drain_deadline`]) until it has drained, or
/// until `deadline`.
///
/// At the deadline the server's accept loop is dropped, but tonic runs each connection in a task
/// of its own, and those still open are abandoned, not cut: each keeps its clones of the services
/// until its client goes, or keep-alive closes it (within [`KEEPALIVE_INTERVAL`] +
/// [`KEEPALIVE_TIMEOUT`] for an HTTP/2 connection; a client that never sent the HTTP/2 preface
/// has no keep-alive and lasts until TCP fails). Requests still running on them after the caller
/// has closed the store fail, or are answered from other replicas. In `kv-server` the process
/// exits right after, which ends them all.
///
/// Not bounded: a server whose `incoming` stream ends leaves its accept loop without polling the
/// signal, and then waits for its connections with no deadline. TCP listeners never end.
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
