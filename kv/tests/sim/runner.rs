//! One seeded run: build the cluster and the clients, apply the fault schedule while the
//! workload runs, heal everything, let handoff and anti-entropy settle, read every key back, and
//! run the checkers.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::checkers::{
    FinalReads, ReplicaRows, Violation, check_converged, check_deletes, check_readable, check_set,
    check_siblings,
};
use super::client::Clients;
use super::clock::{SimClock, epoch};
use super::cluster::{NodeSpec, SharedCluster, new_disk, rows};
use super::faults::{Fault, FaultConfig, Schedule, schedule};
use super::history::{Event, History};
use super::workload::{Router, Workload, WorkloadConfig};

/// Simulated time a phase may overrun its expected end before the run is declared stuck.
const STUCK_MS: u64 = 30_000;

/// Size and timing of a run (simulated milliseconds).
#[derive(Clone, Debug)]
pub(crate) struct RunConfig {
    /// Node hosts.
    pub(crate) nodes: usize,
    /// Client hosts.
    pub(crate) clients: usize,
    /// Clients stop issuing requests at this time.
    pub(crate) workload_ms: u64,
    /// Faults happen before this time; then everything is healed.
    pub(crate) faults_end_ms: u64,
    /// After the heal, the cluster gets at most this long to converge.
    pub(crate) settle_max_ms: u64,
    /// A client request's deadline.
    pub(crate) deadline_ms: u64,
    /// Simulated time per simulation step.
    pub(crate) tick_ms: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            nodes: 5,
            clients: 3,
            workload_ms: 3_000,
            faults_end_ms: 3_000,
            settle_max_ms: 30_000,
            deadline_ms: 1_500,
            tick_ms: 5,
        }
    }
}

/// What a run did and found.
#[derive(Debug)]
pub(crate) struct RunReport {
    /// The seed.
    pub(crate) seed: u64,
    /// The faults applied.
    pub(crate) schedule: Schedule,
    /// Every client write.
    pub(crate) history: Vec<Event>,
    /// Broken invariants (empty: the run passed).
    pub(crate) violations: Vec<Violation>,
    /// Simulated time from the heal until the replicas had converged.
    pub(crate) settle_ms: u64,
    /// Simulated time of the whole run.
    pub(crate) sim_ms: u64,
}

