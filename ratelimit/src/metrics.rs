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

use crate::check::{CheckOutcome, Plan};

/// Share of the limit under which an admitted hit counts as "near limit" (Envoy uses 80% used).
const NEAR_LIMIT_REMAINING: f64 = 0.2;

/// Records one finished check.
pub(crate) fn record_check(plan: &Plan, outcome: &CheckOutcome) {
    let domain = plan.domain.clone();
    let hits: u64 = plan.ops.iter().map(|o| o.cost).sum();
    metrics::counter!("ratelimit_hits_total", "domain" => domain.clone()).increment(hits);
    let (mut over, mut near, mut shadow) = (0u64, 0u64, 0u64);
    for d in &outcome.descriptors {
        let Some(decision) = d.decision else { continue };
        if !decision.allowed && d.shadow {
            shadow += 1;
        } else if !decision.allowed {
            over += 1;
        } else if (decision.remaining as f64) < decision.limit as f64 * NEAR_LIMIT_REMAINING {
            near += 1;
        }
    }
    if over > 0 {
        metrics::counter!("ratelimit_over_limit_total", "domain" => domain.clone()).increment(over);
    }
    if near > 0 {
        metrics::counter!("ratelimit_near_limit_total", "domain" => domain.clone()).increment(near);
    }
    if shadow > 0 {
        metrics::counter!("ratelimit_shadow_mode_total", "domain" => domain).increment(shadow);
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
