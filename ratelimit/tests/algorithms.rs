//! The guarantees of each algorithm, over random arrival sequences with a manual clock.
//!
//! * sliding log (exact): no window of length W ever holds more than the limit;
//! * fixed window: no aligned window holds more than the limit;
//! * sliding window counter: no aligned window above the limit, and any sliding window at most
//!   `limit + prev * f` (hence below `2 * limit`), the bound stated in its module docs;
//! * token bucket: any interval of length d admits at most `burst + d / interval`.

use std::time::Duration;

use proptest::prelude::*;
use ringkit_ratelimit::algorithm::{Algorithm, Limit, State};
use ringkit_ratelimit::clock::Timestamp;

const W: u64 = 1_000_000_000; // one-second windows, in ns

/// Feeds `arrivals` (gap before each hit in ns, cost) to `limit`; returns the admitted hits.
fn admitted(limit: &Limit, arrivals: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut state: State = limit.fresh_state();
    let mut t = 5 * W; // not at the epoch, so windows before the first hit exist
    let mut out = Vec::new();
    for &(gap, cost) in arrivals {
        t += gap;
        let d = limit.check(&mut state, Timestamp::from_nanos(t), cost);
        if d.allowed {
            out.push((t, cost));
            assert!(d.remaining <= limit.burst().unwrap_or(limit.requests()));
        } else if cost <= limit.burst().unwrap_or(limit.requests()) {
            assert!(
                d.retry_after.is_some_and(|r| !r.is_zero()),
                "a rejection says when to retry"
            );
        } else {
            assert_eq!(
                d.retry_after, None,
                "waiting never helps a cost above the capacity"
            );
        }
    }
    out
}

/// Admitted cost in `[from, to)`.
fn sum_in(hits: &[(u64, u64)], from: u64, to: u64) -> u64 {
    hits.iter()
        .filter(|(t, _)| *t >= from && *t < to)
        .map(|(_, c)| c)
        .sum()
}

