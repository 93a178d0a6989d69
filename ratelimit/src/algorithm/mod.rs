//! The rate-limit algorithms: pure functions of (parameters, state, now, cost).
//!
//! Each algorithm has a parameter struct (validated once, when a policy is loaded) and a small
//! state value kept per key. [`Limit`] wraps the parameters of any algorithm and [`State`] the
//! state of any algorithm, so the keyed store can hold keys of different policies side by side.
//!
//! | algorithm | state per key | guarantee |
//! |---|---|---|
//! | [`TokenBucket`] (GCRA) | 8 bytes | in any interval `d`: at most `burst + rate * d` |
//! | [`FixedWindow`] | 12 bytes | at most `limit` per aligned window, `< 2 * limit` per sliding window |
//! | [`SlidingWindow`] (Cloudflare's counter) | 16 bytes | at most `limit` per aligned window, `< 2 * limit` per sliding window worst case, exact for steady traffic |
//! | [`SlidingLog`] | 16 bytes per admitted hit | exactly at most `limit` in every window of length `window` |

mod fixed_window;
mod sliding_log;
mod sliding_window;
mod token_bucket;

pub use fixed_window::{FixedWindow, FixedWindowState};
pub use sliding_log::{SlidingLog, SlidingLogState};
pub use sliding_window::{SlidingWindow, SlidingWindowState};
pub use token_bucket::{TokenBucket, TokenBucketState};

use std::fmt;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::Error;

/// The largest cost one check may carry (and so the largest limit): counts are kept in `u32` to
/// keep per-key state small, and Envoy's `requests_per_unit` is a `uint32` too.
pub const MAX_COST: u64 = u32::MAX as u64;

/// The answer to one check: what the caller needs to admit or reject a request and to fill the
/// `RateLimit`/`Retry-After` headers or Envoy's `DescriptorStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the hit was admitted (and, for a non-zero cost, consumed).
    pub allowed: bool,
    /// The capacity of the limit: requests per window, or the burst of a token bucket.
    pub limit: u64,
    /// Units still available right after this decision.
    pub remaining: u64,
    /// Time until the full capacity is available again (the counter "resets").
    pub reset_after: Duration,
    /// When rejected: how long until a hit of the same cost would be admitted. `None` when
    /// allowed, and also when waiting can never help because the cost exceeds the capacity.
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// A decision for "no limit applies": allowed, with `u64::MAX` remaining.
    pub const UNLIMITED: Decision = Decision {
        allowed: true,
        limit: u64::MAX,
        remaining: u64::MAX,
        reset_after: Duration::ZERO,
        retry_after: None,
    };
}

/// Which algorithm a limit uses; the name used in policy files and over gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Token bucket, rate and burst set apart (implemented as GCRA).
    TokenBucket,
    /// Exact sliding window log.
    SlidingLog,
    /// Cloudflare's two-counter sliding window approximation.
    SlidingWindow,
    /// Fixed windows aligned to the epoch.
    FixedWindow,
}

impl Algorithm {
    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::FixedWindow => "fixed_window",
        }
    }

    /// Parses the policy-file spelling; `gcra` is accepted for the token bucket because they are
    /// the same algorithm.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "token_bucket" | "gcra" => Algorithm::TokenBucket,
            "sliding_log" => Algorithm::SlidingLog,
            "sliding_window" => Algorithm::SlidingWindow,
            "fixed_window" => Algorithm::FixedWindow,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated limit of any algorithm: what a policy rule resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// See [`TokenBucket`].
    TokenBucket(TokenBucket),
    /// See [`SlidingLog`].
    SlidingLog(SlidingLog),
    /// See [`SlidingWindow`].
    SlidingWindow(SlidingWindow),
    /// See [`FixedWindow`].
    FixedWindow(FixedWindow),
}

