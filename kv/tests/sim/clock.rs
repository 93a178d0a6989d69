//! A wall clock for simulated nodes: turmoil's virtual time since its (fixed) epoch, plus a
//! per-node skew, so TTLs, write times and last-write-wins see simulated time, not the host's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_kv::clock::Clock;
use ringkit_kv::model::Timestamp;

/// The simulation's epoch: fixed, so that every run of a seed sees the same wall-clock times.
pub(crate) fn epoch() -> SystemTime {
    // 2026-01-01T00:00:00Z.
    UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

/// A node's clock: `turmoil::since_epoch()` of the host it runs on, shifted by a fixed skew.
///
/// Outside a simulated host (the test thread between steps) it shows the last time it read,
/// and it never goes backwards.
#[derive(Clone, Debug)]
pub(crate) struct SimClock {
    /// Signed skew in milliseconds: simulated clocks disagree a little, as real ones do.
    skew_ms: i64,
    /// The last reading, shared by clones (keeps the clock monotonic).
    last: Arc<AtomicU64>,
}

impl SimClock {
    /// A clock `skew_ms` milliseconds ahead of (or, negative, behind) simulated time.
    pub(crate) fn new(skew_ms: i64) -> Self {
        let start = u64::try_from(
            epoch()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
        )
        .unwrap_or(u64::MAX);
        Self {
            skew_ms,
            last: Arc::new(AtomicU64::new(start)),
        }
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        if let Some(since) = turmoil::since_epoch() {
            let ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
            let skewed = ms.saturating_add_signed(self.skew_ms);
            self.last.fetch_max(skewed, Ordering::SeqCst);
        }
        Timestamp(self.last.load(Ordering::SeqCst))
    }
}
