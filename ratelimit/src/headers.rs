//! The IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers-09/10) and
//! `Retry-After`, shared by the tower layer and the Envoy service's `response_headers_to_add`.
//!
//! ```text
//! RateLimit-Policy: "default";q=100;w=60
//! RateLimit: "default";r=42;t=17
//! Retry-After: 17
//! ```
//! `q` is the quota and `w` the window in seconds; `r` the remaining quota and `t` the seconds
//! until it resets. Both are Structured Field lists whose items are the quoted policy name. For a
//! token bucket `q` is the burst and `w` the time to refill it, which is what a client needs to
//! pace itself.

use std::time::Duration;

use crate::algorithm::{Decision, Limit};

/// Header name of the policy field.
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";
/// Header name of the current-limit field.
pub const RATELIMIT: &str = "ratelimit";
/// `Retry-After`.
pub const RETRY_AFTER: &str = "retry-after";

/// Whole seconds, rounded up (a client told "0" would retry at once and be rejected again).
pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A policy name as a Structured Field String: quoted, printable ASCII, quotes and backslashes
/// escaped (other characters become `_`).
pub fn sf_string(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('_'),
        }
    }
    out.push('"');
    out
}

/// `"name";q=..;w=..`
pub fn policy_value(name: &str, limit: &Limit) -> String {
    policy_value_quoted(&sf_string(name), limit)
}

/// [`policy_value`] with the name already quoted by [`sf_string`].
pub fn policy_value_quoted(quoted: &str, limit: &Limit) -> String {
    let (quota, window) = match limit {
        // The time to refill a whole burst: burst * period / rate, computed exactly.
        Limit::TokenBucket(tb) => {
            let nanos = u128::from(tb.burst()) * tb.period().as_nanos() / u128::from(tb.rate());
            (
                tb.burst(),
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)),
            )
        }
        other => (other.requests(), other.window()),
    };
    format!("{quoted};q={quota};w={}", ceil_secs(window).max(1))
}

/// `"name";r=..;t=..`
pub fn ratelimit_value(name: &str, decision: &Decision) -> String {
    ratelimit_value_quoted(&sf_string(name), decision)
}

/// [`ratelimit_value`] with the name already quoted by [`sf_string`].
pub fn ratelimit_value_quoted(quoted: &str, decision: &Decision) -> String {
    format!(
        "{quoted};r={};t={}",
        decision.remaining,
        ceil_secs(decision.reset_after)
    )
}

/// `Retry-After` seconds for a rejection; `None` when waiting never helps.
pub fn retry_after_value(decision: &Decision) -> Option<String> {
    decision
        .retry_after
        .map(|d| ceil_secs(d).max(1).to_string())
}

/// All the headers for one decision, as `(name, value)` pairs.
pub fn header_pairs(name: &str, decision: &Decision, limit: &Limit) -> Vec<(&'static str, String)> {
    let mut out = vec![
        (RATELIMIT_POLICY, policy_value(name, limit)),
        (RATELIMIT, ratelimit_value(name, decision)),
    ];
    if !decision.allowed
        && let Some(v) = retry_after_value(decision)
    {
        out.push((RETRY_AFTER, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Algorithm;

    #[test]
    fn formats_match_the_draft() {
        let limit =
            Limit::new(Algorithm::SlidingWindow, 100, Duration::from_secs(60), None).unwrap();
        let d = Decision {
            allowed: false,
            limit: 100,
            remaining: 0,
            reset_after: Duration::from_millis(16_200),
            retry_after: Some(Duration::from_millis(200)),
        };
        assert_eq!(
            header_pairs("default", &d, &limit),
            vec![
                ("ratelimit-policy", "\"default\";q=100;w=60".to_owned()),
                ("ratelimit", "\"default\";r=0;t=17".to_owned()),
                ("retry-after", "1".to_owned()),
            ]
        );
        assert_eq!(sf_string("a\"b\n"), "\"a\\\"b_\"");
        let tb = Limit::new(Algorithm::TokenBucket, 10, Duration::from_secs(1), Some(20)).unwrap();
        assert_eq!(policy_value("p", &tb), "\"p\";q=20;w=2");
        let tb = Limit::new(Algorithm::TokenBucket, 3, Duration::from_secs(10), Some(3)).unwrap();
        assert_eq!(
            policy_value("p", &tb),
            "\"p\";q=3;w=10",
            "no rounding artefact"
        );
    }
}
