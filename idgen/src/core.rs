//! The sans-IO generator: `next(now)` over one packed atomic.
//!
//! The state is the last issued `(tick, sequence)` packed as `tick << sequence_bits | sequence`,
//! which makes "the next ID in this tick" a plain `+ 1`. Every successful call moves the state
//! strictly upwards with one compare-and-swap, so IDs from one generator are unique and strictly
//! increasing in the order the CASes land, whatever the clock does. Bit 63 marks the generator as
//! sealed (shut down) so the last issued tick can be read atomically at shutdown.
//!
//! The clock is an argument: this module never reads time, sleeps or touches a disk.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use crate::{Error, Id, Layout, Result, id::compose_unchecked};

/// Set in the state once the generator is sealed.
const SEALED: u64 = 1 << 63;

/// Why [`Generator::next`] did not return an ID now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextError {
    /// Try again at `until` (Unix ms). Nothing is wrong; the async API sleeps until then.
    Pending {
        /// Unix milliseconds at which a retry can succeed.
        until: u64,
        /// What is being waited for.
        reason: PendingReason,
    },
    /// The clock is behind the last issued tick by more than the tolerance; issuing could repeat
    /// an ID, so the generator refuses until the clock catches up.
    ClockBackwards {
        /// How far the clock is behind the last issued tick.
        by: Duration,
    },
    /// The clock is before the layout's epoch or past its end of life.
    OutsideLifetime,
    /// The generator was sealed for shutdown.
    Sealed,
}

/// What a [`NextError::Pending`] waits for; metrics label waits with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingReason {
    /// This tick's sequence is spent; the next tick starts at `until`.
    SequenceExhausted,
    /// The clock stepped back within the tolerance and the last tick's sequence is spent.
    ClockBehind,
    /// After a restart: the previous run may have issued IDs up to its persisted mark.
    RestartMark,
    /// The persisted high-water mark is not yet far enough ahead (the renewer is late).
    Reservation,
}

impl PendingReason {
    /// A label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SequenceExhausted => "sequence_exhausted",
            Self::ClockBehind => "clock_behind",
            Self::RestartMark => "restart_mark",
            Self::Reservation => "reservation",
        }
    }
}

/// How the generator treats a clock behind its last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockPolicy {
    /// Backward steps up to this are absorbed: keep issuing on the last tick while its sequence
    /// lasts, then wait. Larger steps are refused with [`NextError::ClockBackwards`].
    pub backward_tolerance: Duration,
    /// Before the first ID of a run, a clock behind the floor (the previous run's persisted mark,
    /// or this run's start) by at most this much waits, since the previous run reserved that far
    /// ahead; further behind is refused as a backward step.
    pub restart_grace: Duration,
}

/// A run of IDs claimed with one CAS: same tick, consecutive sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdBatch {
    /// The first ID.
    first: u64,
    /// How many IDs.
    len: u64,
    /// Distance between consecutive IDs (1 unless the sequence is not the lowest field).
    step: u64,
}

impl IdBatch {
    /// Number of IDs in the batch (at least 1).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a batch holds at least one ID. Present for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The smallest ID.
    pub fn first(&self) -> Id {
        Id::from_raw(self.first)
    }

    /// The IDs in increasing order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Id> + use<> {
        let (first, step) = (self.first, self.step);
        (0..self.len as usize).map(move |i| Id::from_raw(first + i as u64 * step))
    }

    /// Appends the raw IDs to `out`.
    pub fn extend_into(&self, out: &mut Vec<u64>) {
        out.extend(self.iter().map(Id::as_u64));
    }
}

/// The sans-IO Snowflake generator for one worker.
///
/// `Sync`: share it behind an `Arc` and call [`next`](Self::next) from any thread. The hot path is
/// one atomic load of the state, one of the reservation limit and one compare-and-swap; no lock,
/// no allocation.
#[derive(Debug)]
pub struct Generator {
    /// The layout; also copied into the fields below for the hot path.
    layout: Layout,
    /// The worker id, already shifted into place.
    worker_bits: u64,
    /// The worker id.
    worker: u64,
    /// `layout.sequence_bits`, the shift of the tick inside `state`.
    seq_bits: u32,
    /// `layout.max_sequence()`.
    max_seq: u64,
    /// Backward-step handling.
    policy: ClockPolicy,
    /// First tick this run may issue: one past the previous run's persisted mark.
    floor: u64,
    /// Last issued `(tick, sequence)`, packed; bit 63 = sealed.
    state: AtomicU64,
    /// Ticks at or above this are not covered by a persisted reservation yet.
    limit: AtomicU64,
}

impl Generator {
    /// A generator for `worker` that never issues a tick below `floor` and, until
    /// [`raise_limit`](Self::raise_limit) says otherwise, none at or above `limit`.
    ///
    /// Tick 0 is never issued (`floor` is at least 1), which lets "nothing issued yet" be a state.
    ///
    /// # Errors
    /// [`Error::InvalidLayout`] or [`Error::WorkerOutOfRange`].
    pub fn new(
        layout: Layout,
        worker: u64,
        policy: ClockPolicy,
        floor: u64,
        limit: u64,
    ) -> Result<Self> {
        layout.validate()?;
        if worker > layout.max_worker() {
            return Err(Error::WorkerOutOfRange {
                worker,
                bits: layout.worker_bits,
                max: layout.max_worker(),
            });
        }
        let floor = floor.max(1);
        let seq_bits = layout.sequence_bits;
        Ok(Self {
            worker_bits: worker << layout.worker_shift(),
            worker,
            seq_bits,
            max_seq: layout.max_sequence(),
            policy,
            floor,
            // (floor - 1, max_seq): as if the last tick before the floor were spent.
            state: AtomicU64::new((floor << seq_bits) - 1),
            limit: AtomicU64::new(limit),
            layout,
        })
    }

