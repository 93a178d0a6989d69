//! Deterministic simulation of a kv cluster with turmoil (see `docs/kv.md`, "Simulation
//! testing"): real gRPC servers and clients on a simulated network, seeded partitions, message
//! loss, latency and crashes, then Jepsen-style checks after healing.
//!
//! - `RINGKIT_SIM_SEED=<n>` replays one seed (printing its schedule and history on failure).
//! - `RINGKIT_SIM_SEEDS=<count>` runs that many seeds (default 200).
//!
//! Seeds run in worker processes (this binary again, one seed at a time each): tokio numbers
//! tasks process-wide, and a run replays exactly only if nothing else in its process spawns
//! tasks meanwhile (`sim::runner::align_task_ids`).

mod sim;

use std::process::{Command, Stdio};
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

/// How `run_seeds` hands a worker process its seeds (comma-separated).
const WORKER_SEEDS: &str = "RINGKIT_SIM_WORKER_SEEDS";

/// Runs `seeds` of the cluster `make` builds, as the test named `test` (the function whose body
/// calls this), and panics if any seed fails.
///
/// Called by the test harness, it starts worker processes (as many as there are cores, at most
/// 4) that run this same test with [`WORKER_SEEDS`] set, splits the seeds among them, and
/// checks what they report. Called in a worker, it runs its seeds one after the other.
fn run_seeds(
    test: &str,
    name: &str,
    make: fn() -> SharedCluster,
    config: &RunConfig,
    seeds: &[u64],
) {
    if let Ok(list) = std::env::var(WORKER_SEEDS) {
        let mine: Vec<u64> = list.split(',').filter_map(|s| s.parse().ok()).collect();
        return run_worker(name, make, config, &mine);
    }
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    eprintln!(
        "simulating {} over {} seeds, {workers} worker processes",
        make().describe(),
        seeds.len()
    );
    let results = run_in_workers(test, seeds, workers);
    let acked: usize = results.iter().map(|r| r.acked).sum();
    eprintln!(
        "{name}: {} seeds, {acked} acknowledged writes checked in {:?}",
        results.len(),
        started.elapsed()
    );
    let failed: Vec<u64> = results
        .iter()
        .filter(|r| r.failed)
        .map(|r| r.seed)
        .collect();
    assert!(
        failed.is_empty(),
        "{name}: {} failing seeds {failed:?}; their reports are in the output above, and each \
         replays with RINGKIT_SIM_SEED=<seed> cargo test -p ringkit-kv --test simulation -- {test}",
        failed.len()
    );
    assert_eq!(
        results.len(),
        seeds.len(),
        "{name}: some seeds reported no result"
    );
    assert!(acked > 0, "the workload must get writes acknowledged");
}

/// One seed's outcome, as a worker prints it and the parent reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SeedResult {
    seed: u64,
    acked: usize,
    failed: bool,
    /// `RunReport::fingerprint`: equal for exact replays.
    fingerprint: u64,
}

impl SeedResult {
    /// Marks the machine-readable line among a worker's output.
    const TAG: &'static str = "sim-result";