/// Random arrivals: gaps up to 0.3 s (often zero: bursts), costs 1..=4.
fn arrivals() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec(
        (prop_oneof![Just(0u64), 0..W / 50, 0..3 * W / 10], 1u64..=4),
        1..250,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sliding_log_never_exceeds_the_limit_in_any_window(limit in 1u64..20, arrivals in arrivals()) {
        let l = Limit::new(Algorithm::SlidingLog, limit, Duration::from_nanos(W), None).unwrap();
        let hits = admitted(&l, &arrivals);
        // The densest window starts at an admitted hit.
        for &(t, _) in &hits {
            prop_assert!(sum_in(&hits, t, t + W) <= limit);
        }
    }

    #[test]
    fn fixed_window_never_exceeds_the_limit_per_aligned_window(limit in 1u64..20, arrivals in arrivals()) {
        let l = Limit::new(Algorithm::FixedWindow, limit, Duration::from_nanos(W), None).unwrap();
        let hits = admitted(&l, &arrivals);
        for &(t, _) in &hits {
            let start = t - t % W;
            prop_assert!(sum_in(&hits, start, start + W) <= limit);
        }
    }

    #[test]
    fn sliding_window_counter_stays_within_its_bound(limit in 1u64..20, arrivals in arrivals()) {
        let l = Limit::new(Algorithm::SlidingWindow, limit, Duration::from_nanos(W), None).unwrap();
        let hits = admitted(&l, &arrivals);
        for &(t, _) in &hits {
            let start = t - t % W;
            prop_assert!(sum_in(&hits, start, start + W) <= limit, "aligned window");
            // Window (t - W, t]: at most limit + prev * f, where f = elapsed fraction at t.
            let prev = sum_in(&hits, start - W, start);
            let elapsed = t - start;
            let bound = limit + prev * elapsed / W;
            let in_window = sum_in(&hits, t + 1 - W, t + 1);
            prop_assert!(in_window <= bound, "{} > {} (limit {}, prev {}, f {})", in_window, bound, limit, prev, elapsed as f64 / W as f64);
            prop_assert!(in_window < 2 * limit);
        }
    }

    #[test]
    fn token_bucket_admits_at_most_burst_plus_refill(rate in 1u64..20, burst in 1u64..30, arrivals in arrivals()) {
        let l = Limit::new(Algorithm::TokenBucket, rate, Duration::from_nanos(W), Some(burst)).unwrap();
        let Limit::TokenBucket(tb) = l else { unreachable!() };
        let interval = tb.interval().as_nanos() as u64;
        let hits = admitted(&l, &arrivals);
        for (i, &(ti, _)) in hits.iter().enumerate() {
            for &(tj, _) in &hits[i..] {
                let used = sum_in(&hits, ti, tj + 1);
                prop_assert!(used <= burst + (tj - ti) / interval, "{} in {} ns", used, tj - ti);
            }
        }
    }

    #[test]
    fn peeks_never_change_a_decision(limit in 1u64..10, arrivals in arrivals()) {
        for algorithm in [Algorithm::TokenBucket, Algorithm::SlidingLog, Algorithm::SlidingWindow, Algorithm::FixedWindow] {
            let l = Limit::new(algorithm, limit, Duration::from_nanos(W), None).unwrap();
            let plain = admitted(&l, &arrivals);
            // The same arrivals with a peek before each hit.
            let mut state = l.fresh_state();
            let mut t = 5 * W;
            let mut with_peeks = Vec::new();
            for &(gap, cost) in &arrivals {
                t += gap;
                let now = Timestamp::from_nanos(t);
                let peek = l.check(&mut state, now, 0);
                let d = l.check(&mut state, now, cost);
                prop_assert_eq!(peek.remaining, d.remaining + if d.allowed { cost } else { 0 }, "{}", algorithm);
                if d.allowed { with_peeks.push((t, cost)); }
            }
            prop_assert_eq!(&plain, &with_peeks);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `retry_after` is exact: waiting that long admits the same hit, a nanosecond less does not.
    #[test]
    fn retry_after_is_sound_and_tight(limit in 1u64..10, arrivals in arrivals(), cost in 1u64..4) {
        for algorithm in [Algorithm::TokenBucket, Algorithm::SlidingLog, Algorithm::SlidingWindow, Algorithm::FixedWindow] {
            let l = Limit::new(algorithm, limit, Duration::from_nanos(W), None).unwrap();
            let mut state = l.fresh_state();
            let mut t = 5 * W;
            for &(gap, c) in &arrivals {
                t += gap;
                l.check(&mut state, Timestamp::from_nanos(t), c);
            }
            let d = l.check(&mut state.clone(), Timestamp::from_nanos(t), cost);
            if let (false, Some(r)) = (d.allowed, d.retry_after) {
                let r = r.as_nanos() as u64;
                prop_assert!(r > 0);
                let at = |dt: u64| l.check(&mut state.clone(), Timestamp::from_nanos(t + dt), cost).allowed;
                prop_assert!(at(r), "{}: not admitted after retry_after {}", algorithm, r);
                prop_assert!(!at(r - 1), "{}: admitted 1 ns before retry_after {}", algorithm, r);
            }
        }
    }
}

#[test]
fn sliding_window_counter_is_near_exact_for_steady_traffic() {
    // Twice the limit arrives evenly; once warmed up, every sliding window admits about `limit`.
    let limit = 50;
    let l = Limit::new(
        Algorithm::SlidingWindow,
        limit,
        Duration::from_nanos(W),
        None,
    )
    .unwrap();
    let gap = W / (2 * limit);
    let arrivals: Vec<(u64, u64)> = (0..20 * 2 * limit).map(|_| (gap, 1)).collect();
    let hits = admitted(&l, &arrivals);
    let warm = hits[0].0 + 3 * W;
    let mut worst = 0;
    for &(t, _) in hits.iter().filter(|(t, _)| *t >= warm) {
        let n = sum_in(&hits, t + 1 - W, t + 1);
        worst = worst.max(n);
        assert!(n >= limit - 2, "under-admits: {n}");
    }
    assert!(
        worst <= limit + 1,
        "over-admits: {worst} in a window of limit {limit}"
    );
}

#[test]
fn sliding_window_counter_worst_case_approaches_twice_the_limit() {
    // The documented worst case: a full previous window packed at its end, then a burst just
    // before the current window ends.
    let limit = 100;
    let l = Limit::new(
        Algorithm::SlidingWindow,
        limit,
        Duration::from_nanos(W),
        None,
    )
    .unwrap();
    let mut state = l.fresh_state();
    let end_of_prev = 10 * W - 1;
    assert!(
        l.check(&mut state, Timestamp::from_nanos(end_of_prev), limit)
            .allowed
    );
    let late = 11 * W - W / 100; // f = 0.99
    let mut extra = 0;
    while l.check(&mut state, Timestamp::from_nanos(late), 1).allowed {
        extra += 1;
    }
    // Both bursts lie within one window of length W.
    assert!(late - end_of_prev < W);
    assert_eq!(extra, 99, "limit + floor(prev * f) - limit");
}