impl Limit {
    /// Builds a limit of `requests` per `window`; `burst` only matters for the token bucket
    /// (`None` = burst equal to `requests`).
    ///
    /// # Errors
    /// [`Error::InvalidLimit`] for a zero limit or window, a limit above [`MAX_COST`], or a
    /// token-bucket rate finer than one token per nanosecond.
    pub fn new(
        algorithm: Algorithm,
        requests: u64,
        window: Duration,
        burst: Option<u64>,
    ) -> Result<Self, Error> {
        Ok(match algorithm {
            Algorithm::TokenBucket => Limit::TokenBucket(TokenBucket::new(
                requests,
                window,
                burst.unwrap_or(requests),
            )?),
            Algorithm::SlidingLog => Limit::SlidingLog(SlidingLog::new(requests, window)?),
            Algorithm::SlidingWindow => Limit::SlidingWindow(SlidingWindow::new(requests, window)?),
            Algorithm::FixedWindow => Limit::FixedWindow(FixedWindow::new(requests, window)?),
        })
    }

    /// The algorithm of this limit.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Limit::TokenBucket(_) => Algorithm::TokenBucket,
            Limit::SlidingLog(_) => Algorithm::SlidingLog,
            Limit::SlidingWindow(_) => Algorithm::SlidingWindow,
            Limit::FixedWindow(_) => Algorithm::FixedWindow,
        }
    }

    /// Requests admitted per window (the refill amount per window for a token bucket).
    pub fn requests(&self) -> u64 {
        match self {
            Limit::TokenBucket(l) => l.rate(),
            Limit::SlidingLog(l) => l.limit(),
            Limit::SlidingWindow(l) => l.limit(),
            Limit::FixedWindow(l) => l.limit(),
        }
    }

    /// The window (the refill period for a token bucket).
    pub fn window(&self) -> Duration {
        match self {
            Limit::TokenBucket(l) => l.period(),
            Limit::SlidingLog(l) => l.window(),
            Limit::SlidingWindow(l) => l.window(),
            Limit::FixedWindow(l) => l.window(),
        }
    }

    /// The token bucket's burst, `None` for window algorithms.
    pub fn burst(&self) -> Option<u64> {
        match self {
            Limit::TokenBucket(l) => Some(l.burst()),
            _ => None,
        }
    }

    /// Checks and (when allowed and `cost > 0`) consumes `cost` units. A state of another
    /// algorithm (the policy changed) is replaced by a fresh one: the counter restarts.
    #[inline]
    pub fn check(&self, state: &mut State, now: Timestamp, cost: u64) -> Decision {
        match (self, state) {
            (Limit::TokenBucket(l), State::TokenBucket(s)) => l.check(s, now, cost),
            (Limit::SlidingLog(l), State::SlidingLog(s)) => l.check(s, now, cost),
            (Limit::SlidingWindow(l), State::SlidingWindow(s)) => l.check(s, now, cost),
            (Limit::FixedWindow(l), State::FixedWindow(s)) => l.check(s, now, cost),
            (_, state) => {
                *state = self.fresh_state();
                self.check(state, now, cost)
            }
        }
    }

    /// Gives back `amount` units consumed earlier (a request that was admitted but then did not
    /// happen). Refunds never raise the budget above a fresh key's.
    pub fn refund(&self, state: &mut State, now: Timestamp, amount: u64) {
        match (self, state) {
            (Limit::TokenBucket(l), State::TokenBucket(s)) => l.refund(s, now, amount),
            (Limit::SlidingLog(l), State::SlidingLog(s)) => l.refund(s, now, amount),
            (Limit::SlidingWindow(l), State::SlidingWindow(s)) => l.refund(s, now, amount),
            (Limit::FixedWindow(l), State::FixedWindow(s)) => l.refund(s, now, amount),
            // A state of another algorithm is about to be reset anyway: nothing to give back.
            _ => {}
        }
    }

    /// The state of a key never seen before.
    pub fn fresh_state(&self) -> State {
        match self {
            Limit::TokenBucket(_) => State::TokenBucket(TokenBucketState::default()),
            Limit::SlidingLog(_) => State::SlidingLog(Box::default()),
            Limit::SlidingWindow(_) => State::SlidingWindow(SlidingWindowState::default()),
            Limit::FixedWindow(_) => State::FixedWindow(FixedWindowState::default()),
        }
    }
}

