//! Keyed check of one hot key: ringkit's store against governor's keyed limiter, same run.
//!
//! Both always admit (a rate far above what one thread can offer), both read a real clock
//! (governor: quanta; ours: `MonotonicClock`, quanta underneath). A second pair passes time in
//! (ours) or uses governor's fake clock, to compare the data structures alone.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::clock::{Clock, MonotonicClock, Timestamp};
use ringkit_ratelimit::store::KeyedStore;

fn hot_key(c: &mut Criterion) {
    let per_second = 100_000_000u32;
    let mut g = c.benchmark_group("keyed_check_hot_key");

    let limit = Limit::new(
        Algorithm::TokenBucket,
        u64::from(per_second),
        Duration::from_secs(1),
        Some(1_000_000),
    )
    .unwrap();
    let store = KeyedStore::default();
    let clock = MonotonicClock::new();
    let key = "user:12345".to_owned();
    g.bench_function("ringkit_token_bucket", |b| {
        b.iter(|| black_box(store.check(black_box(key.as_bytes()), &limit, clock.now(), 1)))
    });

    let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap())
        .allow_burst(NonZeroU32::new(1_000_000).unwrap());
    let governor = RateLimiter::keyed(quota);
    g.bench_function("governor_keyed", |b| {
        b.iter(|| black_box(governor.check_key(black_box(&key))))
    });

    let mut t = 1_000_000_000u64;
    g.bench_function("ringkit_token_bucket_time_given", |b| {
        b.iter(|| {
            t += 10;
            black_box(store.check(
                black_box(key.as_bytes()),
                &limit,
                Timestamp::from_nanos(t),
                1,
            ))
        })
    });
    let fake = FakeRelativeClock::default();
    let governor_fake = RateLimiter::dashmap_with_clock(quota, fake.clone());
    g.bench_function("governor_keyed_fake_clock", |b| {
        b.iter(|| {
            fake.advance(Duration::from_nanos(10));
            black_box(governor_fake.check_key(black_box(&key)))
        })
    });

    for algorithm in [
        Algorithm::SlidingWindow,
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
    ] {
        let limit = Limit::new(
            algorithm,
            u64::from(per_second),
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        let store = KeyedStore::default();
        g.bench_function(format!("ringkit_{algorithm}"), |b| {
            b.iter(|| black_box(store.check(black_box(key.as_bytes()), &limit, clock.now(), 1)))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = hot_key
}
criterion_main!(benches);
