//! [`Schedule`]: which piece of anti-entropy work a node does next, as a sans-IO state machine
//! over plain durations (the loop in [`task`](super::task) supplies the clock and does the IO).
//!
//! Three kinds of work, in this order of precedence:
//! 1. **Exchanges** of partitions a sweep found different, one at a time, in the order found.
//! 2. **Sweeps**: the roots of every partition shared with one fellow replica, compared in one
//!    call ([`sweep`](super::sweep)). Peers take turns; sweeps are spaced so that each peer
//!    comes round every `pair_interval`. A sweep waits until the exchanges of the last one are
//!    done, so a partition is never queued twice for the same peer.
//! 3. **Reaping passes** over partitions just found equal (or just repaired), each partition
//!    at most every `reap_scan_every`; they fill the time between sweeps.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use ringkit_hashring::NodeId;

use super::sweep::RootVerdict;

/// The timings a [`Schedule`] follows (from [`AaeConfig`](super::AaeConfig)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Each peer is swept about this often.
    pub pair_interval: Duration,
    /// Sweeps are at least this far apart.
    pub min_tick: Duration,
    /// A partition is scanned for reapable tombstones at most this often; `None`: never.
    pub reap_scan_every: Option<Duration>,
}

/// One fellow replica and the partitions this node shares with it, sorted.
pub type PeerPartitions = (NodeId, Vec<u32>);

/// A piece of anti-entropy work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Compare the roots of `partitions` with `peer`; report with [`Schedule::swept`].
    Sweep {
        /// The fellow replica.
        peer: NodeId,
        /// The partitions shared with it.
        partitions: Vec<u32>,
    },
    /// Run a full exchange of `partition` with `peer`; report with [`Schedule::exchanged`].
    Exchange {
        /// The partition.
        partition: u32,
        /// The fellow replica.
        peer: NodeId,
    },
    /// Scan `partition` for tombstones every replica holds.
    Reap {
        /// The partition.
        partition: u32,
    },
}

/// The anti-entropy schedule of one node.
#[derive(Debug)]
pub struct Schedule {
    /// The timings.
    timing: Timing,
    /// Index of the next peer to sweep.
    cursor: usize,
    /// When the next sweep may start.
    next_sweep: Duration,
    /// Partitions found different, waiting for their exchange.
    exchanges: VecDeque<(u32, NodeId)>,
    /// Partitions due a reaping pass, first found first (a partition found again while queued
    /// keeps its place, so none is starved by others found on every sweep).
    reaps: VecDeque<u32>,
    /// When each partition's last reaping pass started.
    last_reap: BTreeMap<u32, Duration>,
}

