//! Tombstone reaping decisions, sans-IO. The rule (ADR 0430): a tombstone is removed only when
//!
//! 1. every node of its partition's write set holds the *same* tombstone (same row digest),
//!    and every other member holds nothing of the key or that same tombstone (a stale copy
//!    there is first given the tombstone),
//! 2. it has stayed so, unchanged here, for the grace period ([`TombstoneWatch`]),
//! 3. every member of the cluster is alive and answered, and none holds an undelivered hint,
//!    for a member or for a node that has left the ring ([`reap_gate`]): a hint is the only
//!    place an older version of a deleted key can hide once every member holds the tombstone or
//!    nothing, and a hint for a removed node is handed to the key's current replicas,
//!
//! and then each replica deletes it only if its digest is still that one
//! (`WriteOp::ReapIfUnchanged`), so a write that lands meanwhile keeps the row.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;

use crate::model::{Object, encode_object, row_digest};

/// A tombstone: key and row digest.
pub type Tombstone = (Bytes, u64);

/// When each local tombstone was first seen with its current digest.
#[derive(Clone, Debug)]
pub struct TombstoneWatch {
    /// How long a tombstone must stay unchanged.
    grace: Duration,
    /// Most tombstones watched over all partitions.
    cap: usize,
    /// Per partition: key -> (digest, first seen).
    partitions: BTreeMap<u32, HashMap<Bytes, (u64, Duration)>>,
}

impl TombstoneWatch {
    /// A watch that reports tombstones unchanged for `grace`, watching at most `cap`.
    pub fn new(grace: Duration, cap: usize) -> Self {
        Self {
            grace,
            cap,
            partitions: BTreeMap::new(),
        }
    }

    /// Takes a fresh scan of partition `p`'s tombstones at `now` (time since any fixed origin);
    /// returns those unchanged for the grace period. Tombstones missing from the scan are
    /// forgotten; a changed digest starts the clock again.
    pub fn observe(&mut self, p: u32, scan: Vec<Tombstone>, now: Duration) -> Vec<Tombstone> {
        let old = self.partitions.remove(&p).unwrap_or_default();
        let mut room = self.cap.saturating_sub(self.watched());
        let mut next = HashMap::new();
        let mut ready = Vec::new();
        for (key, digest) in scan {
            let since = match old.get(&key) {
                Some(&(d, since)) if d == digest => since,
                _ => now,
            };
            if room == 0 {
                break;
            }
            room -= 1;
            if now.saturating_sub(since) >= self.grace {
                ready.push((key.clone(), digest));
            }
            next.insert(key, (digest, since));
        }
        self.partitions.insert(p, next);
        ready
    }

    /// Stops watching partition `p` (it left this node).
    pub fn forget(&mut self, p: u32) {
        self.partitions.remove(&p);
    }

    /// Partitions being watched.
    pub fn partitions(&self) -> Vec<u32> {
        self.partitions.keys().copied().collect()
    }

    /// Tombstones watched.
    pub fn watched(&self) -> usize {
        self.partitions.values().map(HashMap::len).sum()
    }
}

/// Rule 3: may tombstones be reaped, given the cluster's `members`, who is `live`, and each
/// member's hint targets (`hints`; a member missing from it did not answer)? Any hint blocks,
/// whatever its target: a hint for a member is delivered to it, and a hint for a node that was
/// removed or has left is handed to its keys' current replicas (`hints::redirect`); either
/// could carry a version the tombstone deleted.
///
/// # Errors
/// Why not, for the status page.
pub fn reap_gate<'a>(
    members: impl IntoIterator<Item = &'a NodeId>,
    live: &BTreeSet<NodeId>,
    hints: &BTreeMap<NodeId, Vec<String>>,
) -> Result<(), String> {
    for m in members {
        if !live.contains(m) {
            return Err(format!(
                "member {m} is not live: it may hold a hint or a stale copy"
            ));
        }
        let Some(targets) = hints.get(m) else {
            return Err(format!("member {m} did not report its hints"));
        };
        if let Some(target) = targets.first() {
            return Err(format!("member {m} holds hints for {target}"));
        }
    }
    Ok(())
}

/// Rule 1: the candidates that a replica holds as exactly the same tombstone. `answer` is that
/// replica's objects for the candidates' keys, in order.
pub fn same_tombstones(candidates: &[Tombstone], answer: &[Option<Object>]) -> Vec<Tombstone> {
    candidates
        .iter()
        .zip(answer)
        .filter(|((key, digest), theirs)| {
            theirs
                .as_ref()
                .is_some_and(|o| o.is_tombstone() && row_digest(key, &encode_object(o)) == *digest)
        })
        .map(|(t, _)| t.clone())
        .collect()
}

