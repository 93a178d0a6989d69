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
