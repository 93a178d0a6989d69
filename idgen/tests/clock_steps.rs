//! The sans-IO core under a hand-driven clock: backward steps of 1 ms, 5 ms, 1 s and 1 h, sequence
//! exhaustion, tick boundaries, reservation limits, lifetime ends and sealing.

use std::time::Duration;

use proptest::prelude::*;
use ringkit_idgen::{ClockPolicy, Generator, Id, Layout, NextError, PendingReason};

/// An arbitrary "now" well after the classic epoch.
const T0: u64 = 1_700_000_000_000;

fn policy() -> ClockPolicy {
    ClockPolicy {
        backward_tolerance: Duration::from_millis(10),
        restart_grace: Duration::from_millis(3_010),
    }
}

fn classic() -> Generator {
    Generator::new(Layout::classic(), 5, policy(), 1, u64::MAX).unwrap()
}

fn fields(id: Id) -> (u64, u64, u64) {
    let d = id.decode(&Layout::classic()).unwrap();
    (d.unix_ms, d.worker, d.sequence)
}

#[test]
fn sequence_exhaustion_waits_for_the_next_tick() {
    let g = classic();
    let mut last = g.next(T0).unwrap();
    for _ in 1..4096 {
        let id = g.next(T0).unwrap();
        assert!(id > last);
        last = id;
    }
    assert_eq!(fields(last), (T0, 5, 4095));
    assert_eq!(
        g.next(T0),
        Err(NextError::Pending {
            until: T0 + 1,
            reason: PendingReason::SequenceExhausted
        })
    );
    let next = g.next(T0 + 1).unwrap();
    assert_eq!(fields(next), (T0 + 1, 5, 0));
    assert!(next > last);
}

#[test]
fn small_backward_steps_are_absorbed_on_the_last_tick() {
    for back in [1, 5] {
        let g = classic();
        let first = g.next(T0).unwrap();
        // The clock steps back: issuing continues on tick T0 while its sequence lasts.
        let absorbed = g.next(T0 - back).unwrap();
        assert_eq!(fields(absorbed), (T0, 5, 1), "step back {back} ms");
        assert!(absorbed > first);
        for _ in 2..4096 {
            g.next(T0 - back).unwrap();
        }
        // Then it waits for the tick after the last one, not for the clock's own next tick.
        assert_eq!(
            g.next(T0 - back),
            Err(NextError::Pending {
                until: T0 + 1,
                reason: PendingReason::ClockBehind
            })
        );
        assert_eq!(fields(g.next(T0 + 1).unwrap()), (T0 + 1, 5, 0));
    }
}

#[test]
fn large_backward_steps_are_refused_until_the_clock_catches_up() {
    for back in [Duration::from_secs(1), Duration::from_secs(3600)] {
        let g = classic();
        let first = g.next(T0).unwrap();
        let now = T0 - back.as_millis() as u64;
        assert_eq!(g.next(now), Err(NextError::ClockBackwards { by: back }));
        assert_eq!(
            g.next_batch(now, 10).unwrap_err(),
            NextError::ClockBackwards { by: back }
        );
        // Within the tolerance again: absorbed; caught up: normal.
        assert!(g.next(T0 - 10).unwrap() > first);
        assert_eq!(fields(g.next(T0 + 2).unwrap()), (T0 + 2, 5, 0));
    }
}

#[test]
fn tolerance_boundary_is_inclusive() {
    let g = classic();
    g.next(T0).unwrap();
    assert!(g.next(T0 - 10).is_ok());
    assert_eq!(
        g.next(T0 - 11),
        Err(NextError::ClockBackwards {
            by: Duration::from_millis(11)
        })
    );
}

#[test]
fn tick_boundaries_follow_the_layout() {
    // Sonyflake: 10 ms ticks; ms 0..=9 of a tick share it, ms 10 starts the next.
    let layout = Layout::sonyflake();
    let g = Generator::new(layout.clone(), 9, policy(), 1, u64::MAX).unwrap();
    let start = layout.tick_start_ms(layout.tick_of(T0).unwrap() + 1);
    let a = g.next(start).unwrap().decode(&layout).unwrap();
    let b = g.next(start + 9).unwrap().decode(&layout).unwrap();
    let c = g.next(start + 10).unwrap().decode(&layout).unwrap();
    assert_eq!((a.tick, a.sequence), (b.tick, 0));
    assert_eq!(b.sequence, 1);
    assert_eq!((c.tick, c.sequence), (a.tick + 1, 0));
    assert_eq!((a.unix_ms, c.unix_ms), (start, start + 10));
    for _ in 1..256 {
        g.next(start + 10).unwrap();
    }
    assert_eq!(
        g.next(start + 19),
        Err(NextError::Pending {
            until: start + 20,
            reason: PendingReason::SequenceExhausted
        })
    );
}

