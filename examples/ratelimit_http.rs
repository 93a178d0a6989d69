//! A hyper HTTP server behind `RateLimitLayer`: 3 requests per 10 s per API key, token bucket.
//! The client sends 5 requests as `alice` and 1 as `bob`, prints each status and the IETF
//! `RateLimit-Policy`/`RateLimit`/`Retry-After` headers, then exits.
//!
//! Axum works the same way: `Router::new().route(..).layer(RateLimitLayer::local(..))`.
//!
//! ```sh
//! cargo run -p ringkit-examples --example ratelimit_http
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use http_body_util::Full;
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::layer::{HeaderKey, LayerConfig, RateLimitLayer};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 3 tokens per 10 s, bursts of 3, one bucket per x-api-key.
    let limit = Limit::new(Algorithm::TokenBucket, 3, Duration::from_secs(10), Some(3))?;
    let layer = RateLimitLayer::local(limit, HeaderKey::new(HeaderName::from_static("x-api-key")))
        .with_config(LayerConfig {
            policy_name: "api".into(),
            ..LayerConfig::default()
        });

    let service = ServiceBuilder::new().layer(layer).service_fn(
        |_req: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello\n"))))
        },
    );

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        // Every connection gets a clone of the service; clones share the budgets.
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let svc = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    for (i, key) in ["alice", "alice", "alice", "alice", "alice", "bob"]
        .iter()
        .enumerate()
    {
        let request = Request::get(format!("http://{addr}/"))
            .header("x-api-key", *key)
            .body(Full::default())?;
        let response = client.request(request).await?;
        let h = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "#{} {key:<5} -> {} | RateLimit-Policy: {} | RateLimit: {} | Retry-After: {}",
            i + 1,
            response.status(),
            h("ratelimit-policy"),
            h("ratelimit"),
            h("retry-after"),
        );
    }
    server.abort();
    Ok(())
}
