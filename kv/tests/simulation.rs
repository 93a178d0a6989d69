//! Deterministic simulation of a kv cluster with turmoil (see `docs/kv.md`, "Simulation
//! testing"): real gRPC servers and clients on a simulated network, seeded partitions, message
//! loss, latency and crashes, then Jepsen-style checks after healing.
//!
//! - `RINGKIT_SIM_SEED=<n>` replays one seed (printing its schedule and history on failure).
//! - `RINGKIT_SIM_SEEDS=<count>` runs that many seeds (default 200).

mod sim;

use std::rc::Rc;
use std::time::Instant;

use sim::cluster::{SharedCluster, SingleNodes};
use sim::runner::{RunConfig, run};

/// Seeds to run: one if `RINGKIT_SIM_SEED` is set, else `RINGKIT_SIM_SEEDS` (default `default`).
fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("RINGKIT_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("RINGKIT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    (0..count).collect()
}

/// Single KvNodes over simulated gRPC, with crashes on a durable disk and partitions: the
/// plumbing on its own. Every acknowledged write must be read back.
#[test]
fn single_nodes_keep_acknowledged_writes_through_crashes() {
    let cluster: SharedCluster = Rc::new(SingleNodes);
    let config = RunConfig::default();
    let started = Instant::now();
    let mut acked = 0;
    eprintln!("simulating {}", cluster.describe());
    for seed in seeds(20) {
        let report = run(seed, &cluster, &config);
        assert!(report.violations.is_empty(), "{}", report.failure());
        acked += report.counts().0;
        eprintln!(
            "seed {seed}: {:?} writes (acked, unknown), {} faults, settled in {} ms, sim {} ms",
            report.counts(),
            report.schedule.events.len(),
            report.settle_ms,
            report.sim_ms
        );
    }
    eprintln!(
        "{acked} acknowledged writes checked in {:?}",
        started.elapsed()
    );
    assert!(acked > 0, "the workload must get writes acknowledged");
}