    fn line(&self) -> String {
        format!(
            "{} {} {} {} {:016x}",
            Self::TAG,
            self.seed,
            self.acked,
            self.failed,
            self.fingerprint
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut words = line.strip_prefix(Self::TAG)?.split_whitespace();
        Some(Self {
            seed: words.next()?.parse().ok()?,
            acked: words.next()?.parse().ok()?,
            failed: words.next()?.parse().ok()?,
            fingerprint: u64::from_str_radix(words.next()?, 16).ok()?,
        })
    }
}

/// Runs `seeds` split over `workers` processes of this binary, each running the test `test`
/// on its share; returns every seed's result, in seed order. Each worker's output (one line per
/// seed, and the report of each failure) is printed when the worker ends.
///
/// # Panics
/// If a worker cannot be started, or exits without reporting all of its seeds (it crashed, or
/// its watchdog found a seed hanging).
fn run_in_workers(test: &str, seeds: &[u64], workers: usize) -> Vec<SeedResult> {
    let exe =
        std::env::current_exe().unwrap_or_else(|e| panic!("the simulation binary's path: {e}"));
    let shares: Vec<Vec<u64>> = (0..workers)
        .map(|w| seeds.iter().skip(w).step_by(workers).copied().collect())
        .filter(|share: &Vec<u64>| !share.is_empty())
        .collect();
    let mut results: Vec<SeedResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| {
                let exe = &exe;
                scope.spawn(move || {
                    let list: Vec<String> = share.iter().map(u64::to_string).collect();
                    let output = Command::new(exe)
                        .args([test, "--exact", "--nocapture", "--test-threads=1"])
                        .env(WORKER_SEEDS, list.join(","))
                        .stdin(Stdio::null())
                        .output()
                        .unwrap_or_else(|e| panic!("starting a simulation worker: {e}"));
                    let text = String::from_utf8_lossy(&output.stderr).into_owned()
                        + &String::from_utf8_lossy(&output.stdout);
                    let results: Vec<SeedResult> =
                        text.lines().filter_map(SeedResult::parse).collect();
                    for line in text.lines().filter(|l| !l.starts_with(SeedResult::TAG)) {
                        eprintln!("{line}");
                    }
                    assert_eq!(
                        results.len(),
                        share.len(),
                        "a simulation worker for seeds {share:?} stopped early ({}); its output is above",
                        output.status
                    );
                    results
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a simulation worker failed"))
            })
            .collect()
    });
    results.sort_by_key(|r| r.seed);
    results
}

/// A worker's part: runs `seeds` one after the other in this process, printing a line per seed
/// for people, one for the parent (`SeedResult`), and the report of each failure.
fn run_worker(name: &str, make: fn() -> SharedCluster, config: &RunConfig, seeds: &[u64]) {
    let current: Arc<Running> = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|scope| {
        {
            let (current, done) = (Arc::clone(&current), Arc::clone(&done));
            scope.spawn(move || watchdog(name, &current, &done));
        }
        // Also when a seed panics: the scope joins the watchdog before the panic goes on.
        let _stop_watchdog = SetOnDrop(&done);
        let cluster = make();
        for &seed in seeds {
            *lock(&current) = Some((seed, Instant::now()));
            let report = run(seed, &cluster, config);
            *lock(&current) = None;
            let (acked, unknown) = report.counts();
            let failed = !report.violations.is_empty();
            eprintln!(
                "{name} seed {seed}: {acked} acked, {unknown} unknown writes, {} faults, settled in {} ms, sim {} ms, fingerprint {:016x}{}",
                report.schedule.events.len(),
                report.settle_ms,
                report.sim_ms,
                report.fingerprint(),
                if failed { "  FAILED" } else { "" }
            );
            if failed {
                eprintln!("{}", report.failure());
            }
            let result = SeedResult {
                seed,
                acked,
                failed,
                fingerprint: report.fingerprint(),
            };
            eprintln!("{}", result.line());
        }
    });
}

