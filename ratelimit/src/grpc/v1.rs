//! `ringkit.ratelimit.v1.RateLimiter`: checks over gRPC.

use tonic::{Request, Response, Status};

use super::convert::{from_pb_check, to_pb_check_response};
use super::pb::ringkit::ratelimit::v1 as pb;
use crate::limiter::RateLimiter;

/// The `RateLimiter` gRPC service. Over-limit is an answer (`overall_code = OVER_LIMIT`), not an
/// error; errors are bad input (INVALID_ARGUMENT) or an unreachable cluster (UNAVAILABLE).
#[derive(Debug, Clone)]
pub struct CheckService {
    /// The node's limiter.
    limiter: RateLimiter,
}

impl CheckService {
    /// Serves `limiter`.
    pub fn new(limiter: RateLimiter) -> Self {
        CheckService { limiter }
    }

    /// Wraps it for tonic's router.
    pub fn into_server(self) -> pb::rate_limiter_server::RateLimiterServer<Self> {
        pb::rate_limiter_server::RateLimiterServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::rate_limiter_server::RateLimiter for CheckService {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let req = from_pb_check(request.get_ref());
        let outcome = self.limiter.check(&req).await?;
        Ok(Response::new(to_pb_check_response(&outcome)))
    }
}