#[test]
fn batches_take_what_the_tick_has_left() {
    let g = classic();
    let a = g.next_batch(T0, 4000).unwrap();
    assert_eq!(a.len(), 4000);
    let b = g.next_batch(T0, 4000).unwrap();
    assert_eq!(b.len(), 96);
    assert_eq!(b.first().as_u64(), a.first().as_u64() + 4000);
    let ids: Vec<Id> = a.iter().chain(b.iter()).collect();
    assert!(ids.windows(2).all(|w| w[1].as_u64() == w[0].as_u64() + 1));
    assert!(matches!(
        g.next_batch(T0, 1),
        Err(NextError::Pending { .. })
    ));
    // Sonyflake's sequence is not the lowest field: batch IDs step over the machine bits.
    let l = Layout::sonyflake();
    let s = Generator::new(l.clone(), 3, policy(), 1, u64::MAX).unwrap();
    let batch = s.next_batch(T0, 3).unwrap();
    let seqs: Vec<_> = batch
        .iter()
        .map(|id| id.decode(&l).unwrap().sequence)
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(batch.iter().all(|id| id.decode(&l).unwrap().worker == 3));
}

#[test]
fn nothing_is_issued_beyond_the_reservation() {
    let layout = Layout::classic();
    let limit = layout.tick_of(T0).unwrap() + 2;
    let g = Generator::new(layout, 1, policy(), 1, limit).unwrap();
    g.next(T0 + 1).unwrap();
    assert_eq!(
        g.next(T0 + 2),
        Err(NextError::Pending {
            until: T0 + 3,
            reason: PendingReason::Reservation
        })
    );
    g.raise_limit(limit + 100);
    g.raise_limit(limit); // never lowers
    assert!(g.next(T0 + 2).is_ok());
}

#[test]
fn lifetime_ends_are_refused() {
    let layout = Layout {
        time_bits: 8,
        ..Layout::classic()
    };
    let g = Generator::new(layout.clone(), 0, policy(), 1, u64::MAX).unwrap();
    assert_eq!(g.next(layout.epoch_ms - 1), Err(NextError::OutsideLifetime));
    let last = layout.tick_start_ms(255);
    g.next(last).unwrap();
    assert_eq!(g.next(last + 1), Err(NextError::OutsideLifetime));
    for _ in 1..4096 {
        g.next(last).unwrap();
    }
    assert_eq!(g.next(last), Err(NextError::OutsideLifetime));
}

#[test]
fn sealing_reports_the_last_tick_and_stops_issuing() {
    let g = classic();
    g.next(T0).unwrap();
    g.next(T0 + 7).unwrap();
    let tick = g.seal();
    assert_eq!(Layout::classic().tick_start_ms(tick), T0 + 7);
    assert!(g.is_sealed());
    assert_eq!(g.next(T0 + 8), Err(NextError::Sealed));
}

#[test]
fn worker_ids_that_do_not_fit_are_refused() {
    let err = Generator::new(Layout::classic(), 1024, policy(), 1, u64::MAX).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

proptest! {
    /// Whatever the clock does (forward, back a little, back a lot), every ID that is issued is
    /// greater than every ID issued before it.
    #[test]
    fn ids_strictly_increase_under_any_clock(steps in prop::collection::vec(-2_000i64..2_000, 1..400)) {
        let g = classic();
        let mut now = T0 as i64;
        let mut last = 0u64;
        for step in steps {
            now += step;
            for _ in 0..(step.unsigned_abs() % 5) {
                match g.next(now as u64) {
                    Ok(id) => {
                        prop_assert!(id.as_u64() > last);
                        last = id.as_u64();
                    }
                    Err(NextError::Pending { .. } | NextError::ClockBackwards { .. }) => {}
                    Err(other) => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
    }
}
