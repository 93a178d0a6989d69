//! [`HandoffPlanner`]: which targets get a batch of hints now, and when to look again.
//!
//! Sans-IO: the shell feeds it the hint backlog it read from storage, the live nodes, the ring's
//! members and the outcome of each batch, with the time as a [`Duration`] since the shell
//! started; it answers with the handoffs due now and the next moment something may become due.
//! Every rule (skip dead targets, redirect the hints of removed members, one batch in flight per
//! target, a concurrency cap, exponential backoff after a failure, reset when a target comes
//! back, keep draining while batches come back full) is a unit test in `planner_tests.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ringkit_hashring::NodeId;

use super::config::HandoffConfig;

/// What one delivered batch did, as the planner needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Hints sent to the target (and acknowledged by it).
    pub sent: usize,
    /// Hints then dropped from storage; `sent - dropped` changed during the delivery and are
    /// kept for the next round.
    pub dropped: usize,
    /// Whether the batch was cut at its size limits, so more hints may be waiting.
    pub full: bool,
}

/// A batch to run: whose hints, and where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    /// The node the hints were kept for.
    pub target: NodeId,
    /// The target is off the ring (removed or departing), or this node is (it is leaving and
    /// must not keep hints it will never deliver): the hints go to each key's current live
    /// replicas instead of to the target.
    pub redirect: bool,
}

/// The planner's view of one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Target {
    /// Hints held for it (from the last backlog, minus what was dropped since).
    hints: u64,
    /// Bytes of those hints.
    bytes: u64,
    /// Not due before this.
    next_at: Duration,
    /// Failed batches in a row (drives the backoff).
    failures: u32,
    /// A batch is being delivered.
    in_flight: bool,
}

/// Decides when each target's hints are handed off. See the module docs.
#[derive(Clone, Debug)]
pub struct HandoffPlanner {
    /// Intervals, limits, backoff.
    config: HandoffConfig,
    /// This node: never a target (its own data is merged, not hinted).
    local: NodeId,
    /// Targets that have hints or a batch in flight.
    targets: BTreeMap<NodeId, Target>,
    /// Nodes believed alive at the last [`observe_live`](Self::observe_live).
    live: BTreeSet<NodeId>,
    /// The ring's members at the last [`observe_members`](Self::observe_members); `None` until
    /// then (no target counts as removed before the ring is known).
    members: Option<BTreeSet<NodeId>>,
}

impl HandoffPlanner {
    /// A planner for the node `local`.
    pub fn new(config: HandoffConfig, local: NodeId) -> Self {
        Self {
            config,
            local,
            targets: BTreeMap::new(),
            live: BTreeSet::new(),
            members: None,
        }
    }

    /// Takes in the hint backlog read from storage: `(target, hints, bytes)` for every target
    /// that has hints. A new target is due at once; one no longer listed is forgotten (unless a
    /// batch to it is in flight).
    pub fn observe_backlog(
        &mut self,
        backlog: impl IntoIterator<Item = (NodeId, u64, u64)>,
        now: Duration,
    ) {
        let mut seen = BTreeSet::new();
        for (target, hints, bytes) in backlog {
            if target == self.local || hints == 0 {
                continue;
            }
            let t = self.targets.entry(target.clone()).or_insert(Target {
                next_at: now,
                ..Target::default()
            });
            t.hints = hints;
            t.bytes = bytes;
            seen.insert(target);
        }
        self.targets.retain(|id, t| {
            if !seen.contains(id) {
                t.hints = 0;
                t.bytes = 0;
            }
            seen.contains(id) || t.in_flight
        });
    }

    /// Takes in the nodes believed alive. A target that was not alive before and is now is due
    /// at once, whatever its backoff: it just came back.
    pub fn observe_live(&mut self, live: &BTreeSet<NodeId>, now: Duration) {
        for (id, t) in &mut self.targets {
            if live.contains(id) && !self.live.contains(id) {
                t.failures = 0;
                t.next_at = now;
            }
        }
        self.live.clone_from(live);
    }

    /// Takes in the ring's nodes (the owners). A target that just left the ring (removed, or
    /// departing) is due at once: its hints are now redirected to the keys' current replicas,
    /// whether it is alive or not. If this node itself left the ring, every target is.
    pub fn observe_members(&mut self, members: &BTreeSet<NodeId>, now: Duration) {
        let was =
            |m: &Option<BTreeSet<NodeId>>, id: &NodeId| m.as_ref().is_none_or(|m| m.contains(id));
        let local_left = was(&self.members, &self.local) && !members.contains(&self.local);
        for (id, t) in &mut self.targets {
            if local_left || (was(&self.members, id) && !members.contains(id)) {
                t.failures = 0;
                t.next_at = now;
            }
        }
        match &mut self.members {
            Some(m) => m.clone_from(members),
            None => self.members = Some(members.clone()),
        }
    }

