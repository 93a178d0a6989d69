//! The IO budget of anti-entropy: rows read per second, as a token bucket that may go into debt.
//!
//! Reads are charged *after* they happen (a range's row count is known only then), so the bucket
//! may go negative; the exchange loop waits until it is back to zero before its next read. Reads
//! served to peers are charged the same way without waiting (a gRPC handler must answer), which
//! makes the local loop pay for them: the node's anti-entropy IO averages to the rate either way.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The bucket, sans-IO: time is a [`Duration`] since any fixed origin.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens (rows) added a second; 0 means unlimited.
    rate: f64,
    /// Most tokens the bucket holds: the largest burst after an idle period.
    burst: f64,
    /// Current tokens; negative is debt.
    tokens: f64,
    /// Time of the last refill.
    last: Duration,
}

impl TokenBucket {
    /// A full bucket of `rate` rows a second holding at most `burst`.
    pub fn new(rate: u64, burst: u64) -> Self {
        Self {
            rate: rate as f64,
            burst: burst.max(1) as f64,
            tokens: burst.max(1) as f64,
            last: Duration::ZERO,
        }
    }

    /// Adds the tokens earned since the last call.
    fn refill(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Takes `rows` tokens, going into debt if needed.
    pub fn charge(&mut self, rows: u64, now: Duration) {
        if self.rate > 0.0 {
            self.refill(now);
            self.tokens -= rows as f64;
        }
    }

    /// How long to wait before the next read: zero unless the bucket is in debt.
    pub fn wait(&mut self, now: Duration) -> Duration {
        if self.rate <= 0.0 {
            return Duration::ZERO;
        }
        self.refill(now);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// A shared [`TokenBucket`] on tokio's clock (so simulated time drives it too).
#[derive(Clone, Debug)]
pub struct IoBudget {
    /// The bucket.
    bucket: Arc<Mutex<TokenBucket>>,
    /// The bucket's time origin.
    origin: Instant,
}

impl IoBudget {
    /// A budget of `rows_per_sec` (0: unlimited) with bursts up to `burst` rows.
    pub fn new(rows_per_sec: u64, burst: u64) -> Self {
        Self {
            bucket: Arc::new(Mutex::new(TokenBucket::new(rows_per_sec, burst))),
            origin: Instant::now(),
        }
    }

    /// Records `rows` read.
    pub fn charge(&self, rows: u64) {
        let now = self.origin.elapsed();
        self.bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .charge(rows, now);
    }

    /// Waits until the budget is out of debt.
    pub async fn ready(&self) {
        loop {
            let wait = {
                let now = self.origin.elapsed();
                self.bucket
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .wait(now)
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn debt_is_paid_back_at_the_rate() {
        let mut b = TokenBucket::new(100, 50);
        assert_eq!(b.wait(Duration::ZERO), Duration::ZERO);
        b.charge(250, Duration::ZERO);
        assert_eq!(b.wait(Duration::ZERO), 2 * S);
        assert_eq!(b.wait(S), S);
        assert_eq!(b.wait(2 * S), Duration::ZERO);
    }

    #[test]
    fn idle_time_earns_at_most_a_burst() {
        let mut b = TokenBucket::new(10, 20);
        b.charge(20, Duration::ZERO);
        b.charge(20, 100 * S);
        assert_eq!(b.wait(100 * S), Duration::ZERO);
        b.charge(1, 100 * S);
        assert_eq!(b.wait(100 * S), Duration::from_millis(100));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::new(0, 0);
        b.charge(1_000_000, Duration::ZERO);
        assert_eq!(b.wait(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_shell_sleeps_off_the_debt() {
        let budget = IoBudget::new(1000, 100);
        budget.charge(2100);
        let start = Instant::now();
        budget.ready().await;
        let waited = start.elapsed();
        assert!(
            waited >= 2 * S && waited < 2 * S + Duration::from_millis(5),
            "{waited:?}"
        );
    }
}