impl RunReport {
    /// (acknowledged, unknown) writes.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let acked = self.history.iter().filter(|e| e.acked()).count();
        (acked, self.history.len() - acked)
    }

    /// A digest of everything the run showed (history with simulated times, faults, violations,
    /// timings): two runs of a seed replay each other exactly iff their fingerprints match.
    pub(crate) fn fingerprint(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        // `DefaultHasher::new()` has fixed keys: equal in every process of this binary.
        let mut h = DefaultHasher::new();
        format!(
            "{:?}|{}|{:?}|{}|{}",
            self.history, self.schedule, self.violations, self.settle_ms, self.sim_ms
        )
        .hash(&mut h);
        h.finish()
    }

    /// A failure report: the seed, how to replay it, the schedule and each violation with the
    /// history of its key.
    pub(crate) fn failure(&self) -> String {
        let mut out = format!(
            "simulation seed {} FAILED ({} violations); replay with RINGKIT_SIM_SEED={} cargo test -p ringkit-kv --test simulation\n  faults:\n{}",
            self.seed,
            self.violations.len(),
            self.seed,
            self.schedule
        );
        for v in self.violations.iter().take(10) {
            out.push_str(&format!("  {v}\n"));
            for e in self.history.iter().filter(|e| e.op.key() == v.key()) {
                out.push_str(&format!("      {e}\n"));
            }
        }
        out
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

/// Runs seed `seed` of `cluster` with `config`.
///
/// # Panics
/// If turmoil reports a host error (a node's software failed to start): a test bug.
pub(crate) fn run(seed: u64, cluster: &SharedCluster, config: &RunConfig) -> RunReport {
    init_tracing();
    align_task_ids();
    cluster.begin_run();
    let mut rng = StdRng::seed_from_u64(seed);
    let max_latency = rng.random_range(1..=50u64);
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(epoch())
        .tick_duration(Duration::from_millis(config.tick_ms))
        .min_message_latency(Duration::from_millis(0))
        .max_message_latency(Duration::from_millis(max_latency))
        .simulation_duration(Duration::from_secs(3600))
        .build();
    let node_names = names("n", config.nodes);
    let client_names = names("c", config.clients);
    let disks: Vec<_> = (0..config.nodes).map(new_disk).collect();

    for (index, name) in node_names.iter().enumerate() {
        let skew = rng.random_range(-50..=50i64);
        let spec = NodeSpec {
            name: name.clone(),
            disk: disks[index].clone(),
            clock: SimClock::new(skew),
            seed: rng.random(),
        };
        let cluster = SharedCluster::clone(cluster);
        sim.host(name.as_str(), move || cluster.node(spec.clone()));
    }

    let history = History::new();
    let workload = WorkloadConfig {
        stop_at: Duration::from_millis(config.workload_ms),
        sibling_keys: 3,
        max_think_ms: 40,
    };
    let deadline = Duration::from_millis(config.deadline_ms);
    for (i, name) in client_names.iter().enumerate() {
        let router: Router = {
            let (cluster, names) = (SharedCluster::clone(cluster), node_names.clone());
            Rc::new(move |key: &str, rng: &mut StdRng| {
                cluster.route(key, rng.random_range(0..names.len()), &names)
            })
        };
        let (workload, history, nodes) = (workload.clone(), history.clone(), node_names.clone());
        let (name_, client_seed) = (name.clone(), seed.wrapping_mul(31).wrapping_add(i as u64));
        sim.client(name.as_str(), async move {
            // Channels spawn their workers: create them inside the client's runtime.
            let clients = Clients::new(&nodes, deadline);
            Workload::new(&name_, client_seed, clients, router, history)
                .run(workload)
                .await;
            Ok(())
        });
    }

    let faults = schedule(
        seed,
        &node_names,
        &client_names,
        &FaultConfig {
            start_ms: 200,
            end_ms: config.faults_end_ms,
            max_down: 2,
        },
    );
    let ms = |sim: &turmoil::Sim<'_>| u64::try_from(sim.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut pending = faults.events.iter().peekable();
    let mut crashed = BTreeSet::new();
    let mut stuck = Vec::new();
    // Workload and faults; every client request has a deadline, so this ends soon after
    // `workload_ms` unless a client hangs.
    let workload_limit = config.workload_ms.max(config.faults_end_ms) + STUCK_MS;
    loop {
        while let Some((_, fault)) = pending.next_if(|(at, _)| *at <= ms(&sim)) {
            apply(&mut sim, fault, &node_names, &client_names, &mut crashed);
        }
        let clients_done = step(&mut sim);
        if clients_done && pending.peek().is_none() {
            break;
        }
        if ms(&sim) > workload_limit {
            stuck.push(Violation::Stuck {
                phase: "workload",
                at_ms: ms(&sim),
            });
            break;
        }
    }
    // Heal: every link, every node, no loss.
    for fault in [Fault::HealNetwork, Fault::Loss(0.0)] {
        apply(&mut sim, &fault, &node_names, &client_names, &mut crashed);
    }
    for node in crashed.clone() {
        apply(
            &mut sim,
            &Fault::Restart(node),
            &node_names,
            &client_names,
            &mut crashed,
        );
    }
    let healed_at = ms(&sim);
    // Settle: until the ring has its final shape and the replicas agree, or the limit.
    let owners = |key: &[u8]| cluster.owners(key, &node_names);
    let snapshot = |disks: &[ringkit_kv::storage::MemStorage]| -> ReplicaRows {
        node_names
            .iter()
            .zip(disks)
            .filter_map(|(n, d)| Some((n.clone(), rows(d)?)))
            .collect()
    };
    while ms(&sim) < healed_at + config.settle_max_ms {
        if (ms(&sim) - healed_at) % 250 == 0
            && cluster.ring_settled().is_ok()
            && check_converged(&snapshot(&disks), owners).is_empty()
        {
            break;
        }
        step(&mut sim);
    }
    let settle_ms = ms(&sim) - healed_at;
    // Judged before the final reads, whose read repair would mask what handoff, anti-entropy
    // and the transfers failed to do.
    let unsettled = cluster.ring_settled().err();
    let diverged = check_converged(&snapshot(&disks), owners);

    // Read every key back through the cluster.
    let events = history.events();
    let keys: BTreeSet<String> = events.iter().map(|e| e.op.key().to_owned()).collect();
    let finals = Arc::new(Mutex::new(FinalReads::new()));
    {
        let (finals, nodes) = (Arc::clone(&finals), node_names.clone());
        let cluster = SharedCluster::clone(cluster);
        sim.client("checker", async move {
            let clients = Clients::new(&nodes, deadline);
            let retry_until = tokio::time::Instant::now() + FINAL_READ_WINDOW;
            for key in keys {
                let read = read_back(&clients, &cluster, &nodes, &key, retry_until).await;
                finals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, read);
            }
            Ok(())
        });
    }
    let reads_limit = ms(&sim) + STUCK_MS;
    while !step(&mut sim) {
        if ms(&sim) > reads_limit {
            stuck.push(Violation::Stuck {
                phase: "final reads",
                at_ms: ms(&sim),
            });
            break;
        }
    }
    let finals = std::mem::take(&mut *finals.lock().unwrap_or_else(PoisonError::into_inner));

    let mut violations = stuck;
    violations.extend(check_readable(&finals));
    violations.extend(check_set(&events, &finals));
    violations.extend(check_deletes(&events, &finals));
    violations.extend(check_siblings(&events, &finals));
    violations.extend(unsettled.map(|state| Violation::Unsettled { state }));
    violations.extend(diverged);
    RunReport {
        seed,
        schedule: faults,
        history: events,
        violations,
        settle_ms,
        sim_ms: ms(&sim),
    }
}