    /// The batches to run now, at most enough to reach the concurrency cap, the longest-waiting
    /// first. Their targets count as in flight until [`delivered`](Self::delivered) or
    /// [`failed`](Self::failed).
    pub fn due(&mut self, now: Duration) -> Vec<Handoff> {
        let room = self.config.max_concurrent.saturating_sub(self.in_flight());
        let mut ready: Vec<(Duration, NodeId)> = self
            .targets
            .iter()
            .filter(|(id, t)| self.eligible(id, t) && t.next_at <= now)
            .map(|(id, t)| (t.next_at, id.clone()))
            .collect();
        ready.sort();
        ready.truncate(room);
        ready
            .into_iter()
            .map(|(_, target)| {
                if let Some(t) = self.targets.get_mut(&target) {
                    t.in_flight = true;
                }
                let redirect = self.redirected(&target);
                Handoff { target, redirect }
            })
            .collect()
    }

    /// A batch to `target` was delivered. A full batch that dropped hints means more are
    /// waiting: the target stays due. Otherwise it waits one interval (hints that changed during
    /// the delivery, or arrived since, go then).
    pub fn delivered(&mut self, target: &NodeId, report: BatchReport, now: Duration) {
        let Some(t) = self.targets.get_mut(target) else {
            return;
        };
        t.in_flight = false;
        t.failures = 0;
        let dropped = report.dropped as u64;
        // Keep the byte estimate proportional until the next backlog read corrects both.
        if let Some(per_hint) = t.bytes.checked_div(t.hints) {
            t.bytes = t.bytes.saturating_sub(per_hint * dropped.min(t.hints));
        }
        t.hints = t.hints.saturating_sub(dropped);
        t.next_at = if report.full && report.dropped > 0 {
            now
        } else {
            now + self.config.interval
        };
    }

    /// A batch to `target` failed: it waits `backoff_min * 2^(failures - 1)`, at most
    /// `backoff_max`.
    pub fn failed(&mut self, target: &NodeId, now: Duration) {
        let Some(t) = self.targets.get_mut(target) else {
            return;
        };
        t.in_flight = false;
        t.failures = t.failures.saturating_add(1);
        t.next_at = now + self.config.backoff(t.failures);
    }

    /// When something may next become due (not counting new hints or nodes coming back, which
    /// the shell reports as they happen); `None` when nothing is waiting, or when the concurrency
    /// cap is reached: then nothing can start before a batch finishes, and the shell wakes for
    /// that anyway (a wake time here would be in the past and the shell would spin).
    pub fn next_wake(&self) -> Option<Duration> {
        if self.in_flight() >= self.config.max_concurrent {
            return None;
        }
        self.targets
            .iter()
            .filter(|(id, t)| self.eligible(id, t))
            .map(|(_, t)| t.next_at)
            .min()
    }

    /// Hints (and bytes) pending per target: what the admin API shows as "handoffs pending".
    pub fn pending(&self) -> BTreeMap<NodeId, (u64, u64)> {
        self.targets
            .iter()
            .filter(|(_, t)| t.hints > 0)
            .map(|(id, t)| (id.clone(), (t.hints, t.bytes)))
            .collect()
    }

    /// Failed batches in a row for `target` (0 when it is healthy or unknown).
    pub fn failures(&self, target: &NodeId) -> u32 {
        self.targets.get(target).map_or(0, |t| t.failures)
    }

    /// Batches being delivered.
    fn in_flight(&self) -> usize {
        self.targets.values().filter(|t| t.in_flight).count()
    }

    /// A target can get a batch when it has hints, none in flight, and is alive or redirected
    /// (then its hints go elsewhere).
    fn eligible(&self, id: &NodeId, t: &Target) -> bool {
        t.hints > 0 && !t.in_flight && (self.live.contains(id) || self.redirected(id))
    }

    /// Whether `id`'s hints go to the keys' replicas: it, or this node, has left the ring (as
    /// far as the last membership seen says).
    fn redirected(&self, id: &NodeId) -> bool {
        self.members
            .as_ref()
            .is_some_and(|m| !m.contains(id) || !m.contains(&self.local))
    }
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
