//! [`RateLimit`]: the middleware service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Service, ServiceExt};

use super::backend::{Backend, Verdict};
use super::future::ResponseFuture;
use super::key::MakeKey;
use super::layer::Shared;
use super::response::{add_headers, is_grpc, rejection, unavailable};

/// Rate-limits the requests of `S`; built by [`super::RateLimitLayer`]. Cheap to clone; clones
/// share budgets.
#[derive(Debug, Clone)]
pub struct RateLimit<S, M> {
    /// The wrapped service.
    inner: S,
    /// Key extractor.
    make_key: M,
    /// Backend and config, shared by all clones.
    shared: Arc<Shared>,
}

impl<S, M> RateLimit<S, M> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: S, make_key: M, shared: Arc<Shared>) -> Self {
        RateLimit {
            inner,
            make_key,
            shared,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, M, ReqB, ResB> Service<Request<ReqB>> for RateLimit<S, M>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    M: MakeKey<ReqB>,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let Some(key) = self.make_key.make_key(&request) else {
            return ResponseFuture::inner(self.inner.call(request), None);
        };
        let shared = &*self.shared;
        let config = &shared.config;
        let grpc = is_grpc(&request);
        match &self.shared.backend {
            Backend::Local(local) => {
                let (decision, limit) = local.check(key.as_bytes(), config.cost);
                if decision.allowed {
                    let headers = if config.headers_on_allowed {
                        shared.headers.headers(&decision, &limit)
                    } else {
                        None
                    };
                    ResponseFuture::inner(self.inner.call(request), headers)
                } else {
                    ResponseFuture::ready(rejection(
                        grpc,
                        &config.policy_name,
                        &shared.headers,
                        Some((decision, limit)),
                    ))
                }
            }
            Backend::Remote(remote) => {
                // The service that was polled ready goes into the future; a fresh clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let remote = remote.clone();
                let shared = Arc::clone(&self.shared);
                ResponseFuture::boxed(Box::pin(async move {
                    let name = &shared.config.policy_name;
                    match remote.check(key, shared.config.cost).await {
                        Verdict::Allow(budget) => {
                            let mut response = inner.oneshot(request).await?;
                            let headers = budget
                                .filter(|_| shared.config.headers_on_allowed)
                                .and_then(|(d, l)| shared.headers.headers(&d, &l));
                            if let Some(h) = headers {
                                add_headers(&mut response, h);
                            }
                            Ok(response)
                        }
                        Verdict::Reject(budget) => {
                            Ok(rejection(grpc, name, &shared.headers, budget))
                        }
                        Verdict::Unavailable => Ok(unavailable(grpc)),
                    }
                }))
            }
        }
    }
}