/// Sets its flag when dropped, on a normal exit or an unwinding one.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The seed a worker is running and since when (`None` between seeds).
type Running = Mutex<Option<(u64, Instant)>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Ends the worker process if one seed runs longer than `RINGKIT_SIM_WALL_SECS` (default 300)
/// of real time. Simulated time cannot bound this: a task that never awaits (a busy loop) stops
/// turmoil's clock inside one step, and the run would hang for ever.
fn watchdog(name: &str, current: &Running, done: &AtomicBool) {
    let limit = Duration::from_secs(
        std::env::var("RINGKIT_SIM_WALL_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
        let stuck = lock(current).filter(|(_, since)| since.elapsed() > limit);
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

/// Five founders and a sixth node, `n6`, that joins while the faults go on.
fn five_nodes_and_a_joiner() -> SharedCluster {
    Rc::new(
        Replicated::new((1..=5).map(|i| format!("n{i}")).collect())
            .joined_by(vec!["n6".to_owned()]),
    )
}

/// Six founders, one of which, `n6`, stops for good while the faults go on and is removed.
fn six_nodes_one_lost() -> SharedCluster {
    Rc::new(
        Replicated::new((1..=6).map(|i| format!("n{i}")).collect()).losing(vec!["n6".to_owned()]),
    )
}

/// Six founders, one of which, `n6`, leaves while the faults go on.
fn six_nodes_one_leaving() -> SharedCluster {
    Rc::new(
        Replicated::new((1..=6).map(|i| format!("n{i}")).collect()).left_by(vec!["n6".to_owned()]),
    )
}

/// Single KvNodes over simulated gRPC, with crashes on a durable disk and partitions: the
/// plumbing on its own. Every acknowledged write must be read back.
#[test]
fn single_nodes_keep_acknowledged_writes_through_crashes() {
    run_seeds(
        "single_nodes_keep_acknowledged_writes_through_crashes",
        "single",
        single_nodes,
        &RunConfig::default(),
        &seeds(20),
    );
}

/// The cluster: five complete ClusterNodes (N=3, R=W=2) under seeded faults; every checker
/// must pass for every seed.
#[test]
fn cluster_survives_seeded_faults() {
    run_seeds(
        "cluster_survives_seeded_faults",
        "cluster",
        five_nodes,
        &RunConfig::default(),
        &seeds(200),
    );
}

/// A sixth node joins the five-node cluster at a seeded time while partitions, loss, latency
/// spikes and crashes (of the joiner too) go on: the join must happen, its partition transfers
/// must finish, and every checker must pass on the final ring (its owners converged, nothing
/// acknowledged lost, no delete undone).
#[test]
fn a_join_under_seeded_faults() {
    run_seeds(
        "a_join_under_seeded_faults",
        "join",
        five_nodes_and_a_joiner,
        &RunConfig {
            nodes: 6,
            ..RunConfig::default()
        },
        &seeds(50),
    );
}

/// One of six nodes leaves at a seeded time while partitions, loss, latency spikes and crashes
/// (of the leaver too) go on: its partitions must be handed off (every transfer finished, the
/// node off the map) and every checker must pass on the five-node ring that remains.
#[test]
fn a_leave_under_seeded_faults() {
    run_seeds(
        "a_leave_under_seeded_faults",
        "leave",
        six_nodes_one_leaving,
        &RunConfig {
            nodes: 6,
            ..RunConfig::default()
        },
        &seeds(50),
    );
}

/// One of six nodes stops for good at a seeded time while partitions, loss, latency spikes and
/// crashes go on, and an operator `remove`s it once gossip reports it down: its partitions must
/// be rebuilt from the surviving replicas (every transfer finished, the node off the map) and
/// every checker must pass on the five-node ring that remains, acknowledged writes the lost
/// node held included.
#[test]
fn a_removal_under_seeded_faults() {
    run_seeds(
        "a_removal_under_seeded_faults",
        "remove",
        six_nodes_one_lost,
        &RunConfig {
            nodes: 6,
            ..RunConfig::default()
        },
        &seeds(50),
    );
}

/// A seed replays exactly: each of seeds 0-7 (seed 3 crashes a node mid-workload, the
/// case that needs `align_task_ids`) gives the same fingerprint whether it runs in a worker of
/// two that share the seeds, as CI splits them, or in a single worker after other seeds.
#[test]
fn seeds_replay_exactly() {
    if cfg!(not(tokio_unstable)) {
        panic!(
            "built without `--cfg tokio_unstable`, so turmoil cannot seed tokio and `select!` \
             branches run in random order: keep it in RUSTFLAGS (see .cargo/config.toml)"
        );
    }
    let seeds: Vec<u64> = (0..8).collect();
    let split = run_in_workers("cluster_survives_seeded_faults", &seeds, 2);
    let alone = run_in_workers("cluster_survives_seeded_faults", &seeds, 1);
    let differing: Vec<u64> = split
        .iter()
        .zip(&alone)
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.seed)
        .collect();
    assert!(
        differing.is_empty(),
        "seeds {differing:?} ran differently in a shared worker and in a worker of their own"
    );
}
