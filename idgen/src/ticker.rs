//! Precise wake-ups at tick boundaries for async waiters.
//!
//! tokio's timer has millisecond granularity and rounds deadlines up, so a task that sleeps until
//! the next 1 ms tick wakes on average about half a tick late, and a generator driven at its limit
//! by async callers then issues barely 60% of its capacity (ADR 0202). The ticker is one thread per
//! generator that sleeps in the kernel (a condition variable with a timeout, sub-millisecond
//! precision) until the earliest tick any task waits for, then wakes every waiting task. It does
//! nothing while nobody waits, and it never spins: the kernel does the waiting.

use std::{
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::sync::Notify;

use crate::Clock;

/// The waiters' side and the ticker thread's side of the wake-ups.
#[derive(Debug, Default)]
pub(crate) struct Ticker {
    /// Tasks waiting for a tick.
    notify: Notify,
    /// The earliest deadline asked for, and the stop flag.
    state: Mutex<TickerState>,
    /// Wakes the ticker thread when a deadline is added or it must stop.
    cond: Condvar,
}

#[derive(Debug, Default)]
struct TickerState {
    /// Earliest Unix ms any waiter asked for; `None` when nobody waits.
    next: Option<u64>,
    /// Set once to end the thread.
    stop: bool,
}

impl Ticker {
    fn lock(&self) -> MutexGuard<'_, TickerState> {
        // The state is two plain fields that are valid at every point; poison carries no meaning.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the ticker passes `until` (Unix ms), or `fallback` elapses on the tokio timer,
    /// whichever is first. The fallback bounds the wait if the ticker thread is gone or late, and
    /// is what moves a paused test clock.
    pub(crate) async fn wait_until(&self, until: u64, fallback: Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the deadline is published, so a wake-up between the two is not lost.
        notified.as_mut().enable();
        {
            let mut state = self.lock();
            state.next = Some(state.next.map_or(until, |n| n.min(until)));
        }
        self.cond.notify_one();
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(fallback) => {}
        }
    }

    /// Ends [`run`](Self::run).
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.cond.notify_one();
    }

    /// The ticker thread's loop: sleep until the earliest deadline, wake everyone, repeat.
    pub(crate) fn run<C: Clock>(&self, clock: &C) {
        let mut state = self.lock();
        loop {
            if state.stop {
                self.notify.notify_waiters();
                return;
            }
            state = match state.next {
                None => self
                    .cond
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(until) => {
                    // The clock's own reading decides (a cached clock may trail the wall clock);
                    // `until` never returns zero before then, so this never spins.
                    let left = clock.until(until);
                    if clock.now_ms() >= until {
                        state.next = None;
                        drop(state);
                        self.notify.notify_waiters();
                        self.lock()
                    } else {
                        self.cond
                            .wait_timeout(state, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                }
            };
        }
    }
}
