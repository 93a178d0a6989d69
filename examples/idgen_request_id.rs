//! Stamping every request with a Snowflake `x-request-id` through tower-http: a hyper server on
//! 127.0.0.1:0 with `SetRequestIdLayer` + `PropagateRequestIdLayer`, one client call that prints
//! the header it got back and what the id says, then exit.
//!
//! The same two layers go on a tonic server with `Server::builder().layer(..)`.
//!
//! ```sh
//! cargo run -p ringkit-examples --example idgen_request_id
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use ringkit_idgen::{GeneratorConfig, Id, MemoryMarkStore, SnowflakeRequestId, SystemClock, start};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let handle = start(
        GeneratorConfig::default(),
        12,
        SystemClock,
        MemoryMarkStore::new(),
    )?;
    let layout = handle.generator().layout().clone();

    // Set the id on the way in (unless the caller sent one), echo it on the way out.
    let service = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(SnowflakeRequestId::new(
            handle.generator(),
        )))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service_fn(|req: Request<hyper::body::Incoming>| async move {
            let id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("none")
                .to_owned();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                "handled request {id}\n"
            )))))
        });

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        // One connection is enough for the demo; a real server loops on accept.
        let (stream, _) = listener.accept().await?;
        auto::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .await
            .map_err(|e| anyhow::anyhow!(e))
    });

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = client
        .request(Request::get(format!("http://{addr}/")).body(Full::default())?)
        .await?;
    let header = response
        .headers()
        .get("x-request-id")
        .ok_or_else(|| anyhow::anyhow!("no x-request-id in the response"))?
        .to_str()?
        .to_owned();
    let body = response.into_body().collect().await?.to_bytes();
    print!("server said: {}", String::from_utf8_lossy(&body));

    let id: Id = header.parse()?;
    let d = id.decode(&layout)?;
    println!(
        "x-request-id: {header} -> issued {} by worker {}, sequence {}",
        d.timestamp, d.worker, d.sequence
    );

    drop(client);
    server.await??;
    handle.shutdown()?;
    Ok(())
}
