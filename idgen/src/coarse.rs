//! `CoarseClock`: the wall clock cached in an atomic, refreshed at every millisecond boundary.
//!
//! Reading `SystemTime::now()` costs about 40 ns on a VM (vDSO over a paravirtual TSC), more than
//! the rest of `try_next` together. This clock makes the read one relaxed atomic load. It is safe
//! because the generator's guarantees never depend on the clock being right (ADR 0201):
//!
//! 1. **Uniqueness and order** come from the packed state's compare-and-swap alone; the proptest in
//!    `tests/clock_steps.rs` feeds the core arbitrary clock sequences and every issued ID is still
//!    strictly greater than the last. A stale reading can only make the generator stay on an older
//!    tick (as for an absorbed backward step) or wait.
//! 2. **It never runs ahead of the wall clock**: the cached value is a past `SystemTime` reading, so
//!    an ID's timestamp is never in the future, and the high-water mark logic (which compares the
//!    clock with the reservation) sees a time at or before the real one: waiting longer, never
//!    issuing beyond the reservation.
//! 3. **It lags by a bounded amount in normal operation**: the refresher wakes at each millisecond
//!    boundary, so the lag is its wake-up latency (tens of microseconds), or more only while the
//!    host starves the thread; during that time IDs carry a slightly older timestamp and, at the
//!    sequence limit, callers wait. Timestamps keep their documented meaning: "issued no earlier
//!    than this tick".
//! 4. **Steps are passed through, not hidden**: the refresher stores (not `fetch_max`es) the wall
//!    time, so a backward step reaches the generator's tolerance rules exactly as with
//!    [`SystemClock`](crate::SystemClock).
//!
//! The refresher costs one wake-up a millisecond (about 0.5% of a core) for as long as any clone of
//! the clock lives; it stops by itself after the last one is dropped.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::Clock;

/// The wall clock, cached and refreshed every millisecond by a background thread.
///
/// Clones share one cache and one thread. See the module docs for why it is correct.
#[derive(Debug, Clone)]
pub struct CoarseClock {
    /// The last wall-clock reading, Unix ms.
    now: Arc<AtomicU64>,
}

fn wall() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl CoarseClock {
    /// Starts the refresher thread and returns the clock.
    ///
    /// # Errors
    /// If the thread cannot be spawned.
    pub fn start() -> std::io::Result<Self> {
        let now = Arc::new(AtomicU64::new(wall().as_millis() as u64));
        let weak = Arc::downgrade(&now);
        std::thread::Builder::new()
            .name("idgen-coarse-clock".into())
            .spawn(move || refresh(&weak))?;
        Ok(Self { now })
    }
}

/// Sleeps to each millisecond boundary and stores the time, until every clock is dropped.
fn refresh(cache: &Weak<AtomicU64>) {
    loop {
        let now = wall();
        let next_ms = now.as_millis() as u64 + 1;
        std::thread::sleep(Duration::from_millis(next_ms).saturating_sub(now));
        let Some(cache) = cache.upgrade() else { return };
        cache.store(wall().as_millis() as u64, Ordering::Release);
    }
}

impl Clock for CoarseClock {
    const REAL_TIME: bool = true;

    #[inline]
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// Time until the *wall* clock reaches `unix_ms`, plus 20 µs, since the cache follows it
    /// shortly after; if the wall clock is there but the cache is not yet, 20 µs.
    fn until(&self, unix_ms: u64) -> Duration {
        if self.now_ms() >= unix_ms {
            return Duration::ZERO;
        }
        Duration::from_millis(unix_ms).saturating_sub(wall()) + Duration::from_micros(20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SystemClock;

    #[test]
    fn never_ahead_of_the_wall_clock_and_it_advances() {
        let coarse = CoarseClock::start().unwrap();
        let first = coarse.now_ms();
        for _ in 0..1_000 {
            assert!(coarse.now_ms() <= SystemClock.now_ms());
        }
        // Liveness, bounded: the cache moves within two seconds even on a loaded machine.
        let mut waited = 0;
        while coarse.now_ms() == first && waited < 2_000 {
            std::thread::sleep(Duration::from_millis(1));
            waited += 1;
        }
        assert!(coarse.now_ms() > first);
        assert!(coarse.until(coarse.now_ms()).is_zero());
        // `until` measures to the wall clock (the cache may lag it on a loaded machine): the
        // answer lies between what the wall clock said just before and just after the call.
        let target = SystemClock.now_ms() + 5;
        let before = wall();
        let until = coarse.until(target);
        let after = wall();
        let target = Duration::from_millis(target);
        assert!(until <= target.saturating_sub(before) + Duration::from_micros(20));
        assert!(until >= target.saturating_sub(after));
        assert!(until > Duration::ZERO, "the wall clock is not there yet");
    }

    #[test]
    fn the_refresher_stops_with_the_last_clone() {
        let coarse = CoarseClock::start().unwrap();
        let weak = Arc::downgrade(&coarse.now);
        let clone = coarse.clone();
        drop(coarse);
        assert!(weak.upgrade().is_some());
        drop(clone);
        assert!(weak.upgrade().is_none());
    }
}
