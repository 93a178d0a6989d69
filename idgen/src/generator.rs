//! The thin runtime shell over the sans-IO [`Generator`]: reads the clock, waits for ticks with
//! `tokio::time::sleep` (never spinning, never blocking the executor), and turns refusals into
//! [`Error`]s and metrics.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};

use crate::{
    Clock, Error, GeneratorConfig, Id, Layout, Result, SystemClock,
    core::{Generator, IdBatch, NextError, PendingReason},
    metrics,
    ticker::Ticker,
};

/// State shared by every clone of an [`IdGenerator`] and by the renewer thread.
#[derive(Debug)]
pub(crate) struct Shared<C> {
    /// The sans-IO generator.
    pub(crate) core: Generator,
    /// The injected clock.
    pub(crate) clock: C,
    /// The configuration it was started with.
    pub(crate) config: GeneratorConfig,
    /// The last persisted high-water mark, Unix ms (for `info`).
    pub(crate) mark_ms: AtomicU64,
    /// Precise tick wake-ups for async waiters (real-time clocks only).
    pub(crate) ticker: Ticker,
}

/// A running generator: cheap to clone, `Send + Sync`, shared by every task that needs IDs.
///
/// Get one from [`start`](crate::start). [`try_next`](Self::try_next) never waits;
/// [`next_id`](Self::next_id) waits for the next tick on the tokio timer;
/// [`next_blocking`](Self::next_blocking) is for plain threads.
#[derive(Debug)]
pub struct IdGenerator<C = SystemClock> {
    /// The shared state.
    pub(crate) shared: Arc<Shared<C>>,
}

impl<C> Clone for IdGenerator<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// A snapshot of what a generator is, for `Info` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorInfo {
    /// The layout.
    pub layout: Layout,
    /// The worker id.
    pub worker: u64,
    /// When the layout runs out.
    pub end_of_life: Option<DateTime<Utc>>,
    /// The persisted high-water mark, Unix ms.
    pub high_water_mark_ms: u64,
}

impl<C: Clock> IdGenerator<C> {
    /// The next ID now, or why not. Never waits; the hot path of this crate.
    ///
    /// # Errors
    /// [`NextError::Pending`] when the caller should retry at `until`; the others are refusals.
    #[inline]
    pub fn try_next(&self) -> Result<Id, NextError> {
        let now = self.shared.clock.now_ms();
        self.shared.core.next(now).inspect_err(record)
    }

    /// Up to `max` IDs from one tick, now, with one atomic operation.
    ///
    /// # Errors
    /// As [`try_next`](Self::try_next).
    pub fn try_next_batch(&self, max: u64) -> Result<IdBatch, NextError> {
        let now = self.shared.clock.now_ms();
        self.shared.core.next_batch(now, max).inspect_err(record)
    }

