//! [`Schedule`]: which piece of anti-entropy work a node does next, as a sans-IO state machine
//! over plain durations (the loop in [`task`](super::task) supplies the clock and does the IO).
//!
//! Four kinds of work, in this order of precedence (except that after
//! `FOREGROUND_PER_BACKGROUND` sweeps and exchanges in a row, a due reaping or clean-up step
//! goes first, so neither starves under a steady write load):
//! 1. **Exchanges** of partitions a sweep found different, one at a time, in the order found.
//! 2. **Sweeps**: the roots of every partition shared with one fellow replica, compared in one
//!    call ([`sweep`](super::sweep)). Peers take turns; sweeps are spaced so that each peer
//!    comes round every `pair_interval`. A sweep waits until the exchanges of the last one are
//!    done, so a partition is never queued twice for the same peer.
//! 3. **Reaping passes** over partitions just found equal (or just repaired), each partition
//!    at most every `reap_scan_every`; they fill the time between sweeps.
//! 4. **Leftover clean-up** ([`leftovers`](super::leftovers)): one page at a time, the rows of
//!    a partition this node no longer replicates (handed off to a new owner), once it has been
//!    out of this node's hands for `leftover_grace`, and again every `leftover_scan_every`
//!    (a coordinator with an older map can still write here for a while).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
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
    /// A partition this node stopped replicating is cleaned up this long after; `None`: never.
    pub leftover_grace: Option<Duration>,
    /// A partition this node does not replicate is looked at again this often.
    pub leftover_scan_every: Duration,
}

/// Where a leftover clean-up resumes: strictly after this (hash, key).
pub type Cursor = (u64, Bytes);

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
    /// Hand one page of `partition`'s leftover rows to its owners and drop them here; report
    /// with [`Schedule::cleaned`].
    CleanUp {
        /// The partition (not replicated here).
        partition: u32,
        /// Resume after this row (`None`: from the start).
        after: Option<Cursor>,
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
    /// Partition count of the ring `outside` was computed for.
    partition_count: u32,
    /// Partitions this node does not replicate: since when (or since this node started).
    outside: BTreeMap<u32, Duration>,
    /// When each outside partition's last clean-up pass ended.
    last_clean: BTreeMap<u32, Duration>,
    /// Clean-ups in progress: where each resumes.
    cleaning: BTreeMap<u32, Cursor>,
    /// Sweeps and exchanges in a row since the last reaping or clean-up step.
    foreground_run: u32,
}

