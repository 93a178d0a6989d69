//! The tower layer under `tokio::time::pause()`: statuses, headers, shared budgets, gRPC
//! rejections with RetryInfo, and the remote backend's failure modes.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response, StatusCode};
use http_body_util::Full;
use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::clock::TokioClock;
use ringkit_ratelimit::layer::{
    Backend, FailureMode, GrpcMethod, HeaderKey, LayerConfig, LocalBackend, RateLimitLayer,
    RemoteBackend,
};
use ringkit_ratelimit::store::KeyedStore;
use tonic_types::StatusExt;
use tower::{Layer, Service, ServiceExt};

type Body = Full<Bytes>;

/// A trivial service: 200 "ok".
fn ok_service()
-> impl Service<Request<()>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

/// A layer of `n` per second (fixed window) keyed by `x-api-key`, on tokio's (paused) clock.
fn layer(n: u64) -> RateLimitLayer<HeaderKey> {
    let limit = Limit::new(Algorithm::FixedWindow, n, Duration::from_secs(1), None).unwrap();
    let backend = LocalBackend::with_store(
        limit,
        Arc::new(KeyedStore::default()),
        Arc::new(TokioClock::new()),
    );
    RateLimitLayer::new(
        Backend::Local(backend),
        HeaderKey::new(HeaderName::from_static("x-api-key")),
    )
}

fn req(key: &str) -> Request<()> {
    Request::builder()
        .uri("/x")
        .header("x-api-key", key)
        .body(())
        .unwrap()
}

fn header(r: &Response<Body>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(start_paused = true)]
async fn rejects_with_429_and_headers_then_recovers() {
    let svc = layer(2).layer(ok_service());
    let r = svc.clone().oneshot(req("a")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "ratelimit-policy").as_deref(),
        Some("\"default\";q=2;w=1")
    );
    assert!(
        header(&r, "ratelimit")
            .unwrap()
            .starts_with("\"default\";r=1;t=")
    );
    svc.clone().oneshot(req("a")).await.unwrap();
    let r = svc.clone().oneshot(req("a")).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    assert!(
        header(&r, "ratelimit")
            .unwrap()
            .starts_with("\"default\";r=0;")
    );
    // Another key is not affected; a request without a key is not limited.
    assert_eq!(
        svc.clone().oneshot(req("b")).await.unwrap().status(),
        StatusCode::OK
    );
    let anonymous = Request::builder().uri("/x").body(()).unwrap();
    let r = svc.clone().oneshot(anonymous).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "ratelimit").is_none());
    // The next window.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        svc.clone().oneshot(req("a")).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test(start_paused = true)]
async fn clones_and_services_of_one_layer_share_the_budget() {
    let layer = layer(3);
    let mut a = layer.layer(ok_service());
    let b = layer.layer(ok_service());
    let c = a.clone();
    let statuses = [
        a.ready()
            .await
            .unwrap()
            .call(req("k"))
            .await
            .unwrap()
            .status(),
        b.clone().oneshot(req("k")).await.unwrap().status(),
        c.clone().oneshot(req("k")).await.unwrap().status(),
        b.oneshot(req("k")).await.unwrap().status(),
    ];
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(start_paused = true)]
async fn headers_on_allowed_responses_can_be_turned_off() {
    let config = LayerConfig {
        headers_on_allowed: false,
        policy_name: "api".into(),
        cost: 1,
    };
    let svc = layer(1).with_config(config).layer(ok_service());
    let r = svc.clone().oneshot(req("a")).await.unwrap();
    assert!(header(&r, "ratelimit").is_none());
    let r = svc.oneshot(req("a")).await.unwrap();
    assert_eq!(
        header(&r, "ratelimit-policy").as_deref(),
        Some("\"api\";q=1;w=1")
    );
}

#[tokio::test(start_paused = true)]
async fn grpc_requests_get_resource_exhausted_with_retry_info() {
    let limit = Limit::new(Algorithm::SlidingLog, 1, Duration::from_secs(10), None).unwrap();
    let backend = LocalBackend::with_store(
        limit,
        Arc::new(KeyedStore::default()),
        Arc::new(TokioClock::new()),
    );
    let svc = RateLimitLayer::new(Backend::Local(backend), GrpcMethod).layer(ok_service());
    let grpc = || {
        Request::builder()
            .uri("/pkg.Svc/Call")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap()
    };
    assert_eq!(
        svc.clone().oneshot(grpc()).await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    let r = svc.oneshot(grpc()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "gRPC errors travel in grpc-status"
    );
    let status = tonic::Status::from_header_map(r.headers()).unwrap();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("retry after 7 s"),
        "{}",
        status.message()
    );
    let retry = status.get_details_retry_info().unwrap();
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(7)));
}

/// A `RemoteBackend` towards an address where nothing listens.
async fn dead_remote(mode: FailureMode) -> RemoteBackend {
    let (listener, addr) = common::bind().await;
    drop(listener);
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    RemoteBackend::new(channel, "test", "user")
        .failure_mode(mode)
        .timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn remote_backend_fails_open_or_closed() {
    let open = RateLimitLayer::new(
        Backend::Remote(dead_remote(FailureMode::Open).await),
        HeaderKey::new(HeaderName::from_static("x-api-key")),
    );
    let r = open.layer(ok_service()).oneshot(req("a")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let closed = RateLimitLayer::new(
        Backend::Remote(dead_remote(FailureMode::Closed).await),
        HeaderKey::new(HeaderName::from_static("x-api-key")),
    );
    let r = closed.layer(ok_service()).oneshot(req("a")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn remote_backend_enforces_the_server_policy() {
    let node = common::start(common::POLICY).await;
    let channel = tonic::transport::Endpoint::from_shared(node.url())
        .unwrap()
        .connect_lazy();
    let remote = RemoteBackend::new(channel, "test", "user").timeout(Duration::from_secs(5));
    let svc = RateLimitLayer::new(
        Backend::Remote(remote),
        HeaderKey::new(HeaderName::from_static("x-api-key")),
    )
    .layer(ok_service());
    for _ in 0..5 {
        let r = svc.clone().oneshot(req("remote-user")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            header(&r, "ratelimit-policy").as_deref(),
            Some("\"default\";q=5;w=3600")
        );
    }
    let r = svc.oneshot(req("remote-user")).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&r, "retry-after").is_some());
    node.stop().await;
}