/// How long the final reads keep retrying (simulated time from their start, after the heal).
/// A partition black-holes the HTTP/2 connections across it (turmoil does not retransmit), and a
/// coordinator finds such a connection dead only through keep-alive (10 s interval + 5 s
/// timeout, the production settings), so a replica can stay unreachable from one coordinator
/// for up to 15 s after the heal: the documented window. Reads that still fail after it are
/// violations.
const FINAL_READ_WINDOW: Duration = Duration::from_secs(20);

/// Reads `key` through the nodes the cluster routes it to, in turn, until one answers; rounds of
/// that are retried until `retry_until` (simulated time).
async fn read_back(
    clients: &Clients,
    cluster: &SharedCluster,
    nodes: &[String],
    key: &str,
    retry_until: tokio::time::Instant,
) -> Result<Vec<String>, String> {
    loop {
        let mut errors = BTreeMap::new();
        for attempt in 0..nodes.len() {
            let node = cluster.route(key, attempt, nodes);
            match clients.get(&node, key).await {
                Ok(read) => return Ok(read.values),
                Err(e) => {
                    errors.insert(node.clone(), e);
                }
            }
        }
        if tokio::time::Instant::now() >= retry_until {
            return Err(format!("{errors:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One simulation step; true once every client has finished.
///
/// # Panics
/// On a host error (a node failed to start or a client returned an error): a test bug.
fn step(sim: &mut turmoil::Sim<'_>) -> bool {
    sim.step()
        .unwrap_or_else(|e| panic!("simulation host failed: {e}"))
}

fn apply(
    sim: &mut turmoil::Sim<'_>,
    fault: &Fault,
    nodes: &[String],
    clients: &[String],
    crashed: &mut BTreeSet<String>,
) {
    match fault {
        Fault::Partition { a, b } => {
            for x in a {
                for y in b {
                    sim.partition(x.as_str(), y.as_str());
                }
            }
        }
        Fault::HealNetwork => {
            let all: Vec<&String> = nodes.iter().chain(clients).collect();
            for (i, x) in all.iter().enumerate() {
                for y in &all[i + 1..] {
                    sim.repair(x.as_str(), y.as_str());
                }
            }
        }
        Fault::Crash(n) => {
            sim.crash(n.as_str());
            crashed.insert(n.clone());
        }
        Fault::Restart(n) => {
            if crashed.remove(n) {
                sim.bounce(n.as_str());
            }
        }
        Fault::Loss(p) => sim.set_fail_rate(*p),
        Fault::MaxLatency(ms) => sim.set_max_message_latency(Duration::from_millis(*ms)),
    }
}

/// Tokio numbers tasks from one process-wide counter, and a current-thread runtime files each
/// task in one of [`TASK_SHARDS`] lists by its number; shutting a runtime down (a simulated
/// crash) drops the tasks list by list. Their sockets close in that order, and each close draws
/// its latency from the simulation's random stream, so the order must not depend on how many
/// tasks the process spawned before this run. Spawning throwaway tasks until the next number is
/// a multiple of [`TASK_SHARDS`] gives every run of a seed the same filing.
///
/// Only a process that runs one simulation at a time keeps this: another thread spawning tasks
/// meanwhile interleaves its numbers (see `run_seeds`, which gives each worker a process).
///
/// # Panics
/// If a throwaway runtime cannot be built, or tokio's task id stops printing as a number.
fn align_task_ids() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("a runtime to align task ids: {e}"));
    loop {
        let id = rt.spawn(async {}).id().to_string();
        let id: u64 = id
            .parse()
            .unwrap_or_else(|e| panic!("tokio task id {id:?} is not a number: {e}"));
        if (id + 1).is_multiple_of(TASK_SHARDS) {
            return;
        }
    }
}

/// Shards of a current-thread runtime's task list (tokio's `OwnedTasks::new(1)`: four), rounded
/// up generously: aligning to a multiple of it aligns to a multiple of the real count.
const TASK_SHARDS: u64 = 1024;

/// With `RINGKIT_SIM_LOG=<filter>` (e.g. `info,ringkit_kv::cluster::aae=debug`), the nodes' logs
/// are printed with simulated time, to follow a replayed seed.
fn init_tracing() {
    let Ok(filter) = std::env::var("RINGKIT_SIM_LOG") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_timer(SimTime)
        .with_test_writer()
        .try_init();
}

/// Log timestamps in simulated time.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:>9?}", turmoil::sim_elapsed().unwrap_or_default())
    }
}
