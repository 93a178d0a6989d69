//! In-process generator benchmarks, ringkit against ferroid (the fastest Snowflake crate we found
//! on crates.io) in the same run.
//!
//! - `next_uncontended`: the cost of one successful call below the format's limit. Each batch
//!   issues half a tick's worth of IDs, then waits (untimed) for a fresh millisecond, so no timed
//!   call ever hits a spent sequence.
//!   `ringkit/try_next` reads `SystemTime` on every call, `ringkit/try_next_coarse_clock` a
//!   `CoarseClock` (one atomic load); ferroid is measured with its own cached clock and with a
//!   `SystemTime` clock.
//! - `sustained`: one worker, classic layout, issuing as fast as it can through each crate's
//!   waiting API; the format's ceiling is 4,096,000 IDs/s.
//!
//! Run: `cargo bench -p ringkit-idgen --bench generator`.
#![allow(missing_docs)]

use std::{
    hint::black_box,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferroid::{
    generator::AtomicSnowflakeGenerator,
    id::SnowflakeTwitterId,
    time::{MonotonicClock, TWITTER_EPOCH, TimeSource},
};
use ringkit_idgen::{
    Clock, CoarseClock, GeneratorConfig, IdGenHandle, MemoryMarkStore, SystemClock, start,
};

/// IDs per timed burst in `next_uncontended`: half of a classic tick.
const BURST: u64 = 2_048;
/// IDs per iteration of `sustained`: 100 ms at the format's limit.
const SUSTAINED: u64 = 409_600;

/// ferroid's clock reading the system clock on every call, like ringkit's `SystemClock`
/// (ferroid's own `MonotonicClock` is a cached clock updated by a background thread).
#[derive(Clone, Copy)]
struct SystemTimeSource;

impl TimeSource<u64> for SystemTimeSource {
    fn current_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            - TWITTER_EPOCH.as_millis() as u64
    }
}

fn ringkit_coarse() -> IdGenHandle<CoarseClock> {
    let clock = CoarseClock::start().unwrap_or_else(|e| panic!("coarse clock: {e}"));
    match start(GeneratorConfig::default(), 4, clock, MemoryMarkStore::new()) {
        Ok(handle) => handle,
        Err(e) => panic!("start: {e}"),
    }
}

fn ringkit() -> IdGenHandle<SystemClock> {
    match start(
        GeneratorConfig::default(),
        1,
        SystemClock,
        MemoryMarkStore::new(),
    ) {
        Ok(handle) => handle,
        Err(e) => panic!("start: {e}"),
    }
}

/// Waits (untimed) until the wall clock enters a new millisecond.
fn fresh_millisecond() {
    let start = SystemClock.now_ms();
    while SystemClock.now_ms() == start {
        std::hint::spin_loop();
    }
}

/// Times `iters` calls of `call`, in bursts of `burst` calls each starting in a fresh millisecond.
fn bursts(iters: u64, burst: u64, mut call: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = burst.min(iters - done);
        fresh_millisecond();
        let t = Instant::now();
        for _ in 0..n {
            call();
        }
        total += t.elapsed();
        done += n;
    }
    total
}

fn next_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("next_uncontended");
    let handle = ringkit();
    let ids = handle.generator();
    group.bench_function("ringkit/try_next", |b| {
        b.iter_custom(|iters| {
            bursts(iters, BURST, || {
                let _ = black_box(ids.try_next());
            })
        })
    });
    let coarse = ringkit_coarse();
    let fast = coarse.generator();
    group.bench_function("ringkit/try_next_coarse_clock", |b| {
        b.iter_custom(|iters| {
            bursts(iters, BURST, || {
                let _ = black_box(fast.try_next());
            })
        })
    });
    // One CAS claims 64 IDs; the figure is per ID (each timed call yields 64).
    group.bench_function("ringkit/try_next_batch_64_per_id", |b| {
        b.iter_custom(|iters| {
            bursts(iters.div_ceil(64), BURST / 64, || {
                let _ = black_box(ids.try_next_batch(64));
            })
        })
    });
    let cached: AtomicSnowflakeGenerator<SnowflakeTwitterId, _> =
        AtomicSnowflakeGenerator::new(2, MonotonicClock::<1>::with_epoch(TWITTER_EPOCH));
    group.bench_function("ferroid/atomic_cached_clock", |b| {
        b.iter_custom(|iters| {
            bursts(iters, BURST, || {
                let _ = black_box(cached.poll_id());
            })
        })
    });
    let system: AtomicSnowflakeGenerator<SnowflakeTwitterId, _> =
        AtomicSnowflakeGenerator::new(3, SystemTimeSource);
    group.bench_function("ferroid/atomic_system_clock", |b| {
        b.iter_custom(|iters| {
            bursts(iters, BURST, || {
                let _ = black_box(system.poll_id());
            })
        })
    });
    group.finish();
    drop(handle);
    drop(coarse);
}

fn sustained(c: &mut Criterion) {
    let mut group = c.benchmark_group("sustained_one_worker_classic");
    group.throughput(Throughput::Elements(SUSTAINED));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(6));
    let handle = ringkit();
    let ids = handle.generator();
    group.bench_function("ringkit/next_blocking", |b| {
        b.iter(|| {
            for _ in 0..SUSTAINED {
                let _ = black_box(ids.next_blocking());
            }
        })
    });
    group.bench_function("ringkit/try_next_yield", |b| {
        b.iter(|| {
            let mut n = 0;
            while n < SUSTAINED {
                match ids.try_next() {
                    Ok(id) => {
                        black_box(id);
                        n += 1;
                    }
                    Err(_) => std::thread::yield_now(),
                }
            }
        })
    });
    group.bench_function("ringkit/try_next_batch_4096_yield", |b| {
        b.iter(|| {
            let mut n = 0;
            while n < SUSTAINED {
                match ids.try_next_batch(4096.min(SUSTAINED - n)) {
                    Ok(batch) => {
                        black_box(batch.first());
                        n += batch.len();
                    }
                    Err(_) => std::thread::yield_now(),
                }
            }
        })
    });
    let coarse = ringkit_coarse();
    let fast = coarse.generator();
    group.bench_function("ringkit/next_blocking_coarse_clock", |b| {
        b.iter(|| {
            for _ in 0..SUSTAINED {
                let _ = black_box(fast.next_blocking());
            }
        })
    });
    let ferroid: AtomicSnowflakeGenerator<SnowflakeTwitterId, _> =
        AtomicSnowflakeGenerator::new(2, MonotonicClock::<1>::with_epoch(TWITTER_EPOCH));
    group.bench_function("ferroid/next_id_yield", |b| {
        b.iter(|| {
            for _ in 0..SUSTAINED {
                black_box(ferroid.next_id(|_| std::thread::yield_now()));
            }
        })
    });
    group.finish();
    drop(handle);
}

criterion_group!(benches, next_uncontended, sustained);
criterion_main!(benches);
