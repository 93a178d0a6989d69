//! Restart safety: a new run never issues at or below the previous run's persisted mark, even when
//! the clock was set back, after a crash or a clean shutdown, on SQLite and in memory.

use std::{collections::HashSet, time::Duration};

use ringkit_idgen::{
    Error, GeneratorConfig, IdGenHandle, Layout, ManualClock, MarkStore, MemoryMarkStore,
    NextError, PendingReason, SqliteMarkStore, start,
};

const T0: u64 = 1_700_000_000_000;

fn run<S: MarkStore>(clock: &ManualClock, store: S) -> IdGenHandle<ManualClock> {
    start(GeneratorConfig::default(), 42, clock.clone(), store).unwrap()
}

/// Issues `n` IDs (moving the clock on when a tick is spent), records them, and returns the
/// smallest and largest.
fn issue(
    handle: &IdGenHandle<ManualClock>,
    clock: &ManualClock,
    n: usize,
    seen: &mut HashSet<u64>,
) -> (u64, u64) {
    let ids = handle.generator();
    let (mut min, mut max) = (u64::MAX, 0);
    let mut issued = 0;
    while issued < n {
        match ids.try_next() {
            Ok(id) => {
                assert!(seen.insert(id.as_u64()), "duplicate {id}");
                min = min.min(id.as_u64());
                max = max.max(id.as_u64());
                issued += 1;
            }
            Err(NextError::Pending { .. }) => clock.advance(Duration::from_millis(1)),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    (min, max)
}

#[test]
fn crash_then_restart_with_the_clock_set_back_issues_no_duplicate() {
    let clock = ManualClock::new(T0);
    let store = MemoryMarkStore::new();
    let mut seen = HashSet::new();

    let first = run(&clock, store.clone());
    issue(&first, &clock, 20_000, &mut seen);
    // Renewal moves the mark with the clock; the reservation stays ahead of what was issued.
    clock.advance(Duration::from_secs(2));
    let mark = first.renew_now().unwrap();
    assert_eq!(mark, clock_now(&clock) + 3_000);
    let (_, max_first) = issue(&first, &clock, 5_000, &mut seen);
    first.simulate_crash();
    assert_eq!(store.get(42), Some(mark));

    // The operator sets the clock back an hour and restarts.
    clock.step_back(Duration::from_secs(3600));
    let second = run(&clock, store.clone());
    let ids = second.generator();
    match ids.try_next() {
        Err(NextError::ClockBackwards { by }) => assert!(by > Duration::from_secs(3590)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Back to just before the mark: within the restart grace, the generator waits for the mark.
    clock.set(mark - 1_000);
    assert_eq!(
        ids.try_next(),
        Err(NextError::Pending {
            until: mark,
            reason: PendingReason::RestartMark
        })
    );
    clock.set(mark);
    let (min_second, _) = issue(&second, &clock, 20_000, &mut seen);
    assert!(ids.info().high_water_mark_ms > mark);
    drop(ids);
    second.shutdown().unwrap();
    assert!(min_second > max_first);
}

fn clock_now(clock: &ManualClock) -> u64 {
    use ringkit_idgen::Clock;
    clock.now_ms()
}

#[test]
fn clean_shutdown_persists_the_exact_mark_so_a_quick_restart_need_not_wait() {
    let clock = ManualClock::new(T0);
    let store = MemoryMarkStore::new();
    let mut seen = HashSet::new();
    let first = run(&clock, store.clone());
    let (_, max_first) = issue(&first, &clock, 10_000, &mut seen);
    let last_ms = Layout::classic().tick_start_ms(max_first >> 22);
    let mark = first.shutdown().unwrap();
    assert_eq!(mark, last_ms + 1);
    assert_eq!(store.get(42), Some(mark));

    // Restart 5 ms in the past: the generator waits out the few ms, then continues above.
    clock.set(last_ms - 5);
    let second = run(&clock, store.clone());
    assert!(matches!(
        second.generator().try_next(),
        Err(NextError::Pending {
            reason: PendingReason::RestartMark,
            ..
        })
    ));
    clock.set(mark);
    let next = second.generator().try_next().unwrap();
    assert!(next.as_u64() > max_first);
    assert!(seen.insert(next.as_u64()));
}

#[tokio::test]
async fn async_callers_see_a_typed_refusal_after_a_large_step() {
    let clock = ManualClock::new(T0);
    let handle = run(&clock, MemoryMarkStore::new());
    let ids = handle.generator();
    ids.next_id().await.unwrap();
    clock.step_back(Duration::from_secs(1));
    let err = ids.next_id().await.unwrap_err();
    assert!(matches!(err, Error::ClockBackwards { .. }), "{err}");
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("moved backwards"));
}

#[test]
fn sqlite_restart_with_the_clock_set_back_issues_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let mut seen = HashSet::new();

    let first = run(&clock, SqliteMarkStore::open_dir(dir.path()).unwrap());
    clock.advance(Duration::from_millis(2_600));
    first.renew_now().unwrap();
    let (_, max_first) = issue(&first, &clock, 30_000, &mut seen);
    first.simulate_crash();

    // Set back 1 s, reopen the same file: refused, then waits, then issues above everything.
    clock.step_back(Duration::from_secs(1));
    let second = run(&clock, SqliteMarkStore::open_dir(dir.path()).unwrap());
    let mark = second.generator().info().high_water_mark_ms;
    while second.generator().try_next().is_err() {
        clock.advance(Duration::from_millis(50));
        assert!(
            clock_now(&clock) <= mark,
            "never issued up to the new reservation"
        );
    }
    let (min_second, _) = issue(&second, &clock, 30_000, &mut seen);
    assert!(min_second > max_first);
    second.shutdown().unwrap();
    let mut reopened = SqliteMarkStore::open_dir(dir.path()).unwrap();
    assert!(reopened.load(42).unwrap().unwrap() > Layout::classic().tick_start_ms(max_first >> 22));
}

#[test]
fn out_of_range_worker_refuses_to_start() {
    let err = start(
        GeneratorConfig::default(),
        1024,
        ManualClock::new(T0),
        MemoryMarkStore::new(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::WorkerOutOfRange { worker: 1024, .. }));
    let sony = GeneratorConfig::with_layout(Layout::sonyflake());
    assert!(start(sony, 65_535, ManualClock::new(T0), MemoryMarkStore::new()).is_ok());
}
