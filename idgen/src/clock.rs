//! Time as a parameter: the generator reads Unix milliseconds through [`Clock`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A source of wall-clock time in Unix milliseconds.
///
/// The generator needs wall time (IDs carry a date) and must survive it stepping backwards, so
/// this is deliberately not a monotonic clock. Tests inject a [`ManualClock`] to step time by hand.
pub trait Clock: Send + Sync + 'static {
    /// Whether this clock follows real time, so that a thread sleeping for [`until`](Self::until)
    /// wakes when the clock reads the deadline. Async waits then use the precise ticker thread;
    /// otherwise (manual and simulated clocks) they use the tokio timer only.
    const REAL_TIME: bool = false;

    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> u64;

    /// How long from now until this clock reads `unix_ms` (zero if it already does).
    ///
    /// Waits for the next tick sleep this long. The default has millisecond resolution, which
    /// can oversleep by up to a millisecond; clocks that know sub-millisecond time override it, so
    /// a sleeper wakes at the start of the next tick rather than most of a tick later.
    fn until(&self, unix_ms: u64) -> Duration {
        Duration::from_millis(unix_ms.saturating_sub(self.now_ms()))
    }
}

/// The system's real-time clock (`clock_gettime(CLOCK_REALTIME)` through the vDSO on Linux).
///
/// Reading it costs tens of nanoseconds and no syscall when the kernel's clocksource is `tsc`, so
/// the generator reads it on every call rather than caching it (see ADR 0201).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    const REAL_TIME: bool = true;

    #[inline]
    fn now_ms(&self) -> u64 {
        // Before 1970 only on a broken host; 0 then makes the generator refuse (before the epoch).
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn until(&self, unix_ms: u64) -> Duration {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Duration::from_millis(unix_ms).saturating_sub(now)
    }
}

/// A clock that moves only when told to; clones share one time.
///
/// For tests and simulations: step it back by 1 ms or an hour and watch what the generator does.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    /// Current Unix milliseconds, shared by every clone.
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `unix_ms`.
    pub fn new(unix_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(unix_ms)),
        }
    }

    /// Sets the time.
    pub fn set(&self, unix_ms: u64) {
        self.now.store(unix_ms, Ordering::SeqCst);
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Moves time backwards, as an NTP step or an operator would.
    pub fn step_back(&self, by: Duration) {
        self.now.fetch_sub(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

impl<C: Clock> Clock for Arc<C> {
    const REAL_TIME: bool = C::REAL_TIME;

    #[inline]
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }

    fn until(&self, unix_ms: u64) -> Duration {
        (**self).until(unix_ms)
    }
}
