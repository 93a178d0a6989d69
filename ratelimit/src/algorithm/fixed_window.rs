//! Fixed windows aligned to the epoch (what envoyproxy/ratelimit does with Redis `INCRBY`).
//!
//! Guarantee: at most `limit` per aligned window `[k * window, (k + 1) * window)`. A sliding
//! window straddling a boundary can see up to `2 * limit` (the classic boundary burst): use
//! [`super::SlidingWindow`] or [`super::SlidingLog`] when that matters.

use std::time::Duration;

use super::{Decision, nanos, validate};
use crate::clock::Timestamp;
use crate::error::Error;

/// Parameters of a fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedWindow {
    /// Units admitted per window.
    limit: u64,
    /// Window length in nanoseconds.
    window: u64,
}

/// Per-key state: the end of the window the count belongs to, and the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FixedWindowState {
    /// End of the counted window (nanoseconds); a count for an ended window is stale.
    end: u64,
    /// Units consumed in that window.
    count: u32,
}

impl FixedWindowState {
    /// The window's end: from then on the key is as good as fresh.
    pub fn fresh_at(&self) -> Timestamp {
        Timestamp::from_nanos(if self.count == 0 { 0 } else { self.end })
    }
}

impl FixedWindow {
    /// `limit` units per `window`.
    ///
    /// # Errors
    /// [`Error::InvalidLimit`] for a zero or oversized limit or a zero window.
    pub fn new(limit: u64, window: Duration) -> Result<Self, Error> {
        let window = validate(limit, window)?;
        Ok(FixedWindow { limit, window })
    }

    /// Units per window.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        nanos(self.window)
    }

    /// The end of the window containing `now`.
    fn window_end(&self, now: u64) -> u64 {
        (now - now % self.window).saturating_add(self.window)
    }

    /// Checks `cost` units at `now`; consumes them when allowed. Cost 0 peeks.
    #[inline]
    pub fn check(&self, state: &mut FixedWindowState, now: Timestamp, cost: u64) -> Decision {
        let now = now.as_nanos();
        // Still inside the counted window: no division needed.
        let current = now < state.end && now >= state.end - self.window.min(state.end);
        let end = if current {
            state.end
        } else {
            self.window_end(now)
        };
        if state.end != end {
            *state = FixedWindowState { end, count: 0 };
        }
        let used = u64::from(state.count);
        let reset_after = nanos(end - now);
        let allowed = if cost == 0 {
            used < self.limit
        } else {
            used + cost <= self.limit
        };
        if allowed && cost > 0 {
            // used + cost <= limit <= u32::MAX
            state.count = (used + cost) as u32;
        }
        let retry_after = match (allowed, cost <= self.limit) {
            (true, _) | (false, false) => None,
            (false, true) => Some(reset_after),
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - u64::from(state.count),
            reset_after: if state.count == 0 {
                Duration::ZERO
            } else {
                reset_after
            },
            retry_after,
        }
    }

    /// Gives back `amount` units of the current window (units of a past window are gone).
    pub fn refund(&self, state: &mut FixedWindowState, now: Timestamp, amount: u64) {
        if state.end == self.window_end(now.as_nanos()) {
            state.count = state
                .count
                .saturating_sub(amount.min(u64::from(u32::MAX)) as u32);
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
    fn counts_per_aligned_window() {
        let fw = FixedWindow::new(3, Duration::from_secs(1)).unwrap();
        let mut s = FixedWindowState::default();
        for _ in 0..3 {
            assert!(fw.check(&mut s, ms(1_200), 1).allowed);
        }
        let d = fw.check(&mut s, ms(1_900), 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Some(Duration::from_millis(100)));
        assert_eq!(d.remaining, 0);
        // The next window starts at 2000 ms, not 1200 + 1000.
        let d = fw.check(&mut s, ms(2_000), 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        assert_eq!(d.reset_after, Duration::from_secs(1));
    }

    #[test]
    fn cost_peek_refund() {
        let fw = FixedWindow::new(10, Duration::from_secs(60)).unwrap();
        let mut s = FixedWindowState::default();
        assert!(fw.check(&mut s, ms(0), 10).allowed);
        assert!(!fw.check(&mut s, ms(0), 0).allowed, "peek: nothing left");
        fw.refund(&mut s, ms(1), 4);
        let d = fw.check(&mut s, ms(2), 0);
        assert_eq!((d.allowed, d.remaining), (true, 4));
        assert_eq!(
            fw.check(&mut s, ms(0), 11).retry_after,
            None,
            "above the limit: never"
        );
    }
}
