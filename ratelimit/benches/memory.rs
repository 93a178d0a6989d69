//! Memory per key at 1 M keys, for each algorithm: the store's own accounting (allocation sizes)
//! and the process's resident-set growth as a cross-check. Prints a table; not a timing bench.
//!
//! `cargo bench -p ringkit-ratelimit --bench memory`

use std::time::Duration;

use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::clock::Timestamp;
use ringkit_ratelimit::store::{KeyedStore, StoreConfig};

const KEYS: u64 = 1_000_000;

/// Resident set size in bytes (Linux), 0 elsewhere.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    println!(
        "| algorithm | keys | key length | table bytes/key (short keys inline) | heap bytes/key (long keys, logs) | total/key | RSS growth/key |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (algorithm, requests) in [
        (Algorithm::TokenBucket, 100),
        (Algorithm::FixedWindow, 100),
        (Algorithm::SlidingWindow, 100),
        (Algorithm::SlidingLog, 100),
    ] {
        let limit = Limit::new(algorithm, requests, Duration::from_secs(3600), None).unwrap();
        let before = rss();
        let store = KeyedStore::new(StoreConfig {
            max_keys: 2_000_000,
            ..StoreConfig::default()
        })
        .unwrap();
        let now = Timestamp::from_millis(1_000);
        for i in 0..KEYS {
            // 12-byte keys like "user:0001234".
            let key = format!("user:{i:07}");
            store.check(key.as_bytes(), &limit, now, 1);
        }
        let grown = rss().saturating_sub(before);
        let s = store.stats();
        assert_eq!(s.keys as u64, KEYS);
        println!(
            "| {algorithm} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s.keys,
            s.key_bytes as f64 / s.keys as f64,
            s.table_bytes as f64 / s.keys as f64,
            s.heap_bytes as f64 / s.keys as f64,
            s.bytes_per_key(),
            grown as f64 / s.keys as f64,
        );
        drop(store);
    }
    println!(
        "\nRSS growth is exact only for the first row (later rows reuse pages freed by the previous \
         store); it includes the allocator's per-allocation overhead of sliding logs."
    );
}