    /// The next ID, waiting (asynchronously) for the next tick if this one is spent.
    ///
    /// # Errors
    /// [`Error::ClockBackwards`], [`Error::OutsideLifetime`], [`Error::Shutdown`], or
    /// [`Error::Unavailable`] after waiting `max_wait` in total.
    pub async fn next_id(&self) -> Result<Id> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_next() {
                Ok(id) => return Ok(id),
                Err(e) => self.sleep(e, &mut waited).await?,
            }
        }
    }

    /// At least one and up to `max` IDs, waiting for a tick if needed.
    ///
    /// # Errors
    /// As [`next_id`](Self::next_id).
    pub async fn next_batch(&self, max: u64) -> Result<IdBatch> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_next_batch(max) {
                Ok(batch) => return Ok(batch),
                Err(e) => self.sleep(e, &mut waited).await?,
            }
        }
    }

    /// Appends exactly `count` strictly increasing IDs to `out`, across ticks as needed.
    ///
    /// # Errors
    /// As [`next_id`](Self::next_id); IDs appended before the error stay in `out`.
    pub async fn fill(&self, count: u64, out: &mut Vec<u64>) -> Result<()> {
        let mut left = count;
        while left > 0 {
            let batch = self.next_batch(left).await?;
            batch.extend_into(out);
            left -= batch.len();
        }
        Ok(())
    }

    /// The next ID for synchronous code, sleeping the thread while waiting for a tick.
    ///
    /// # Errors
    /// As [`next_id`](Self::next_id).
    pub fn next_blocking(&self) -> Result<Id> {
        let mut waited = Duration::ZERO;
        loop {
            match self.try_next() {
                Ok(id) => return Ok(id),
                Err(e) => std::thread::sleep(self.wait_for(e, &mut waited)?),
            }
        }
    }

    /// Sleeps the task until a pending result may succeed, or returns the error to give up with.
    async fn sleep(&self, err: NextError, waited: &mut Duration) -> Result<()> {
        let wait = self.wait_for(err, waited)?;
        match err {
            NextError::Pending { until, .. } if C::REAL_TIME => {
                // The ticker wakes us at the tick; the tokio timer is only a backstop.
                self.shared
                    .ticker
                    .wait_until(until, wait + Duration::from_millis(2))
                    .await;
            }
            _ => tokio::time::sleep(wait).await,
        }
        Ok(())
    }

    /// How long to sleep for a pending result, or the error to return.
    fn wait_for(&self, err: NextError, waited: &mut Duration) -> Result<Duration> {
        match err {
            NextError::Pending { until, reason } => {
                // At least 100 µs so a clock that lags its own `until` cannot make this spin.
                let wait = self
                    .shared
                    .clock
                    .until(until)
                    .max(Duration::from_micros(100));
                *waited += wait;
                if *waited > self.shared.config.max_wait() {
                    return Err(Error::Unavailable(
                        self.shared.config.max_wait(),
                        match reason {
                            PendingReason::Reservation => {
                                "the high-water mark could not be persisted ahead of the clock"
                            }
                            PendingReason::RestartMark => {
                                "still waiting for the previous run's high-water mark"
                            }
                            PendingReason::SequenceExhausted | PendingReason::ClockBehind => {
                                "still waiting for the next tick"
                            }
                        },
                    ));
                }
                Ok(wait)
            }
            NextError::ClockBackwards { by } => Err(Error::ClockBackwards {
                by,
                tolerance: self.shared.config.backward_tolerance(),
            }),
            NextError::OutsideLifetime => Err(Error::OutsideLifetime),
            NextError::Sealed => Err(Error::Shutdown),
        }
    }

    /// The generator's layout.
    pub fn layout(&self) -> &Layout {
        self.shared.core.layout()
    }

    /// The generator's worker id.
    pub fn worker(&self) -> u64 {
        self.shared.core.worker()
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &GeneratorConfig {
        &self.shared.config
    }

    /// Layout, worker, end of life and the persisted mark.
    pub fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            layout: self.layout().clone(),
            worker: self.worker(),
            end_of_life: self.layout().end_of_life(),
            high_water_mark_ms: self.shared.mark_ms.load(Ordering::Acquire),
        }
    }

    /// The sans-IO core, for callers that read the clock themselves.
    pub fn core(&self) -> &Generator {
        &self.shared.core
    }
}

/// Counts waits and refusals. Off the success path, so the hot path records nothing.
#[cold]
fn record(err: &NextError) {
    match err {
        NextError::Pending { reason, .. } => {
            ::metrics::counter!(metrics::TICK_WAITS, "reason" => reason.as_str()).increment(1);
        }
        NextError::ClockBackwards { by } => {
            ::metrics::counter!(metrics::CLOCK_BACKWARDS).increment(1);
            // Debug, not warn: under a large step every request lands here. The renewer thread
            // warns once per period instead.
            tracing::debug!(
                behind_ms = by.as_millis() as u64,
                "clock behind the last tick; refusing"
            );
        }
        NextError::OutsideLifetime | NextError::Sealed => {}
    }
}
