//! A tonic server behind `RateLimitLayer`: one budget per gRPC method, 2 calls per minute
//! (sliding window). The server here is the gRPC health service, the simplest one at hand; your
//! own services go behind `Server::builder().layer(..)` the same way. The third call is refused
//! with `RESOURCE_EXHAUSTED`, and the client reads how long to wait from `google.rpc.RetryInfo`.
//!
//! ```sh
//! cargo run -p ringkit-examples --example ratelimit_tonic
//! ```

use std::time::Duration;

use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::layer::{GrpcMethod, RateLimitLayer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Endpoint, Server, server::TcpIncoming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let limit = Limit::new(Algorithm::SlidingWindow, 2, Duration::from_secs(60), None)?;
    let (_reporter, health) = tonic_health::server::health_reporter();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .layer(RateLimitLayer::local(limit, GrpcMethod))
            .add_service(health)
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );

    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    for i in 1..=3 {
        match client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(r) => println!("call {i}: OK ({:?})", r.into_inner().status()),
            Err(status) => {
                let wait = status.get_details_retry_info().and_then(|r| r.retry_delay);
                println!(
                    "call {i}: {:?}: {} (RetryInfo.retry_delay = {wait:?})",
                    status.code(),
                    status.message()
                );
            }
        }
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
