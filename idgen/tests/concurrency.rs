//! Uniqueness and strict order on the real clock: two threads sharing one generator, and the async
//! API under many tasks; plus the async wait on a paused tokio clock (it sleeps, never spins).

use std::{collections::HashSet, sync::Arc, time::Duration};

use ringkit_idgen::{
    Clock, CoarseClock, GeneratorConfig, IdGenHandle, Layout, MemoryMarkStore, SystemClock, start,
};

/// IDs per thread: 2 x 2 million in debug builds (the CI test run, a few seconds: hundreds of
/// spent ticks and many CAS races), 2 x 5 million in release builds.
const PER_THREAD: usize = if cfg!(debug_assertions) {
    2_000_000
} else {
    5_000_000
};

fn system() -> IdGenHandle<SystemClock> {
    start(
        GeneratorConfig::default(),
        3,
        SystemClock,
        MemoryMarkStore::new(),
    )
    .unwrap()
}

#[test]
fn two_threads_get_unique_strictly_increasing_ids() {
    two_threads(system());
}

#[test]
fn two_threads_on_the_coarse_clock_get_unique_strictly_increasing_ids() {
    let clock = CoarseClock::start().unwrap();
    two_threads(start(GeneratorConfig::default(), 3, clock, MemoryMarkStore::new()).unwrap());
}

fn two_threads<C: Clock>(handle: IdGenHandle<C>) {
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let ids = handle.generator();
            std::thread::spawn(move || {
                let mut out = Vec::with_capacity(PER_THREAD);
                while out.len() < PER_THREAD {
                    match ids.try_next() {
                        Ok(id) => out.push(id.as_u64()),
                        Err(_) => std::thread::yield_now(),
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Vec::with_capacity(2 * PER_THREAD);
    for t in threads {
        let ids = t.join().unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "each thread sees strictly increasing IDs"
        );
        all.extend(ids);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "no ID issued twice");
    // Every ID carries worker 3 in bits 12..22 of the classic layout.
    assert!(all.iter().all(|&id| (id >> 12) & 1023 == 3));
    handle.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_on_the_async_api_get_unique_ids() {
    let handle = system();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let ids = handle.generator();
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(2_000);
                for _ in 0..1_000 {
                    out.push(ids.next_id().await.unwrap().as_u64());
                }
                let mut batch = Vec::new();
                ids.fill(1_000, &mut batch).await.unwrap();
                out.extend(batch);
                out
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for t in tasks {
        let ids = t.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        for id in ids {
            assert!(seen.insert(id));
        }
    }
    assert_eq!(seen.len(), 64 * 2_000);
    handle.shutdown_async().await.unwrap();
}

/// Unix ms read from tokio's clock, so `tokio::time::pause` controls it.
struct TokioClock {
    base_ms: u64,
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }
}

#[tokio::test(start_paused = true)]
async fn async_waits_sleep_on_the_tokio_timer_until_the_next_tick() {
    let clock = Arc::new(TokioClock {
        base_ms: 1_700_000_000_000,
        start: tokio::time::Instant::now(),
    });
    let handle = start(
        GeneratorConfig::default(),
        1,
        Arc::clone(&clock),
        MemoryMarkStore::new(),
    )
    .unwrap();
    let ids = handle.generator();
    let before = tokio::time::Instant::now();
    let mut out = Vec::new();
    // Three ticks' worth: two waits. On a paused clock a spinning wait would never return.
    ids.fill(3 * 4096, &mut out).await.unwrap();
    assert!(out.windows(2).all(|w| w[0] < w[1]));
    let layout = Layout::classic();
    let ticks: HashSet<u64> = out.iter().map(|id| id >> layout.time_shift()).collect();
    assert_eq!(ticks.len(), 3);
    assert!(tokio::time::Instant::now() - before >= Duration::from_millis(2));
    drop(ids);
    handle.shutdown_async().await.unwrap();
}
