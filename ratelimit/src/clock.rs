//! Time as the algorithms see it: a [`Timestamp`] passed in, read from a [`Clock`].
//!
//! The algorithms never read a clock themselves (they are sans-IO), so every edge case can be
//! replayed with a [`ManualClock`]. Production code uses [`MonotonicClock`], which cannot step
//! backwards when NTP adjusts the wall clock but still places fixed windows on wall-clock
//! boundaries (a "per minute" window resets on the minute, as Envoy's does).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: nanoseconds since the Unix epoch, as read from a monotonic source.
///
/// A plain `u64` rather than `std::time::Instant` because the algorithms store it in per-key state
/// (8 bytes, copyable, comparable across calls) and because tests must be able to build any value.
/// It lasts until the year 2554.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin; handy in tests together with [`Timestamp::from_nanos`].
    pub const ZERO: Timestamp = Timestamp(0);

    /// Builds a timestamp from nanoseconds since the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Timestamp(nanos)
    }

    /// Builds a timestamp from milliseconds since the epoch (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future rather than wrapping.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_nanos(d)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// A duration in whole nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The source of [`Timestamp`]s for the stateful parts (store, layer, server).
///
/// A trait so that tests inject a [`ManualClock`] or tokio's paused clock ([`TokioClock`]) and
/// production uses the cheap TSC-based [`MonotonicClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// Wall-clock anchored, monotonic, cheap (TSC via `quanta`, a few nanoseconds a read).
///
/// The Unix time is read once at construction; afterwards only the monotonic counter advances,
/// so a wall-clock step never moves a limit's windows backwards.
#[derive(Debug, Clone)]
pub struct MonotonicClock {
    /// The TSC-backed counter; reading it is the hot path of every local check.
    clock: quanta::Clock,
    /// Raw counter value at construction.
    base_raw: u64,
    /// Unix nanoseconds at construction.
    base_unix: u64,
}

impl MonotonicClock {
    /// Anchors a new clock at the current wall-clock time.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let base_raw = clock.raw();
        MonotonicClock {
            clock,
            base_raw,
            base_unix: unix_nanos_now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Timestamp {
        let elapsed = self.clock.delta_as_nanos(self.base_raw, self.clock.raw());
        Timestamp(self.base_unix.saturating_add(elapsed))
    }
}

/// A clock that follows tokio's time, so `tokio::time::pause()` and `advance()` drive it.
///
/// Used by the tower layer tests and by anyone who wants the limiter to share tokio's notion of
/// time (it costs one `tokio::time::Instant::now()` per read).
#[derive(Debug, Clone)]
pub struct TokioClock {
    /// tokio's instant at construction.
    base: tokio::time::Instant,
    /// Unix nanoseconds at construction.
    base_unix: u64,
}

impl TokioClock {
    /// Anchors a new clock at tokio's current instant and the wall-clock time.
    pub fn new() -> Self {
        TokioClock {
            base: tokio::time::Instant::now(),
            base_unix: unix_nanos_now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.base_unix).saturating_add(self.base.elapsed())
    }
}

/// A clock that only moves when told to; shared between clones so a test can hold one handle
/// and give another to the code under test.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    /// Current time in nanoseconds.
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            nanos: Arc::new(AtomicU64::new(start.as_nanos())),
        }
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(duration_nanos(d), Ordering::SeqCst);
    }

    /// Sets the clock to `t` (it may go backwards: the algorithms must cope).
    pub fn set(&self, t: Timestamp) {
        self.nanos.store(t.as_nanos(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.nanos.load(Ordering::SeqCst))
    }
}

/// Unix time in nanoseconds; zero if the system clock is before 1970 (then windows are merely
/// aligned to an arbitrary origin, which is still correct).
fn unix_nanos_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(duration_nanos)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let a = ManualClock::new(Timestamp::from_millis(5));
        let b = a.clone();
        a.advance(Duration::from_millis(10));
        assert_eq!(b.now(), Timestamp::from_millis(15));
    }

    #[test]
    fn monotonic_clock_does_not_go_backwards() {
        let c = MonotonicClock::new();
        let t1 = c.now();
        let t2 = c.now();
        assert!(t2 >= t1);
        assert!(
            t1.as_nanos() > 1_600_000_000_000_000_000,
            "anchored to Unix time"
        );
    }

    #[test]
    fn saturating_arithmetic() {
        let t = Timestamp::from_nanos(u64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(1)).as_nanos(),
            u64::MAX
        );
        assert_eq!(Timestamp::ZERO.saturating_since(t), Duration::ZERO);
    }
}
