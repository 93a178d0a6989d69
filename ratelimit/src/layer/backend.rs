//! Where the layer's budgets live: in this process ([`LocalBackend`]) or in a `ratelimit-server`
//! cluster ([`RemoteBackend`]).

use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;

use crate::algorithm::{Decision, Limit};
use crate::clock::{Clock, MonotonicClock};
use crate::error::Error;
use crate::grpc::pb::ringkit::ratelimit::v1 as pb;
use crate::grpc::{from_pb_decision, from_pb_limit};
use crate::store::KeyedStore;

/// What to do when the remote backend fails or times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Let the request through (availability over protection): the usual choice for APIs.
    #[default]
    Open,
    /// Reject with 503 / UNAVAILABLE (protection over availability), e.g. in front of a
    /// fragile or costly dependency.
    Closed,
}

/// A backend's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead; with the budget for the headers when known.
    Allow(Option<(Decision, Limit)>),
    /// Over limit; with the budget for the headers when known.
    Reject(Option<(Decision, Limit)>),
    /// The backend failed and the failure mode is closed.
    Unavailable,
}

/// Budgets in this process: one [`KeyedStore`] shared by every clone of the layer.
///
/// Memory is bounded by the store's `max_keys` (1 M by default, about 61 MB): a full shard first
/// drops its idle keys, then the key that recovers soonest. To return memory earlier, call
/// `backend.store().evict_idle(now)` from a periodic task (it loses nothing).
#[derive(Clone)]
pub struct LocalBackend {
    /// The keys' state.
    store: Arc<KeyedStore>,
    /// The limit every key gets.
    limit: Limit,
    /// Time source (use [`crate::clock::TokioClock`] to follow `tokio::time::pause()`).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl LocalBackend {
    /// `limit` per key, in a default-sized store, on the monotonic clock.
    pub fn new(limit: Limit) -> Self {
        Self::with_store(
            limit,
            Arc::new(KeyedStore::default()),
            Arc::new(MonotonicClock::new()),
        )
    }

    /// `limit` per key in `store`, reading `clock`.
    pub fn with_store(limit: Limit, store: Arc<KeyedStore>, clock: Arc<dyn Clock>) -> Self {
        LocalBackend {
            store,
            limit,
            clock,
        }
    }

    /// The store (to evict idle keys periodically, or to read its stats).
    pub fn store(&self) -> &Arc<KeyedStore> {
        &self.store
    }

    /// The limit every key gets.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// Checks `cost` units of `key`.
    #[inline]
    pub(crate) fn check(&self, key: &[u8], cost: u64) -> (Decision, Limit) {
        (
            self.store.check(key, &self.limit, self.clock.now(), cost),
            self.limit,
        )
    }
}

/// Budgets in a `ratelimit-server` (or cluster), over `ringkit.ratelimit.v1.RateLimiter/Check`.
/// Each request sends the descriptor `[(descriptor_key, key)]` of `domain`.
#[derive(Debug, Clone)]
pub struct RemoteBackend {
    /// gRPC client (a `Channel` is cheap to clone and multiplexes).
    client: pb::rate_limiter_client::RateLimiterClient<Channel>,
    /// Policy domain.
    domain: String,
    /// Descriptor entry key under which the request key is sent.
    descriptor_key: String,
    /// Longest wait for an answer.
    timeout: Duration,
    /// What to do on failure or timeout.
    failure: FailureMode,
}

impl RemoteBackend {
    /// A backend over `channel` (e.g. `Endpoint::from_static(..).connect_lazy()`), checking
    /// `[(descriptor_key, key)]` in `domain`, waiting at most 50 ms, failing open.
    pub fn new(
        channel: Channel,
        domain: impl Into<String>,
        descriptor_key: impl Into<String>,
    ) -> Self {
        RemoteBackend {
            client: pb::rate_limiter_client::RateLimiterClient::new(channel),
            domain: domain.into(),
            descriptor_key: descriptor_key.into(),
            timeout: Duration::from_millis(50),
            failure: FailureMode::Open,
        }
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the failure mode.
    pub fn failure_mode(mut self, failure: FailureMode) -> Self {
        self.failure = failure;
        self
    }

    /// Asks the service; errors and timeouts become the failure mode's verdict.
    pub(crate) async fn check(mut self, key: String, cost: u64) -> Verdict {
        let request = pb::CheckRequest {
            domain: self.domain.clone(),
            descriptors: vec![pb::Descriptor {
                entries: vec![pb::Entry {
                    key: self.descriptor_key.clone(),
                    value: key,
                }],
                cost: None,
            }],
            cost: Some(cost),
        };
        let answer = match tokio::time::timeout(self.timeout, self.client.check(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(Error::Unavailable(status.message().to_owned())),
            Err(_) => Err(Error::Timeout(self.timeout)),
        };
        match answer {
            Ok(response) => verdict_of(&response),
            Err(e) => {
                tracing::warn!(error = %e, mode = ?self.failure, "rate-limit backend failed");
                match self.failure {
                    FailureMode::Open => Verdict::Allow(None),
                    FailureMode::Closed => Verdict::Unavailable,
                }
            }
        }
    }
}

/// Reads the server's answer.
fn verdict_of(response: &pb::CheckResponse) -> Verdict {
    let budget = response.results.first().and_then(|r| {
        let decision = from_pb_decision(r.decision.as_ref()?);
        let limit = from_pb_limit(r.limit.as_ref()?).ok()?;
        Some((decision, limit))
    });
    if response.overall_code == pb::Code::OverLimit as i32 {
        Verdict::Reject(budget)
    } else {
        Verdict::Allow(budget)
    }
}

/// The layer's backend.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In-process.
    Local(LocalBackend),
    /// A `ratelimit-server`.
    Remote(RemoteBackend),
}