/// While sweeps and exchanges keep coming (a steady write load makes many roots differ at
/// every sweep), a reaping or clean-up step still gets a turn after this many of them.
const FOREGROUND_PER_BACKGROUND: u32 = 4;

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
            partition_count: 0,
            outside: BTreeMap::new(),
            last_clean: BTreeMap::new(),
            cleaning: BTreeMap::new(),
            foreground_run: 0,
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
        let clean_at = self.next_clean_up();
        let clean_due = clean_at.filter(|&(at, _)| at <= now);
        let sweep_due = !peers.is_empty() && now >= self.next_sweep;
        let foreground_due = !self.exchanges.is_empty() || sweep_due;
        let background_due = !self.reaps.is_empty() || clean_due.is_some();
        let background_turn =
            background_due && (!foreground_due || self.foreground_run >= FOREGROUND_PER_BACKGROUND);
        if !background_turn {
            if let Some((partition, peer)) = self.exchanges.pop_front() {
                self.foreground_run += 1;
                return Ok(Work::Exchange { partition, peer });
            }
            if sweep_due {
                let (peer, partitions) = peers[self.cursor % peers.len()].clone();
                self.cursor = self.cursor.wrapping_add(1);
                self.next_sweep = now + self.sweep_spacing(peers.len());
                self.foreground_run += 1;
                return Ok(Work::Sweep { peer, partitions });
            }
        }
        self.foreground_run = 0;
        if let Some(partition) = self.reaps.pop_front() {
            self.last_reap.insert(partition, now);
            return Ok(Work::Reap { partition });
        }
        if let Some((_, partition)) = clean_due {
            let after = self.cleaning.get(&partition).cloned();
            return Ok(Work::CleanUp { partition, after });
        }
        let sweep_at = if peers.is_empty() {
            now + self.timing.pair_interval
        } else {
            self.next_sweep
        };
        let at = clean_at.map_or(sweep_at, |(at, _)| at.min(sweep_at));
        Err(at.saturating_sub(now))
    }

    /// The partition whose clean-up is due first, and when: one in progress at once, otherwise
    /// `leftover_grace` after it left and `leftover_scan_every` after its last pass.
    fn next_clean_up(&self) -> Option<(Duration, u32)> {
        let grace = self.timing.leftover_grace?;
        self.outside
            .iter()
            .map(|(&p, &since)| {
                let at = if self.cleaning.contains_key(&p) {
                    Duration::ZERO
                } else {
                    let after_grace = since.saturating_add(grace);
                    self.last_clean.get(&p).map_or(after_grace, |&last| {
                        after_grace.max(last.saturating_add(self.timing.leftover_scan_every))
                    })
                };
                (at, p)
            })
            .min()
    }

    /// Takes in a page of clean-up of `partition`: `Ok(Some(cursor))` to go on from there,
    /// `Ok(None)` when the pass is over, `Err(())` when it failed (it starts over at the next
    /// scan).
    pub fn cleaned(&mut self, now: Duration, partition: u32, outcome: Result<Option<Cursor>, ()>) {
        match outcome {
            Ok(Some(cursor)) if self.outside.contains_key(&partition) => {
                self.cleaning.insert(partition, cursor);
            }
            _ => {
                self.cleaning.remove(&partition);
                self.last_clean.insert(partition, now);
            }
        }
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

    /// Follows a new map or live set at `now`: `mine` are the partitions (of
    /// `partition_count`) this node replicates, `peers` its live fellow replicas. Queued
    /// exchanges with a peer no longer among them are dropped (each would wait out a call
    /// timeout), and so are queued work and reaping history of partitions outside `mine`;
    /// partitions that just left (all others, the first time) start their leftover grace, and
    /// partitions that came back stop theirs.
    pub fn retain(
        &mut self,
        now: Duration,
        partition_count: u32,
        mine: &BTreeSet<u32>,
        peers: &[PeerPartitions],
    ) {
        self.exchanges.retain(|(p, peer)| {
            mine.contains(p)
                && peers
                    .iter()
                    .any(|(q, shared)| q == peer && shared.contains(p))
        });
        self.reaps.retain(|p| mine.contains(p));
        self.last_reap.retain(|p, _| mine.contains(p));
        if partition_count != self.partition_count {
            self.partition_count = partition_count;
            self.outside.clear();
            self.last_clean.clear();
            self.cleaning.clear();
        }
        for p in 0..partition_count {
            if mine.contains(&p) {
                self.outside.remove(&p);
                self.last_clean.remove(&p);
                self.cleaning.remove(&p);
            } else {
                self.outside.entry(p).or_insert(now);
            }
        }
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
            leftover_grace: None,
            leftover_scan_every: 60_000 * MS,
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
        s.retain(
            Duration::ZERO,
            4,
            &BTreeSet::from([2]),
            &[(b.clone(), vec![2])],
        );
        assert_eq!(
            s.next(Duration::ZERO, &[]),
            Ok(Work::Exchange {
                partition: 2,
                peer: b
            })
        );
        assert_eq!(s.next(Duration::ZERO, &[]), Err(1000 * MS), "3 left too");
    }

    #[test]
    fn a_partition_that_left_is_cleaned_up_after_the_grace_page_by_page_then_rescanned() {
        let mut s = Schedule::new(Timing {
            leftover_grace: Some(5000 * MS),
            ..timing()
        });
        let peers = peers();
        // Start: this node replicates 0 and 1 of 4; 2 and 3 are outside from the start.
        s.retain(Duration::ZERO, 4, &BTreeSet::from([0, 1]), &peers);
        sweep_of(s.next(Duration::ZERO, &peers));
        assert_eq!(s.next(MS, &peers), Err(499 * MS), "the sweep comes first");
        // Partition 1 leaves at 2 s.
        s.retain(2000 * MS, 4, &BTreeSet::from([0]), &peers);
        s.next_sweep = Duration::MAX;
        assert_eq!(s.next(4000 * MS, &peers), Err(1000 * MS), "2 and 3 at 5 s");
        let clean = |partition, after: Option<Cursor>| Ok(Work::CleanUp { partition, after });
        assert_eq!(s.next(5000 * MS, &peers), clean(2, None));
        let cursor: Cursor = (7, Bytes::from("k"));
        s.cleaned(5000 * MS, 2, Ok(Some(cursor.clone())));
        assert_eq!(s.next(5001 * MS, &peers), clean(2, Some(cursor)), "goes on");
        s.cleaned(5001 * MS, 2, Ok(None));
        assert_eq!(s.next(5002 * MS, &peers), clean(3, None));
        s.cleaned(5002 * MS, 3, Err(()));
        assert_eq!(s.next(5003 * MS, &peers), Err(1997 * MS), "1 at 7 s");
        assert_eq!(s.next(7000 * MS, &peers), clean(1, None));
        s.cleaned(7000 * MS, 1, Ok(None));
        // Each is looked at again a scan interval after its last pass.
        assert_eq!(s.next(7001 * MS, &peers), Err(58_000 * MS));
        assert_eq!(s.next(65_001 * MS, &peers), clean(2, None));
        // A partition that comes back is no longer cleaned up, even half-way.
        s.cleaned(65_001 * MS, 2, Ok(Some((1, Bytes::from("a")))));
        s.retain(65_002 * MS, 4, &BTreeSet::from([0, 2]), &peers);
        assert_eq!(s.next(65_003 * MS, &peers), clean(3, None));
    }

    #[test]
    fn without_a_grace_nothing_is_cleaned_up() {
        let mut s = Schedule::new(timing());
        s.retain(Duration::ZERO, 4, &BTreeSet::from([0]), &[]);
        assert_eq!(s.next(Duration::from_secs(3600), &[]), Err(1000 * MS));
    }

    #[test]
    fn exchanges_queued_with_a_peer_that_died_are_dropped() {
        let mut s = Schedule::new(timing());
        let (b, c) = (NodeId::from("b"), NodeId::from("c"));
        s.swept(Duration::ZERO, &b, &[(1, RootVerdict::Differs)]);
        s.swept(Duration::ZERO, &c, &[(2, RootVerdict::Differs)]);
        // b is gone from the live set: only c's exchange is left.
        let alive = vec![(c.clone(), vec![2, 3, 4])];
        s.retain(Duration::ZERO, 8, &BTreeSet::from([1, 2, 3, 4]), &alive);
        assert_eq!(
            s.next(Duration::ZERO, &alive),
            Ok(Work::Exchange {
                partition: 2,
                peer: c
            })
        );
        assert!(matches!(
            s.next(Duration::ZERO, &alive),
            Ok(Work::Sweep { .. })
        ));
    }

    #[test]
    fn reaping_and_clean_up_get_a_turn_while_sweeps_and_exchanges_keep_coming() {
        let mut s = Schedule::new(Timing {
            pair_interval: 20 * MS, // a sweep due at every step
            leftover_grace: Some(Duration::ZERO),
            ..timing()
        });
        let peers = peers();
        s.retain(Duration::ZERO, 8, &BTreeSet::from([1, 2, 3, 4]), &peers);
        let b = NodeId::from("b");
        s.swept(Duration::ZERO, &b, &[(2, RootVerdict::Equal)]);
        let mut kinds = String::new();
        for step in 0..12u32 {
            let now = step * 20 * MS;
            match s.next(now, &peers) {
                Ok(Work::Sweep { peer, .. }) => {
                    kinds.push('s');
                    s.swept(now, &peer, &[(1, RootVerdict::Differs)]);
                }
                Ok(Work::Exchange { .. }) => kinds.push('x'),
                Ok(Work::Reap { .. }) => kinds.push('r'),
                Ok(Work::CleanUp { partition, .. }) => {
                    kinds.push('c');
                    s.cleaned(now, partition, Ok(None));
                }
                Err(wait) => panic!("idle for {wait:?} at step {step}"),
            }
        }
        assert_eq!(
            kinds, "sxsxrsxsxcsx",
            "one background step after four foreground ones"
        );
    }
}
