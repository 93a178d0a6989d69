//! [`RateLimitLayer`]: wraps services in [`RateLimit`].

use std::sync::Arc;

use tower::Layer;

use super::backend::{Backend, LocalBackend};
use super::response::HeaderCache;
use super::service::RateLimit;
use crate::algorithm::Limit;

/// Behaviour shared by every clone of a layer and its services.
#[derive(Debug, Clone)]
pub struct LayerConfig {
    /// The policy name shown in `RateLimit-Policy`/`RateLimit` and in gRPC messages.
    pub policy_name: String,
    /// Add the rate-limit headers to responses that were let through (they always go on
    /// rejections).
    pub headers_on_allowed: bool,
    /// Units each request costs.
    pub cost: u64,
}

impl Default for LayerConfig {
    fn default() -> Self {
        LayerConfig {
            policy_name: "default".into(),
            headers_on_allowed: true,
            cost: 1,
        }
    }
}

/// What every service built by one layer shares: one backend, hence one budget per key.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Where budgets live.
    pub(crate) backend: Backend,
    /// Headers and cost.
    pub(crate) config: LayerConfig,
    /// Precomputed header parts.
    pub(crate) headers: HeaderCache,
}

impl Shared {
    /// Bundles a backend and a config, precomputing what the headers can.
    fn new(backend: Backend, config: LayerConfig) -> Self {
        let limit = match &backend {
            Backend::Local(local) => Some(local.limit()),
            Backend::Remote(_) => None,
        };
        Shared {
            headers: HeaderCache::new(&config.policy_name, limit),
            backend,
            config,
        }
    }
}

/// Rate-limits requests by the key `M` extracts. Every service this layer builds, and every
/// clone of those services, draws from the same budgets (unlike tower's own `RateLimit`, which is
/// per instance and not `Clone`).
///
/// ```
/// use std::time::Duration;
/// use ringkit_ratelimit::algorithm::{Algorithm, Limit};
/// use ringkit_ratelimit::layer::{HeaderKey, RateLimitLayer};
///
/// let limit = Limit::new(Algorithm::TokenBucket, 10, Duration::from_secs(1), Some(20)).unwrap();
/// let layer = RateLimitLayer::local(limit, HeaderKey::new(http::HeaderName::from_static("x-api-key")));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct RateLimitLayer<M> {
    /// Backend and config.
    shared: Arc<Shared>,
    /// Key extractor, cloned into each service.
    make_key: M,
}

impl<M> RateLimitLayer<M> {
    /// In-process budgets: `limit` per key.
    pub fn local(limit: Limit, make_key: M) -> Self {
        Self::new(Backend::Local(LocalBackend::new(limit)), make_key)
    }

    /// Any backend.
    pub fn new(backend: Backend, make_key: M) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared::new(backend, LayerConfig::default())),
            make_key,
        }
    }

    /// Replaces the config.
    pub fn with_config(mut self, config: LayerConfig) -> Self {
        self.shared = Arc::new(Shared::new(self.shared.backend.clone(), config));
        self
    }

    /// The backend (e.g. to reach a local store and sweep idle keys).
    pub fn backend(&self) -> &Backend {
        &self.shared.backend
    }
}

impl<S, M: Clone> Layer<S> for RateLimitLayer<M> {
    type Service = RateLimit<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, self.make_key.clone(), self.shared.clone())
    }
}