/// Rule 1 for a member outside the key's write set (it may hold a copy from a request with a
/// larger N, or from before a transfer): the candidates it holds nothing of or exactly the same
/// tombstone of, and the keys it holds in another state (give it the tombstone first; a later
/// pass reaps them). `answer` is its objects for the candidates' keys, in order.
pub fn bystander_split(
    candidates: &[Tombstone],
    answer: &[Option<Object>],
) -> (Vec<Tombstone>, Vec<Bytes>) {
    let mut agreed = Vec::new();
    let mut stale = Vec::new();
    for ((key, digest), theirs) in candidates.iter().zip(answer) {
        match theirs {
            None => agreed.push((key.clone(), *digest)),
            Some(o) if o.is_tombstone() && row_digest(key, &encode_object(o)) == *digest => {
                agreed.push((key.clone(), *digest));
            }
            Some(_) => stale.push(key.clone()),
        }
    }
    (agreed, stale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ActorId, Dot, Sibling, Timestamp, VersionVector};

    const S: Duration = Duration::from_secs(1);

    fn tomb(counter: u64) -> Object {
        Object::from_parts(
            Vec::new(),
            VersionVector::from_pairs([(ActorId(1), counter)]),
        )
    }

    fn digest(key: &str, o: &Object) -> u64 {
        row_digest(key.as_bytes(), &encode_object(o))
    }

    #[test]
    fn a_tombstone_is_ready_after_the_grace_unchanged() {
        let mut w = TombstoneWatch::new(10 * S, 100);
        let k = Bytes::from("k");
        assert!(w.observe(0, vec![(k.clone(), 1)], S).is_empty());
        assert!(w.observe(0, vec![(k.clone(), 1)], 5 * S).is_empty());
        assert_eq!(
            w.observe(0, vec![(k.clone(), 1)], 11 * S),
            vec![(k.clone(), 1)]
        );
        // A changed digest (the key was written and deleted again) starts over.
        assert!(w.observe(0, vec![(k.clone(), 2)], 12 * S).is_empty());
        // Gone from the scan: forgotten.
        assert!(w.observe(0, vec![], 13 * S).is_empty());
        assert!(w.observe(0, vec![(k.clone(), 2)], 30 * S).is_empty());
        w.forget(0);
        assert_eq!(w.watched(), 0);
    }

    #[test]
    fn the_watch_is_bounded() {
        let mut w = TombstoneWatch::new(S, 2);
        let scan: Vec<Tombstone> = (0..5).map(|i| (Bytes::from(format!("k{i}")), i)).collect();
        w.observe(0, scan.clone(), Duration::ZERO);
        assert_eq!(w.watched(), 2);
        assert_eq!(w.observe(0, scan, 2 * S).len(), 2);
    }

    #[test]
    fn the_gate_wants_everyone_live_answering_and_no_hints_at_all() {
        let ids: Vec<NodeId> = ["a", "b", "c"].into_iter().map(NodeId::from).collect();
        let live: BTreeSet<NodeId> = ids.iter().cloned().collect();
        let mut hints: BTreeMap<NodeId, Vec<String>> =
            ids.iter().map(|i| (i.clone(), Vec::new())).collect();
        assert_eq!(reap_gate(&ids, &live, &hints), Ok(()));
        hints.insert(ids[2].clone(), vec!["b".into()]);
        assert!(reap_gate(&ids, &live, &hints).is_err_and(|e| e.contains("c holds hints for b")));
        // A hint for a node no longer on the ring is handed to the key's replicas later: it
        // could bring back what the tombstone deleted.
        hints.insert(ids[2].clone(), vec!["removed".into()]);
        assert!(reap_gate(&ids, &live, &hints).is_err_and(|e| e.contains("hints for removed")));
        hints.insert(ids[2].clone(), Vec::new());
        assert_eq!(reap_gate(&ids, &live, &hints), Ok(()));
        hints.remove(&ids[1]);
        assert!(reap_gate(&ids, &live, &hints).is_err_and(|e| e.contains("did not report")));
        hints.insert(ids[1].clone(), Vec::new());
        let mut down = live.clone();
        down.remove(&ids[2]);
        assert!(reap_gate(&ids, &down, &hints).is_err_and(|e| e.contains("not live")));
    }

    #[test]
    fn only_identical_tombstones_count() {
        let t = tomb(3);
        let live_value = Object::from_parts(
            vec![Sibling {
                dot: Dot::new(ActorId(1), 4),
                value: Bytes::from("v"),
                written_at: Timestamp(1),
                expires_at: None,
                lww: false,
            }],
            VersionVector::new(),
        );
        let cands: Vec<Tombstone> = ["same", "older", "missing", "alive"]
            .into_iter()
            .map(|k| (Bytes::from(k), digest(k, &t)))
            .collect();
        let answer = vec![Some(t.clone()), Some(tomb(2)), None, Some(live_value)];
        assert_eq!(same_tombstones(&cands, &answer), vec![cands[0].clone()]);
        // A member outside the write set may also hold nothing; a stale state is reported.
        let (agreed, stale) = bystander_split(&cands, &answer);
        assert_eq!(agreed, vec![cands[0].clone(), cands[2].clone()]);
        assert_eq!(stale, vec![Bytes::from("older"), Bytes::from("alive")]);
    }
}