impl fmt::Display for Limit {
    /// `100 per 5m (sliding_window)`, `10 per 1s burst 20 (token_bucket)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} per {}",
            self.requests(),
            crate::policy::format_window(self.window())
        )?;
        if let Some(burst) = self.burst() {
            write!(f, " burst {burst}")?;
        }
        write!(f, " ({})", self.algorithm())
    }
}

/// Per-key state of any algorithm, 24 bytes (the sliding log keeps its entries on the heap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// See [`TokenBucketState`].
    TokenBucket(TokenBucketState),
    /// See [`SlidingLogState`].
    SlidingLog(Box<SlidingLogState>),
    /// See [`SlidingWindowState`].
    SlidingWindow(SlidingWindowState),
    /// See [`FixedWindowState`].
    FixedWindow(FixedWindowState),
}

impl State {
    /// The moment from which this state is indistinguishable from a fresh key's: evicting the key
    /// then loses nothing. Needs no parameters, so the store can evict without knowing policies.
    pub fn fresh_at(&self) -> Timestamp {
        match self {
            State::TokenBucket(s) => s.fresh_at(),
            State::SlidingLog(s) => s.fresh_at(),
            State::SlidingWindow(s) => s.fresh_at(),
            State::FixedWindow(s) => s.fresh_at(),
        }
    }

    /// Heap bytes held besides the state itself (only the sliding log has any).
    pub fn heap_bytes(&self) -> usize {
        match self {
            State::SlidingLog(s) => s.heap_bytes(),
            _ => 0,
        }
    }
}

/// Validates the shared "requests per window" pair.
fn validate(requests: u64, window: Duration) -> Result<u64, Error> {
    if requests == 0 {
        return Err(Error::InvalidLimit(
            "the limit must be at least 1 request per window (use `unlimited` to never limit, or \
             remove the rule)"
                .into(),
        ));
    }
    if requests > MAX_COST {
        return Err(Error::InvalidLimit(format!(
            "the limit {requests} is above the maximum {MAX_COST}"
        )));
    }
    let nanos = crate::clock::duration_nanos(window);
    if nanos == 0 {
        return Err(Error::InvalidLimit(
            "the window must be longer than zero (e.g. \"1s\", \"5m\")".into(),
        ));
    }
    if nanos > 366 * 24 * 3600 * 1_000_000_000 * 100 {
        return Err(Error::InvalidLimit(
            "the window must be at most 100 years".into(),
        ));
    }
    Ok(nanos)
}

/// Converts nanoseconds to a `Duration`.
fn nanos(n: u64) -> Duration {
    Duration::from_nanos(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_small() {
        assert!(
            std::mem::size_of::<State>() <= 24,
            "{}",
            std::mem::size_of::<State>()
        );
    }

    #[test]
    fn zero_limit_and_zero_window_are_rejected() {
        let e = Limit::new(Algorithm::FixedWindow, 0, Duration::from_secs(1), None).unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let e = Limit::new(Algorithm::SlidingLog, 1, Duration::ZERO, None).unwrap_err();
        assert!(e.to_string().contains("window"), "{e}");
        let e =
            Limit::new(Algorithm::TokenBucket, 10, Duration::from_secs(1), Some(0)).unwrap_err();
        assert!(e.to_string().contains("burst"), "{e}");
    }

    #[test]
    fn changing_algorithm_restarts_the_counter() {
        let fixed = Limit::new(Algorithm::FixedWindow, 2, Duration::from_secs(1), None).unwrap();
        let bucket = Limit::new(Algorithm::TokenBucket, 5, Duration::from_secs(1), None).unwrap();
        let mut state = fixed.fresh_state();
        let now = Timestamp::from_millis(10);
        assert!(fixed.check(&mut state, now, 2).allowed);
        assert!(!fixed.check(&mut state, now, 1).allowed);
        let d = bucket.check(&mut state, now, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn display_names_the_policy() {
        let l = Limit::new(
            Algorithm::TokenBucket,
            10,
            Duration::from_secs(300),
            Some(20),
        )
        .unwrap();
        assert_eq!(l.to_string(), "10 per 5m burst 20 (token_bucket)");
    }
}
