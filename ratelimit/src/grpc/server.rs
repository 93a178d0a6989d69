//! Serving every service of a node on one listener: checks, admin, Envoy, cluster peer, health
//! and reflection. The caller binds the socket and owns the shutdown signal.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use super::admin::AdminService;
use super::envoy::EnvoyService;
use super::pb::FILE_DESCRIPTOR_SET;
use super::pb::envoy::service::ratelimit::v3::rate_limit_service_server::RateLimitServiceServer;
use super::pb::ringkit::ratelimit::v1::cluster_peer_server::ClusterPeerServer;
use super::pb::ringkit::ratelimit::v1::rate_limit_admin_server::RateLimitAdminServer;
use super::pb::ringkit::ratelimit::v1::rate_limiter_server::RateLimiterServer;
use super::peer::PeerService;
use super::v1::CheckService;
use crate::counter::Counter;
use crate::error::Error;
use crate::limiter::RateLimiter;

/// How long a stopping server waits for its clients to finish and close their connections.
/// tonic's graceful shutdown waits for every connection, and one whose client never answers
/// (a crashed host, a bare TCP health probe) would otherwise keep the server from ever stopping.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// What a node serves besides the checks.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Serve `RateLimitAdmin` (on by default; turn off for a listener reachable by clients).
    pub admin: bool,
    /// Add the IETF headers to Envoy's `response_headers_to_add`.
    pub envoy_response_headers: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            admin: true,
            envoy_response_headers: true,
        }
    }
}

/// Serves `limiter` on `incoming` until `shutdown` resolves, then drains in-flight calls (for at
/// most [`DRAIN_GRACE`]: connections still open then are abandoned to end on their own).
///
/// # Errors
/// [`Error::Unavailable`] if the transport fails (not for individual bad requests).
pub async fn serve<I, IO, IE, F>(
    limiter: RateLimiter,
    options: ServeOptions,
    incoming: I,
    shutdown: F,
) -> Result<(), Error>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    F: Future<Output = ()>,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<RateLimiterServer<CheckService>>()
        .await;
    health
        .set_serving::<RateLimitServiceServer<EnvoyService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Config(format!("reflection: {e}")))?;

    let admin = options
        .admin
        .then(|| AdminService::new(limiter.clone()).into_server());
    if admin.is_some() {
        health
            .set_serving::<RateLimitAdminServer<AdminService>>()
            .await;
    }
    // The peer protocol only in cluster mode: it applies raw operations (including resets) to
    // the store, so a single node has no reason to expose it.
    let peer = match limiter.counter() {
        Counter::Cluster(cluster) => Some(PeerService::new(cluster.local().clone()).into_server()),
        Counter::Local(_) => None,
    };
    if peer.is_some() {
        health.set_serving::<ClusterPeerServer<PeerService>>().await;
    }

    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let drain_deadline = async move {
        // The signal is dropped unfired only once the server has ended on its own.
        if stopped.await.is_ok() {
            tokio::time::sleep(DRAIN_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(CheckService::new(limiter.clone()).into_server())
        .add_service(
            EnvoyService::new(limiter.clone(), options.envoy_response_headers).into_server(),
        )
        .add_optional_service(peer)
        .add_optional_service(admin)
        .serve_with_incoming_shutdown(incoming, shutdown);
    tokio::select! {
        served = served => served.map_err(|e| Error::Unavailable(format!("gRPC server: {e}"))),
        () = drain_deadline => {
            tracing::warn!(
                grace = ?DRAIN_GRACE,
                "clients still connected after the drain grace; no longer waiting for them"
            );
            Ok(())
        }
    }
}
