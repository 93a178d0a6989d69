//! [`RateLimiter`]: policy resolution plus a [`Counter`]; what the gRPC services call.

use std::sync::Arc;

use crate::check::{CheckOutcome, CheckRequest, Descriptor, DescriptorOutcome, OpKind, plan};
use crate::clock::Clock;
use crate::counter::{Counter, LocalCounter};
use crate::error::Error;
use crate::metrics;
use crate::policy::Policies;
use crate::store::KeyedStore;

/// What the admin API shows for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inspection {
    /// Whether a rule or override matches the descriptor.
    pub matched: bool,
    /// The budget as a cost-0 check sees it.
    pub outcome: DescriptorOutcome,
}

/// The rate limiter of one node: shared by the `ratelimit.v1`, admin and Envoy services.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// The policy in force (shared with the reloader).
    policies: Arc<Policies>,
    /// Where counters live.
    counter: Counter,
    /// Metric handles per domain.
    metrics: metrics::Recorder,
}

impl RateLimiter {
    /// A limiter over any counter (local or cluster).
    pub fn new(policies: Arc<Policies>, counter: Counter) -> Self {
        RateLimiter {
            policies,
            counter,
            metrics: metrics::Recorder::default(),
        }
    }

    /// A single-node limiter.
    pub fn local(policies: Arc<Policies>, store: Arc<KeyedStore>, clock: Arc<dyn Clock>) -> Self {
        Self::new(policies, Counter::Local(LocalCounter::new(store, clock)))
    }

    /// The policy handle (for reloads and overrides).
    pub fn policies(&self) -> &Arc<Policies> {
        &self.policies
    }

    /// The counter backend.
    pub fn counter(&self) -> &Counter {
        &self.counter
    }

    /// Checks a request; all-or-nothing across its descriptors.
    ///
    /// # Errors
    /// Bad input or unknown domain (see [`crate::check::plan`]); in a cluster,
    /// [`Error::Unavailable`] when no node can take the keys.
    pub async fn check(&self, req: &CheckRequest) -> Result<CheckOutcome, Error> {
        let plan = plan(&self.policies, req)?;
        let results = if plan.ops.is_empty() {
            Vec::new()
        } else {
            self.counter.apply(&plan.ops).await?
        };
        let outcome = plan.outcome(&results);
        let undo = plan.rollback(&outcome, &results);
        // If the rollback fails the request is rejected anyway; the admitted descriptors keep
        // their hits (over-counting, the safe direction).
        if !undo.is_empty()
            && let Err(e) = self.counter.apply(&undo).await
        {
            tracing::warn!(error = %e, "could not roll back a rejected request");
        }
        self.metrics.record_check(&plan, &outcome);
        Ok(outcome)
    }

    /// The budget of one descriptor, consuming nothing.
    ///
    /// # Errors
    /// As [`RateLimiter::check`].
    pub async fn inspect(&self, domain: &str, descriptor: Descriptor) -> Result<Inspection, Error> {
        let req = CheckRequest {
            domain: domain.to_owned(),
            descriptors: vec![Descriptor {
                cost: Some(0),
                ..descriptor
            }],
            cost: 0,
        };
        let plan = plan(&self.policies, &req)?;
        let results = self.counter.apply(&plan.ops).await?;
        let outcome = plan.outcome(&results);
        let d = outcome.descriptors[0];
        Ok(Inspection {
            matched: d.limit.is_some() || d.unlimited,
            outcome: d,
        })
    }

    /// Forgets the counter of one descriptor. Returns whether it was held.
    ///
    /// # Errors
    /// As [`RateLimiter::check`].
    pub async fn reset(&self, domain: &str, descriptor: Descriptor) -> Result<bool, Error> {
        let req = CheckRequest {
            domain: domain.to_owned(),
            descriptors: vec![descriptor],
            cost: 0,
        };
        let mut plan = plan(&self.policies, &req)?;
        for op in &mut plan.ops {
            op.kind = OpKind::Reset;
        }
        let results = self.counter.apply(&plan.ops).await?;
        Ok(results.iter().any(|r| r.existed))
    }
}