    /// The next ID at Unix time `now_ms`.
    ///
    /// # Errors
    /// See [`NextError`]; `Pending` is the only one a caller should simply retry.
    #[inline]
    pub fn next(&self, now_ms: u64) -> Result<Id, NextError> {
        self.claim(now_ms, 1).map(|(first, _)| Id::from_raw(first))
    }

    /// Up to `max` IDs (at least 1) from one tick, claimed with one CAS.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub fn next_batch(&self, now_ms: u64, max: u64) -> Result<IdBatch, NextError> {
        let (first, len) = self.claim(now_ms, max.max(1))?;
        Ok(IdBatch {
            first,
            len,
            step: 1 << self.layout.sequence_shift(),
        })
    }

    /// Claims up to `want` sequence numbers; returns the first ID and how many were claimed.
    #[inline(always)]
    fn claim(&self, now_ms: u64, want: u64) -> Result<(u64, u64), NextError> {
        let Some(now_tick) = self.layout.tick_of(now_ms) else {
            return Err(NextError::OutsideLifetime);
        };
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if cur & SEALED != 0 {
                return Err(NextError::Sealed);
            }
            let last_tick = cur >> self.seq_bits;
            let (start, room) = if now_tick > last_tick {
                if now_tick >= self.layout.tick_count() {
                    return Err(NextError::OutsideLifetime);
                }
                (now_tick << self.seq_bits, self.max_seq + 1)
            } else {
                let reason = if now_tick < last_tick {
                    self.behind(now_ms, last_tick)?
                } else {
                    PendingReason::SequenceExhausted
                };
                let seq = cur & self.max_seq;
                if seq == self.max_seq {
                    return Err(self.spent(last_tick, reason));
                }
                (cur + 1, self.max_seq - seq)
            };
            let take = want.min(room);
            let new = start + take - 1;
            if new >> self.seq_bits >= self.limit.load(Ordering::Acquire) {
                return Err(NextError::Pending {
                    until: now_ms + self.layout.tick_ms,
                    reason: PendingReason::Reservation,
                });
            }
            match self
                .state
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let tick = start >> self.seq_bits;
                    let seq = start & self.max_seq;
                    let id = (tick << self.layout.time_shift())
                        | self.worker_bits
                        | (seq << self.layout.sequence_shift());
                    return Ok((id, take));
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// The clock reads a tick before the last issued one: absorb, wait out a restart, or refuse.
    #[cold]
    fn behind(&self, now_ms: u64, last_tick: u64) -> Result<PendingReason, NextError> {
        let by_ms = self.layout.tick_start_ms(last_tick).saturating_sub(now_ms);
        let by = Duration::from_millis(by_ms);
        if last_tick < self.floor {
            // Nothing issued since the restart: the gap is the previous run's reservation.
            if by <= self.policy.restart_grace {
                return Ok(PendingReason::RestartMark);
            }
        } else if by <= self.policy.backward_tolerance {
            return Ok(PendingReason::ClockBehind);
        }
        Err(NextError::ClockBackwards { by })
    }

    /// The last tick's sequence is spent: wait for the next tick, unless there is none.
    #[cold]
    fn spent(&self, last_tick: u64, reason: PendingReason) -> NextError {
        if last_tick + 1 >= self.layout.tick_count() {
            return NextError::OutsideLifetime;
        }
        NextError::Pending {
            until: self.layout.tick_start_ms(last_tick + 1),
            reason,
        }
    }

    /// Allows ticks below `limit` (never lowers it). Call only after `limit` is persisted.
    pub fn raise_limit(&self, limit: u64) {
        self.limit.fetch_max(limit, Ordering::AcqRel);
    }

    /// Ticks at or above this wait for the reservation.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }

    /// Stops issuing for good and returns the last tick that may have been issued.
    ///
    /// Atomic with respect to `next`: every ID issued has a tick at or below the returned one.
    pub fn seal(&self) -> u64 {
        let prev = self.state.fetch_or(SEALED, Ordering::AcqRel);
        (prev & !SEALED) >> self.seq_bits
    }

    /// Whether [`seal`](Self::seal) was called.
    pub fn is_sealed(&self) -> bool {
        self.state.load(Ordering::Acquire) & SEALED != 0
    }

    /// The last tick that may have been issued (the floor's predecessor if none yet).
    pub fn last_tick(&self) -> u64 {
        (self.state.load(Ordering::Acquire) & !SEALED) >> self.seq_bits
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The worker id.
    pub fn worker(&self) -> u64 {
        self.worker
    }

    /// The backward-step policy.
    pub fn policy(&self) -> ClockPolicy {
        self.policy
    }

    /// Composes an ID of this generator's worker (for tests and tools; no state change).
    pub fn compose(&self, tick: u64, sequence: u64) -> u64 {
        compose_unchecked(&self.layout, tick, self.worker, sequence)
    }
}