impl Schedule {
    /// A schedule whose first sweep may start at once.
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            cursor: 0,
            next_sweep: Duration::ZERO,
            exchanges: VecDeque::new(),
            reaps: VecDeque::new(),
            last_reap: BTreeMap::new(),
        }
    }

    /// The pause between two sweeps when `peers` take turns: the pair interval spread over
    /// them, at least `min_tick`.
    pub fn sweep_spacing(&self, peers: usize) -> Duration {
        let spread = self.timing.pair_interval / u32::try_from(peers.max(1)).unwrap_or(u32::MAX);
        spread.max(self.timing.min_tick)
    }

    /// The work to do at `now` given the current `peers`, or how long to wait before asking
    /// again.
    ///
    /// # Errors
    /// `Err(wait)`: nothing to do before `now + wait`.
    pub fn next(&mut self, now: Duration, peers: &[PeerPartitions]) -> Result<Work, Duration> {
        if let Some((partition, peer)) = self.exchanges.pop_front() {
            return Ok(Work::Exchange { partition, peer });
        }
        if !peers.is_empty() && now >= self.next_sweep {
            let (peer, partitions) = peers[self.cursor % peers.len()].clone();
            self.cursor = self.cursor.wrapping_add(1);
            self.next_sweep = now + self.sweep_spacing(peers.len());
            return Ok(Work::Sweep { peer, partitions });
        }
        if let Some(partition) = self.reaps.pop_front() {
            self.last_reap.insert(partition, now);
            return Ok(Work::Reap { partition });
        }
        if peers.is_empty() {
            return Err(self.timing.pair_interval);
        }
        Err(self.next_sweep.saturating_sub(now))
    }

    /// Takes in a sweep of `peer`: differing partitions are queued for an exchange, equal ones
    /// for a reaping pass if theirs is due.
    pub fn swept(&mut self, now: Duration, peer: &NodeId, verdicts: &[(u32, RootVerdict)]) {
        for &(partition, verdict) in verdicts {
            match verdict {
                RootVerdict::Differs => self.exchanges.push_back((partition, peer.clone())),
                RootVerdict::Equal => self.reap_if_due(now, partition),
                RootVerdict::NotReplicatedThere => {}
            }
        }
    }

    /// Takes in an exchange: a partition repaired without error may be reaped.
    pub fn exchanged(&mut self, now: Duration, partition: u32, ok: bool) {
        if ok {
            self.reap_if_due(now, partition);
        }
    }

    /// Forgets queued work and reaping history of partitions outside `mine` (after the map
    /// changed).
    pub fn retain(&mut self, mine: &BTreeSet<u32>) {
        self.exchanges.retain(|(p, _)| mine.contains(p));
        self.reaps.retain(|p| mine.contains(p));
        self.last_reap.retain(|p, _| mine.contains(p));
    }

    /// Queues a reaping pass over `partition` if reaping is on and its last pass is old enough.
    fn reap_if_due(&mut self, now: Duration, partition: u32) {
        let Some(every) = self.timing.reap_scan_every else {
            return;
        };
        let due = self
            .last_reap
            .get(&partition)
            .is_none_or(|&last| now.saturating_sub(last) >= every);
        if due && !self.reaps.contains(&partition) {
            self.reaps.push_back(partition);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn timing() -> Timing {
        Timing {
            pair_interval: 1000 * MS,
            min_tick: 20 * MS,
            reap_scan_every: Some(10_000 * MS),
        }
    }

    fn peers() -> Vec<PeerPartitions> {
        vec![("b".into(), vec![1, 2, 3]), ("c".into(), vec![2, 3, 4])]
    }

    fn sweep_of(work: Result<Work, Duration>) -> NodeId {
        match work {
            Ok(Work::Sweep { peer, .. }) => peer,
            other => panic!("expected a sweep, got {other:?}"),
        }
    }

    #[test]
    fn peers_take_turns_spread_over_the_pair_interval() {
        let mut s = Schedule::new(timing());
        let peers = peers();
        assert_eq!(sweep_of(s.next(Duration::ZERO, &peers)), NodeId::from("b"));
        s.swept(Duration::ZERO, &"b".into(), &[]);
        assert_eq!(
            s.next(Duration::ZERO, &peers),
            Err(500 * MS),
            "half the interval"
        );
        assert_eq!(s.next(300 * MS, &peers), Err(200 * MS));
        assert_eq!(sweep_of(s.next(500 * MS, &peers)), NodeId::from("c"));
        assert_eq!(sweep_of(s.next(1000 * MS, &peers)), NodeId::from("b"));
        assert_eq!(
            s.next(1000 * MS, &[]),
            Err(1000 * MS),
            "alone: wait an interval"
        );
    }

    #[test]
    fn the_spacing_is_never_below_min_tick() {
        let s = Schedule::new(timing());
        assert_eq!(s.sweep_spacing(1000), 20 * MS);
        assert_eq!(s.sweep_spacing(0), 1000 * MS);
    }

    #[test]
    fn differing_partitions_are_exchanged_before_the_next_sweep() {
        let mut s = Schedule::new(timing());
        let peers = peers();
        let b = NodeId::from("b");
        sweep_of(s.next(Duration::ZERO, &peers));
        s.swept(
            Duration::ZERO,
            &b,
            &[(1, RootVerdict::Differs), (3, RootVerdict::Differs)],
        );
        // The next sweep is due at 500 ms, but the exchanges come first, in order.
        for p in [1, 3] {
            assert_eq!(
                s.next(700 * MS, &peers),
                Ok(Work::Exchange {
                    partition: p,
                    peer: b.clone()
                })
            );
            s.exchanged(700 * MS, p, false);
        }
        assert_eq!(sweep_of(s.next(700 * MS, &peers)), NodeId::from("c"));
    }

    #[test]
    fn equal_and_repaired_partitions_are_reaped_at_most_every_reap_scan_every() {
        let mut s = Schedule::new(timing());
        let peers = peers();
        let b = NodeId::from("b");
        sweep_of(s.next(Duration::ZERO, &peers));
        s.swept(
            Duration::ZERO,
            &b,
            &[
                (2, RootVerdict::Equal),
                (1, RootVerdict::Differs),
                (3, RootVerdict::NotReplicatedThere),
            ],
        );
        assert!(matches!(
            s.next(MS, &peers),
            Ok(Work::Exchange { partition: 1, .. })
        ));
        s.exchanged(MS, 1, true);
        assert_eq!(s.next(2 * MS, &peers), Ok(Work::Reap { partition: 2 }));
        assert_eq!(s.next(3 * MS, &peers), Ok(Work::Reap { partition: 1 }));
        assert_eq!(s.next(4 * MS, &peers), Err(496 * MS), "3 is not shared yet");
        // Found equal again soon after: not due.
        s.swept(
            5 * MS,
            &b,
            &[(1, RootVerdict::Equal), (2, RootVerdict::Equal)],
        );
        assert_eq!(s.next(6 * MS, &peers), Err(494 * MS));
        // 2 was reaped at 2 ms, 1 at 3 ms: 2 is due first.
        // After reap_scan_every, due again.
        s.swept(
            10_002 * MS,
            &b,
            &[(1, RootVerdict::Equal), (2, RootVerdict::Equal)],
        );
        sweep_of(s.next(10_002 * MS, &peers));
        assert_eq!(s.next(10_003 * MS, &peers), Ok(Work::Reap { partition: 2 }));
        assert_eq!(
            s.next(10_004 * MS, &peers),
            Err(498 * MS),
            "1 is not due yet"
        );
    }

    #[test]
    fn reaping_is_first_found_first_served_so_no_partition_starves() {
        let mut s = Schedule::new(Timing {
            reap_scan_every: Some(MS),
            ..timing()
        });
        let b = NodeId::from("b");
        let equal = |ps: &[u32]| {
            ps.iter()
                .map(|&p| (p, RootVerdict::Equal))
                .collect::<Vec<_>>()
        };
        s.swept(Duration::ZERO, &b, &equal(&[1, 2, 3, 4]));
        s.next_sweep = Duration::MAX;
        assert_eq!(s.next(Duration::ZERO, &[]), Ok(Work::Reap { partition: 1 }));
        // Every sweep finds 1 and 2 again; 3 and 4 still come before them.
        s.swept(5 * MS, &b, &equal(&[1, 2, 3, 4]));
        let order: Vec<Work> = (0..4).filter_map(|_| s.next(6 * MS, &[]).ok()).collect();
        assert_eq!(
            order,
            [2, 3, 4, 1].map(|partition| Work::Reap { partition })
        );
    }

    #[test]
    fn without_reaping_nothing_is_queued_for_it() {
        let mut s = Schedule::new(Timing {
            reap_scan_every: None,
            ..timing()
        });
        s.swept(Duration::ZERO, &"b".into(), &[(2, RootVerdict::Equal)]);
        s.exchanged(Duration::ZERO, 3, true);
        s.next_sweep = 500 * MS;
        assert_eq!(s.next(Duration::ZERO, &peers()), Err(500 * MS));
    }

    #[test]
    fn partitions_that_left_are_forgotten() {
        let mut s = Schedule::new(timing());
        let b = NodeId::from("b");
        s.swept(
            Duration::ZERO,
            &b,
            &[
                (1, RootVerdict::Differs),
                (2, RootVerdict::Differs),
                (3, RootVerdict::Equal),
            ],
        );
        s.retain(&BTreeSet::from([2]));
        assert_eq!(
            s.next(Duration::ZERO, &[]),
            Ok(Work::Exchange {
                partition: 2,
                peer: b
            })
        );
        assert_eq!(s.next(Duration::ZERO, &[]), Err(1000 * MS), "3 left too");
    }
}
