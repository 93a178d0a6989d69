//! Seeded fault schedules: network partitions, message loss, latency spikes, and node crashes
//! with restarts, drawn up front from the seed so that a run replays exactly, then applied to
//! the simulation as simulated time passes.

use std::collections::BTreeSet;
use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// One change to the simulated world.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Fault {
    /// Every host in `a` loses contact with every host in `b` (both directions).
    Partition {
        /// One side (nodes and clients).
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
    },
    /// Every link works again.
    HealNetwork,
    /// The node's process dies (its tasks are dropped; its disk survives).
    Crash(String),
    /// The crashed node starts again on the same disk.
    Restart(String),
    /// Each message is lost with this probability (TCP connections break; UDP datagrams drop).
    Loss(f64),
    /// Messages take up to this many milliseconds.
    MaxLatency(u64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { a, b } => write!(f, "partition {a:?} | {b:?}"),
            Fault::HealNetwork => write!(f, "heal network"),
            Fault::Crash(n) => write!(f, "crash {n}"),
            Fault::Restart(n) => write!(f, "restart {n}"),
            Fault::Loss(p) => write!(f, "message loss {p:.3}"),
            Fault::MaxLatency(ms) => write!(f, "max latency {ms}ms"),
        }
    }
}

/// Faults at simulated times (milliseconds since the start), in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Schedule {
    /// `(at_ms, fault)`, sorted by time.
    pub(crate) events: Vec<(u64, Fault)>,
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, fault) in &self.events {
            writeln!(f, "    {at:>6}ms  {fault}")?;
        }
        Ok(())
    }
}

/// Bounds of a generated schedule.
#[derive(Clone, Debug)]
pub(crate) struct FaultConfig {
    /// Faults start at or after this time.
    pub(crate) start_ms: u64,
    /// Every fault is over (network healed, nodes restarted) by this time.
    pub(crate) end_ms: u64,
    /// Most nodes down at once.
    pub(crate) max_down: usize,
}

/// Draws a schedule for `nodes` and `clients` from `seed`.
///
/// Time is cut into slots of 250-1000 ms; in each slot one fault may start (a partition that
/// lasts until a later heal, a burst of loss or latency, a crash with a later restart). All of
/// them are undone by `config.end_ms`.
pub(crate) fn schedule(
    seed: u64,
    nodes: &[String],
    clients: &[String],
    config: &FaultConfig,
) -> Schedule {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xFA17_5EED);
    let mut events = Vec::new();
    let mut down: Vec<(String, u64)> = Vec::new();
    let mut t = config.start_ms;
    while t < config.end_ms {
        let span = rng.random_range(250..=1000u64).min(config.end_ms - t);
        down.retain(|(_, until)| *until > t);
        match rng.random_range(0..10u32) {
            0..3 => {
                let mut hosts: Vec<String> = nodes.iter().chain(clients).cloned().collect();
                hosts.shuffle(&mut rng);
                let cut = rng.random_range(1..hosts.len());
                let b = hosts.split_off(cut);
                events.push((t, Fault::Partition { a: hosts, b }));
                events.push((t + span, Fault::HealNetwork));
            }
            3..5 if down.len() < config.max_down => {
                let alive: Vec<&String> = nodes
                    .iter()
                    .filter(|n| !down.iter().any(|(d, _)| d == *n))
                    .collect();
                let victim = alive[rng.random_range(0..alive.len())].clone();
                let back = t + rng.random_range(span / 2..=span * 2).min(config.end_ms - t);
                events.push((t, Fault::Crash(victim.clone())));
                events.push((back, Fault::Restart(victim.clone())));
                down.push((victim, back));
            }
            5..7 => {
                events.push((t, Fault::Loss(rng.random_range(0.01..0.2))));
                events.push((t + span, Fault::Loss(0.0)));
            }
            7 => {
                events.push((t, Fault::MaxLatency(rng.random_range(100..=600))));
                events.push((t + span, Fault::MaxLatency(50)));
            }
            _ => {}
        }
        t += span;
    }
    events.sort_by_key(|(at, _)| *at);
    Schedule { events }
}

impl Schedule {
    /// Nodes crashed and not restarted by the end (none, for a generated schedule).
    pub(crate) fn left_down(&self) -> BTreeSet<String> {
        let mut down = BTreeSet::new();
        for (_, f) in &self.events {
            match f {
                Fault::Crash(n) => {
                    down.insert(n.clone());
                }
                Fault::Restart(n) => {
                    down.remove(n);
                }
                _ => {}
            }
        }
        down
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn schedules_are_seeded_bounded_and_undo_every_fault() {
        let config = FaultConfig {
            start_ms: 500,
            end_ms: 5000,
            max_down: 2,
        };
        let (nodes, clients) = (names("n", 5), names("c", 3));
        let mut kinds = std::collections::HashSet::new();
        for seed in 0..200 {
            let s = schedule(seed, &nodes, &clients, &config);
            assert_eq!(s, schedule(seed, &nodes, &clients, &config));
            assert!(s.left_down().is_empty(), "seed {seed}:\n{s}");
            let mut down = BTreeSet::new();
            for (at, f) in &s.events {
                assert!((500..=5000).contains(at), "seed {seed}: {at}");
                kinds.insert(std::mem::discriminant(f));
                match f {
                    Fault::Crash(n) => assert!(down.insert(n.clone())),
                    Fault::Restart(n) => assert!(down.remove(n)),
                    _ => {}
                }
                assert!(down.len() <= 2, "seed {seed}:\n{s}");
            }
        }
        assert_eq!(kinds.len(), 6, "every kind of fault is drawn");
    }
}
