//! A tower-http [`MakeRequestId`] that stamps `x-request-id` with a Snowflake.
//!
//! Unlike a random UUID, the id sorts by time and says which worker saw the request, and it is
//! 8 bytes in a database. It works on any `http` service: hyper, axum, and tonic servers (tonic's
//! `Server::builder().layer(..)`).

use http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::{Clock, IdGenerator, SystemClock, id::Encoding};

/// Makes request ids from an [`IdGenerator`].
///
/// Use it with `SetRequestIdLayer::x_request_id(SnowflakeRequestId::new(generator))` and a
/// `PropagateRequestIdLayer::x_request_id()` to echo the id in the response. A request that
/// already carries `x-request-id` keeps it (tower-http's rule).
///
/// It never waits: if the worker has spent this tick's sequence (more than 4,096 requests in one
/// millisecond with the classic layout) or the generator refuses, the request gets no id rather
/// than being delayed, and the refusal is counted in the generator's metrics.
///
/// On a tonic server (hyper and axum take the same two layers through `ServiceBuilder`):
///
/// ```no_run
/// use ringkit_idgen::{GeneratorConfig, MemoryMarkStore, SnowflakeRequestId, SystemClock, start};
/// use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let handle = start(GeneratorConfig::default(), 1, SystemClock, MemoryMarkStore::new())?;
/// let service = ringkit_idgen::grpc::IdGenService::new(handle.generator());
/// tonic::transport::Server::builder()
///     .layer(SetRequestIdLayer::x_request_id(SnowflakeRequestId::new(handle.generator())))
///     .layer(PropagateRequestIdLayer::x_request_id())
///     .add_service(service.into_server())
///     .serve("127.0.0.1:50051".parse()?)
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SnowflakeRequestId<C = SystemClock> {
    /// Where ids come from.
    generator: IdGenerator<C>,
    /// How the header spells the id.
    encoding: Encoding,
}

impl<C> Clone for SnowflakeRequestId<C> {
    fn clone(&self) -> Self {
        Self {
            generator: self.generator.clone(),
            encoding: self.encoding,
        }
    }
}

impl<C: Clock> SnowflakeRequestId<C> {
    /// Decimal ids (the form JSON and logs should carry: exact in every language).
    pub fn new(generator: IdGenerator<C>) -> Self {
        Self {
            generator,
            encoding: Encoding::Decimal,
        }
    }

    /// Spells ids in another encoding (base62 is 11 characters).
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }
}

impl<C: Clock> MakeRequestId for SnowflakeRequestId<C> {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = self.generator.try_next().ok()?;
        HeaderValue::from_str(&id.encode(self.encoding))
            .ok()
            .map(RequestId::new)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::{Request, Response};
    use tower::{ServiceBuilder, ServiceExt};
    use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

    use super::*;
    use crate::{GeneratorConfig, Id, Layout, ManualClock, MemoryMarkStore, start};

    const T0: u64 = 1_700_000_000_000;

    #[tokio::test]
    async fn stamps_and_propagates_a_decodable_snowflake() {
        let clock = ManualClock::new(T0);
        let handle = start(GeneratorConfig::default(), 5, clock, MemoryMarkStore::new()).unwrap();
        let svc = ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(SnowflakeRequestId::new(
                handle.generator(),
            )))
            .layer(PropagateRequestIdLayer::x_request_id())
            .service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });

        let res = svc.clone().oneshot(Request::new(())).await.unwrap();
        let header = res.headers()["x-request-id"].to_str().unwrap();
        let id: Id = header.parse().unwrap();
        let d = id.decode(&Layout::classic()).unwrap();
        assert_eq!((d.unix_ms, d.worker, d.sequence), (T0, 5, 0));

        // A caller's own id is kept.
        let req = Request::builder()
            .header("x-request-id", "abc")
            .body(())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "abc");
    }

    #[tokio::test]
    async fn a_spent_tick_leaves_the_request_without_an_id_instead_of_waiting() {
        let clock = ManualClock::new(T0);
        let handle = start(GeneratorConfig::default(), 5, clock, MemoryMarkStore::new()).unwrap();
        let ids = handle.generator();
        while ids.try_next().is_ok() {}
        let mut maker = SnowflakeRequestId::new(handle.generator()).with_encoding(Encoding::Base62);
        assert!(maker.make_request_id(&Request::new(())).is_none());
        // Another worker with room in its tick answers at once; base62 is 11 characters.
        let other = start(
            GeneratorConfig::default(),
            6,
            ManualClock::new(T0),
            MemoryMarkStore::new(),
        )
        .unwrap();
        let mut fresh = SnowflakeRequestId::new(other.generator()).with_encoding(Encoding::Base62);
        let id = fresh.make_request_id(&Request::new(())).unwrap();
        assert_eq!(id.header_value().len(), 11);
    }
}
