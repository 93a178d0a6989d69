//! Sliding window log: exact, at the price of memory proportional to the limit.
//!
//! Every admitted hit is logged as `(time, cost)`; a hit at `t` counts during `[t, t + window)`.
//! A hit of cost `k` is admitted when the logged cost still in the window plus `k` is at most
//! `limit`, so **no window of length `window` ever holds more than `limit`**: when the last hit
//! of any such window was admitted, every earlier hit of that window was still in the log.
//!
//! Memory: 16 bytes per logged entry (hits at the same nanosecond share one), up to `limit`
//! entries per key, plus the `Box` and `VecDeque` headers. Prefer the sliding window counter for
//! large limits or many keys.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Decision, nanos, validate};
use crate::clock::Timestamp;
use crate::error::Error;

/// Parameters of a sliding window log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingLog {
    /// Units admitted per window.
    limit: u64,
    /// Window length in nanoseconds.
    window: u64,
}

/// Per-key state: the log of admitted hits still inside the window.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlidingLogState {
    /// `(time in nanoseconds, cost)`, oldest first.
    entries: VecDeque<(u64, u64)>,
    /// Sum of the logged costs, kept so a check is O(expired entries), not O(log).
    total: u64,
    /// When the newest entry leaves the window (then the key is as good as fresh).
    fresh_at: u64,
}

impl SlidingLogState {
    /// When the newest entry leaves the window.
    pub fn fresh_at(&self) -> Timestamp {
        Timestamp::from_nanos(self.fresh_at)
    }

    /// Heap bytes of the log (its capacity, which is what the allocator holds).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.entries.capacity() * std::mem::size_of::<(u64, u64)>()
    }
}

impl SlidingLog {
    /// `limit` units per sliding `window`.
    ///
    /// # Errors
    /// [`Error::InvalidLimit`] for a zero or oversized limit or a zero window.
    pub fn new(limit: u64, window: Duration) -> Result<Self, Error> {
        let window = validate(limit, window)?;
        Ok(SlidingLog { limit, window })
    }

    /// Units per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        nanos(self.window)
    }

    /// Drops entries that left the window.
    fn prune(&self, state: &mut SlidingLogState, now: u64) {
        while let Some(&(t, cost)) = state.entries.front() {
            if t.saturating_add(self.window) > now {
                break;
            }
            state.entries.pop_front();
            state.total -= cost;
        }
        if state.entries.is_empty() {
            // Give memory back once a burst is over.
            state.entries.shrink_to(4);
        }
    }

    /// Checks `cost` units at `now`; logs them when allowed. Cost 0 peeks.
    #[inline]
    pub fn check(&self, state: &mut SlidingLogState, now: Timestamp, cost: u64) -> Decision {
        let now = now.as_nanos();
        self.prune(state, now);
        let allowed = if cost == 0 {
            state.total < self.limit
        } else {
            state.total + cost <= self.limit
        };
        if allowed && cost > 0 {
            match state.entries.back_mut() {
                Some((t, c)) if *t == now => *c += cost,
                _ => state.entries.push_back((now, cost)),
            }
            state.total += cost;
            state.fresh_at = now.saturating_add(self.window);
        }
        let retry_after = if allowed || cost > self.limit {
            None
        } else {
            // Free the oldest entries until the hit fits.
            let need = state.total + cost - self.limit;
            let mut freed = 0;
            let mut at = now;
            for &(t, c) in &state.entries {
                freed += c;
                at = t.saturating_add(self.window);
                if freed >= need {
                    break;
                }
            }
            Some(nanos(at - now))
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - state.total,
            reset_after: nanos(state.entries.back().map_or(0, |&(t, _)| {
                t.saturating_add(self.window).saturating_sub(now)
            })),
            retry_after,
        }
    }

    /// Removes `amount` units from the newest entries.
    pub fn refund(&self, state: &mut SlidingLogState, now: Timestamp, amount: u64) {
        self.prune(state, now.as_nanos());
        let mut left = amount;
        while left > 0 {
            let Some((_, c)) = state.entries.back_mut() else {
                break;
            };
            let take = left.min(*c);
            *c -= take;
            state.total -= take;
            left -= take;
            if *c == 0 {
                state.entries.pop_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_millis(n)
    }

    #[test]
    fn exact_window() {
        let sl = SlidingLog::new(3, Duration::from_secs(1)).unwrap();
        let mut s = SlidingLogState::default();
        assert!(sl.check(&mut s, ms(0), 1).allowed);
        assert!(sl.check(&mut s, ms(400), 2).allowed);
        let d = sl.check(&mut s, ms(999), 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(1)));
        assert!(
            sl.check(&mut s, ms(1_000), 1).allowed,
            "the hit at 0 left the window"
        );
        let d = sl.check(&mut s, ms(1_000), 2);
        assert_eq!(d.retry_after, Some(Duration::from_millis(400)));
        assert_eq!(d.reset_after, Duration::from_secs(1));
    }

    #[test]
    fn refund_and_peek() {
        let sl = SlidingLog::new(10, Duration::from_secs(1)).unwrap();
        let mut s = SlidingLogState::default();
        assert!(sl.check(&mut s, ms(0), 4).allowed);
        assert!(sl.check(&mut s, ms(1), 6).allowed);
        sl.refund(&mut s, ms(2), 7);
        let d = sl.check(&mut s, ms(3), 0);
        assert_eq!((d.allowed, d.remaining), (true, 7));
        assert_eq!(s.entries.len(), 1);
    }
}
