//! Tower layer overhead on a trivial service: the same request through the bare service and
//! through `RateLimitLayer` (local backend, always admitting), with and without headers on
//! allowed responses. The futures are ready at once, so no executor is involved.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use http::{HeaderName, Request, Response};
use http_body_util::Full;
use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::layer::{HeaderKey, LayerConfig, RateLimitLayer};
use tower::{Layer, Service};

fn trivial()
-> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_r: Request<()>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

fn request() -> Request<()> {
    Request::builder()
        .uri("/api")
        .header("x-api-key", "tenant-42")
        .body(())
        .unwrap()
}

fn run<S: Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible>>(svc: &mut S) {
    let response = svc.call(request()).now_or_never().unwrap().unwrap();
    black_box(response);
}

fn overhead(c: &mut Criterion) {
    let mut g = c.benchmark_group("tower_layer_overhead");
    let limit = Limit::new(
        Algorithm::TokenBucket,
        100_000_000,
        Duration::from_secs(1),
        Some(1_000_000),
    )
    .unwrap();
    let key = || HeaderKey::new(HeaderName::from_static("x-api-key"));

    let mut bare = trivial();
    g.bench_function("bare_service", |b| b.iter(|| run(&mut bare)));

    let mut limited = RateLimitLayer::local(limit, key()).layer(trivial());
    g.bench_function("rate_limited_with_headers", |b| {
        b.iter(|| run(&mut limited))
    });

    let config = LayerConfig {
        headers_on_allowed: false,
        ..LayerConfig::default()
    };
    let mut quiet = RateLimitLayer::local(limit, key())
        .with_config(config)
        .layer(trivial());
    g.bench_function("rate_limited_no_headers", |b| b.iter(|| run(&mut quiet)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = overhead
}
criterion_main!(benches);
