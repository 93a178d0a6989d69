//! Prometheus-style metrics through the `metrics` facade, labelled by domain only: a label per
//! key would let clients grow the exporter's memory without bound.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `ratelimit_hits_total{domain}` | counter | units checked (sum of costs) |
//! | `ratelimit_over_limit_total{domain}` | counter | descriptors rejected |
//! | `ratelimit_near_limit_total{domain}` | counter | descriptors admitted with less than 20% left |
//! | `ratelimit_shadow_mode_total{domain}` | counter | descriptors over limit but let through by shadow mode |
//! | `ratelimit_keys` | gauge | keys held by this node's store |
//! | `ratelimit_forwarded_total` | counter | operations forwarded to a key's owner |
//! | `ratelimit_peer_failures_total` | counter | forwards that failed (owner treated as down) |

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use metrics::Counter;

use crate::check::{CheckOutcome, Plan};

/// Share of the limit under which an admitted hit counts as "near limit" (Envoy uses 80% used).
const NEAR_LIMIT_REMAINING: f64 = 0.2;

/// The counters of one domain, registered once: looking a labelled counter up in the recorder
/// on every request would cost more than the rate-limit check itself.
#[derive(Debug)]
struct DomainCounters {
    /// `ratelimit_hits_total`.
    hits: Counter,
    /// `ratelimit_over_limit_total`.
    over: Counter,
    /// `ratelimit_near_limit_total`.
    near: Counter,
    /// `ratelimit_shadow_mode_total`.
    shadow: Counter,
}

impl DomainCounters {
    /// Registers the counters of `domain` with the installed recorder.
    fn register(domain: &str) -> Self {
        let d = domain.to_owned();
        DomainCounters {
            hits: metrics::counter!("ratelimit_hits_total", "domain" => d.clone()),
            over: metrics::counter!("ratelimit_over_limit_total", "domain" => d.clone()),
            near: metrics::counter!("ratelimit_near_limit_total", "domain" => d.clone()),
            shadow: metrics::counter!("ratelimit_shadow_mode_total", "domain" => d),
        }
    }
}

/// Counter handles by domain. Only domains that passed validation reach it, so it is bounded
/// by the policy (plus overrides).
#[derive(Debug, Default, Clone)]
pub(crate) struct Recorder {
    /// Domain -> its counters.
    domains: Arc<RwLock<HashMap<String, Arc<DomainCounters>>>>,
}

impl Recorder {
    /// The counters of `domain`, registered on first use.
    fn domain(&self, domain: &str) -> Arc<DomainCounters> {
        if let Some(c) = self
            .domains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(domain)
        {
            return c.clone();
        }
        self.domains
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(domain.to_owned())
            .or_insert_with(|| Arc::new(DomainCounters::register(domain)))
            .clone()
    }

    /// Records one finished check.
    pub(crate) fn record_check(&self, plan: &Plan, outcome: &CheckOutcome) {
        let counters = self.domain(&plan.domain);
        let hits: u64 = plan.ops.iter().map(|o| o.cost).sum();
        counters.hits.increment(hits);
        for d in &outcome.descriptors {
            let Some(decision) = d.decision else { continue };
            if !decision.allowed && d.shadow {
                counters.shadow.increment(1);
            } else if !decision.allowed {
                counters.over.increment(1);
            } else if (decision.remaining as f64) < decision.limit as f64 * NEAR_LIMIT_REMAINING {
                counters.near.increment(1);
            }
        }
    }
}

/// Publishes the number of keys held.
pub(crate) fn record_keys(keys: usize) {
    metrics::gauge!("ratelimit_keys").set(keys as f64);
}

/// Counts operations forwarded to owners.
pub(crate) fn record_forwarded(ops: usize) {
    metrics::counter!("ratelimit_forwarded_total").increment(ops as u64);
}

/// Counts failed forwards.
pub(crate) fn record_peer_failure() {
    metrics::counter!("ratelimit_peer_failures_total").increment(1);
}
