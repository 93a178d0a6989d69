//! Deterministic simulation of a kv cluster with turmoil (see `docs/kv.md`, "Simulation
//! testing"): real gRPC servers and clients on a simulated network, seeded partitions, message
//! loss, latency and crashes, then Jepsen-style checks after healing.
//!
//! - `RINGKIT_SIM_SEED=<n>` replays one seed (printing its schedule and history on failure).
//! - `RINGKIT_SIM_SEEDS=<count>` runs that many seeds (default 200).

mod sim;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sim::cluster::{SharedCluster, SingleNodes};
use sim::replicated::Replicated;
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

/// Runs `seeds` of the cluster `make` builds, spread over a few threads (each simulation is
/// single-threaded and independent), printing one line per seed; panics with the first
/// failure's report and every failing seed.
fn run_seeds(name: &str, make: fn() -> SharedCluster, seeds: &[u64]) {
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    eprintln!(
        "simulating {} over {} seeds, {threads} threads",
        make().describe(),
        seeds.len()
    );
    // Per worker: the seed it runs and since when (None when done).
    let current: Arc<Running> = Arc::new(Mutex::new(vec![None; threads]));
    let reports: Vec<(u64, usize, Option<String>)> = std::thread::scope(|scope| {
        let done = Arc::new(AtomicBool::new(false));
        {
            let (current, done) = (Arc::clone(&current), Arc::clone(&done));
            scope.spawn(move || watchdog(name, &current, &done));
        }
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let current = Arc::clone(&current);
                scope.spawn(move || {
                    let cluster = make();
                    let config = RunConfig::default();
                    let mut out = Vec::new();
                    for &seed in seeds.iter().skip(t).step_by(threads) {
                        lock(&current)[t] = Some((seed, Instant::now()));
                        let report = run(seed, &cluster, &config);
                        lock(&current)[t] = None;
                        let (acked, unknown) = report.counts();
                        eprintln!(
                            "{name} seed {seed}: {acked} acked, {unknown} unknown writes, {} faults, settled in {} ms, sim {} ms{}",
                            report.schedule.events.len(),
                            report.settle_ms,
                            report.sim_ms,
                            if report.violations.is_empty() { "" } else { "  FAILED" }
                        );
                        let failure = (!report.violations.is_empty()).then(|| report.failure());
                        out.push((seed, acked, failure));
                    }
                    out
                })
            })
            .collect();
        let reports = workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| panic!("a simulation thread panicked"))
            })
            .collect();
        done.store(true, Ordering::SeqCst);
        reports
    });
    let acked: usize = reports.iter().map(|r| r.1).sum();
    eprintln!(
        "{name}: {} seeds, {acked} acknowledged writes checked in {:?}",
        reports.len(),
        started.elapsed()
    );
    let failed: Vec<&(u64, usize, Option<String>)> =
        reports.iter().filter(|r| r.2.is_some()).collect();
    if let Some((_, _, Some(first))) = failed.first() {
        let seeds: Vec<u64> = failed.iter().map(|r| r.0).collect();
        panic!("{name}: {} failing seeds {seeds:?}\n{first}", seeds.len());
    }
    assert!(acked > 0, "the workload must get writes acknowledged");
}

/// Per worker thread: the seed it is running and since when (`None` between seeds).
type Running = Mutex<Vec<Option<(u64, Instant)>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Fails the whole test binary if one seed runs longer than `RINGKIT_SIM_WALL_SECS` (default
/// 300) of real time. Simulated time cannot bound this: a task that never awaits (a busy
/// loop) stops turmoil's clock inside one step, and the run would hang for ever.
fn watchdog(name: &str, current: &Running, done: &AtomicBool) {
    let limit = Duration::from_secs(
        std::env::var("RINGKIT_SIM_WALL_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        let stuck = lock(current)
            .iter()
            .flatten()
            .find(|(_, since)| since.elapsed() > limit)
            .copied();
        if let Some((seed, _)) = stuck {
            eprintln!(
                "{name} seed {seed} FAILED: no progress after {limit:?} of real time; a task is \
                 spinning without awaiting (simulated time cannot advance). Replay with \
                 RINGKIT_SIM_SEED={seed} cargo test -p ringkit-kv --test simulation -- {name} \
                 --nocapture and attach a debugger to see the task."
            );
            std::process::exit(101);
        }
    }
}

fn single_nodes() -> SharedCluster {
    Rc::new(SingleNodes)
}

fn five_nodes() -> SharedCluster {
    Rc::new(Replicated::new((1..=5).map(|i| format!("n{i}")).collect()))
}

/// Single KvNodes over simulated gRPC, with crashes on a durable disk and partitions: the
/// plumbing on its own. Every acknowledged write must be read back.
#[test]
fn single_nodes_keep_acknowledged_writes_through_crashes() {
    run_seeds("single", single_nodes, &seeds(20));
}

/// The cluster: five complete ClusterNodes (N=3, R=W=2) under seeded faults; every checker
/// must pass for every seed.
#[test]
fn cluster_survives_seeded_faults() {
    run_seeds("cluster", five_nodes, &seeds(200));
}
