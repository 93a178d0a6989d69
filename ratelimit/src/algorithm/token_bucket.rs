//! Token bucket with rate and burst set apart, in GCRA form (one timestamp of state).
//!
//! A bucket holds up to `burst` tokens and gains `rate` tokens per `period`. GCRA ("virtual
//! scheduling") stores only the theoretical arrival time `tat`: the moment the bucket will be full
//! again. Tokens at `now` are `burst - (tat - now) / interval`, where `interval = period / rate`.
//! The two are the same algorithm; GCRA needs 8 bytes and one comparison.
//!
//! Guarantee: over any interval of length `d`, admitted cost is at most `burst + rate * d / period`
//! (the interval is rounded up to whole nanoseconds, so the real rate is at most the configured
//! one, never above it).

use std::time::Duration;

use super::{Decision, MAX_COST, nanos, validate};
use crate::clock::Timestamp;
use crate::error::Error;

/// Parameters of a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens added per `period`.
    rate: u64,
    /// The refill period, in nanoseconds.
    period: u64,
    /// Capacity: the largest burst admitted at once.
    burst: u64,
    /// Nanoseconds per token, `ceil(period / rate)`.
    interval: u64,
    /// `burst * interval`: how far `tat` may run ahead of `now`.
    capacity: u64,
}

/// Per-key state: the theoretical arrival time (nanoseconds), when the bucket is full again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenBucketState {
    /// Zero for a fresh key (a full bucket).
    tat: u64,
}

impl TokenBucketState {
    /// When the bucket is full again, hence indistinguishable from a fresh key.
    pub fn fresh_at(&self) -> Timestamp {
        Timestamp::from_nanos(self.tat)
    }
}

impl TokenBucket {
    /// `rate` tokens per `period`, holding at most `burst`.
    ///
    /// # Errors
    /// [`Error::InvalidLimit`] for a zero rate, period or burst, a burst above [`MAX_COST`], or a
    /// rate above one token per nanosecond.
    pub fn new(rate: u64, period: Duration, burst: u64) -> Result<Self, Error> {
        let period = validate(rate, period)?;
        if burst == 0 || burst > MAX_COST {
            return Err(Error::InvalidLimit(format!(
                "the burst must be between 1 and {MAX_COST}, not {burst}"
            )));
        }
        let interval = period.div_ceil(rate);
        if period / rate == 0 {
            return Err(Error::InvalidLimit(format!(
                "the rate {rate} per {period}ns is above one token per nanosecond"
            )));
        }
        let capacity = burst
            .checked_mul(interval)
            .filter(|c| *c < u64::MAX / 4)
            .ok_or_else(|| {
                Error::InvalidLimit(format!(
                    "burst {burst} at one token every {interval}ns spans more than 100 years"
                ))
            })?;
        Ok(TokenBucket {
            rate,
            period,
            burst,
            interval,
            capacity,
        })
    }

    /// Tokens added per period.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The refill period.
    pub fn period(&self) -> Duration {
        nanos(self.period)
    }

    /// The capacity.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Checks `cost` tokens at `now`; consumes them when allowed. Cost 0 peeks: it reports
    /// whether one token is available and consumes nothing.
    #[inline]
    pub fn check(&self, state: &mut TokenBucketState, now: Timestamp, cost: u64) -> Decision {
        let now = now.as_nanos();
        let base = state.tat.max(now);
        // Time the bucket is "in debt" at `now`; at most `capacity` by construction.
        let debt = base - now;
        if cost == 0 {
            let available = (self.capacity - debt) / self.interval;
            return Decision {
                allowed: available >= 1,
                limit: self.burst,
                remaining: available,
                reset_after: nanos(debt),
                retry_after: None,
            };
        }
        if cost > self.burst {
            return self.denied(debt, None);
        }
        // cost <= burst, so cost * interval <= capacity: no overflow.
        let need = cost * self.interval;
        if debt + need <= self.capacity {
            state.tat = base + need;
            // The one division of the admitting path.
            Decision {
                allowed: true,
                limit: self.burst,
                remaining: (self.capacity - debt - need) / self.interval,
                reset_after: nanos(debt + need),
                retry_after: None,
            }
        } else {
            self.denied(debt, Some(nanos(debt + need - self.capacity)))
        }
    }

    /// A rejection: nothing consumed.
    fn denied(&self, debt: u64, retry_after: Option<Duration>) -> Decision {
        Decision {
            allowed: false,
            limit: self.burst,
            remaining: (self.capacity - debt) / self.interval,
            reset_after: nanos(debt),
            retry_after,
        }
    }

    /// Returns `amount` tokens; the bucket never holds more than `burst`.
    pub fn refund(&self, state: &mut TokenBucketState, now: Timestamp, amount: u64) {
        let now = now.as_nanos();
        if state.tat > now {
            let give_back = amount.min(self.burst) * self.interval;
            state.tat = state.tat.saturating_sub(give_back).max(now);
        }
    }

    /// The interval between tokens, exposed for tests that reason about the guarantee.
    pub fn interval(&self) -> Duration {
        nanos(self.interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    #[test]
    fn burst_then_refill() {
        // 10 per second, burst 5.
        let tb = TokenBucket::new(10, Duration::from_secs(1), 5).unwrap();
        let mut s = TokenBucketState::default();
        for i in 0..5 {
            let d = tb.check(&mut s, ms(1000), 1);
            assert!(d.allowed, "hit {i}");
            assert_eq!(d.remaining, 4 - i);
        }
        let d = tb.check(&mut s, ms(1000), 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(100)));
        assert_eq!(d.reset_after, Duration::from_millis(500));
        // 100 ms later exactly one token is back.
        assert!(tb.check(&mut s, ms(1100), 1).allowed);
        assert!(!tb.check(&mut s, ms(1100), 1).allowed);
        // After 500 ms of silence the bucket is full again, never fuller.
        let d = tb.check(&mut s, ms(5000), 0);
        assert_eq!(d.remaining, 5);
    }

    #[test]
    fn weighted_cost_peek_and_refund() {
        let tb = TokenBucket::new(10, Duration::from_secs(1), 10).unwrap();
        let mut s = TokenBucketState::default();
        assert!(tb.check(&mut s, ms(0), 7).allowed);
        let peek = tb.check(&mut s, ms(0), 0);
        assert_eq!((peek.allowed, peek.remaining), (true, 3));
        assert_eq!(tb.check(&mut s, ms(0), 0), peek, "peek consumes nothing");
        let d = tb.check(&mut s, ms(0), 4);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(100)));
        tb.refund(&mut s, ms(0), 7);
        assert_eq!(tb.check(&mut s, ms(0), 0).remaining, 10);
        tb.refund(&mut s, ms(0), 100);
        assert_eq!(
            tb.check(&mut s, ms(0), 0).remaining,
            10,
            "never above burst"
        );
    }

    #[test]
    fn cost_above_burst_never_passes() {
        let tb = TokenBucket::new(1, Duration::from_secs(1), 3).unwrap();
        let mut s = TokenBucketState::default();
        let d = tb.check(&mut s, ms(0), 4);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, None);
        assert_eq!(s, TokenBucketState::default());
    }

    #[test]
    fn fractional_interval_rounds_towards_fewer_tokens() {
        let tb = TokenBucket::new(3, Duration::from_secs(1), 1).unwrap();
        assert_eq!(tb.interval(), Duration::from_nanos(333_333_334));
    }
}
