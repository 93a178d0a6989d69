//! `serve`: the gRPC server on a caller-provided listener or incoming stream, with health and
//! reflection. It never binds a socket itself, so tests use port 0 and simulations their own I/O.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::transport::{Server, server::Connected, server::TcpIncoming};

use crate::{Clock, Error, Result};

use super::{IdGenService, pb};

/// How long a stopping server waits for its clients to finish and close their connections.
/// tonic's graceful shutdown waits for every connection, and one whose client never answers
/// (a crashed host, a bare TCP health probe) would otherwise keep the server from ever stopping.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Serves `ringkit.idgen.v1.IdGen`, `grpc.health.v1.Health` and server reflection on `incoming`
/// until `shutdown` resolves, then drains in-flight calls and returns (after at most
/// [`DRAIN_GRACE`]: connections still open then are abandoned to end on their own).
///
/// Health reports `SERVING` for `ringkit.idgen.v1.IdGen` (and the server as a whole) while the
/// server runs and `NOT_SERVING` once shutdown begins.
///
/// # Errors
/// [`Error::Transport`] if the server fails.
pub async fn serve<C, I, IO, IE, F>(
    service: IdGenService<C>,
    incoming: I,
    shutdown: F,
) -> Result<()>
where
    C: Clock,
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = ()>,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::id_gen_server::IdGenServer<IdGenService<C>>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::InvalidConfig(format!("reflection descriptor: {e}")))?;

    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
        health
            .set_not_serving::<pb::id_gen_server::IdGenServer<IdGenService<C>>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };

    let served = Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown);
    let drain_deadline = async move {
        // The signal is dropped unfired only once the server has ended on its own.
        if stopped.await.is_ok() {
            tokio::time::sleep(DRAIN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = served => served?,
        () = drain_deadline => tracing::warn!(
            grace = ?DRAIN_GRACE,
            "clients still connected after the drain grace; no longer waiting for them"
        ),
    }
    Ok(())
}

/// [`serve`] on a bound TCP listener, with `TCP_NODELAY` (small unary replies must not wait for
/// Nagle's algorithm).
///
/// # Errors
/// As [`serve`].
pub async fn serve_listener<C, F>(
    service: IdGenService<C>,
    listener: TcpListener,
    shutdown: F,
) -> Result<()>
where
    C: Clock,
    F: Future<Output = ()>,
{
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    serve(service, incoming, shutdown).await
}
