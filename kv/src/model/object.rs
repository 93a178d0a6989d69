//! A key's stored state: its siblings and its causal context (a dotted causal container).
//!
//! This follows Almeida et al., "Scalable and Accurate Causality Tracking for Eventually
//! Consistent Stores" (the design behind Riak 2.0's dotted version vectors): every sibling carries
//! the single dot of the write that created it, and one version vector summarises everything the
//! replica has seen. A sibling is dropped only when a newer write *saw* it (its dot is covered by
//! the writer's context); concurrent writes therefore survive side by side, and the number of
//! siblings is bounded by the number of truly concurrent writes, not by the number of clients.

use bytes::Bytes;

use super::time::Timestamp;
use super::version::{Dot, VersionVector};

/// One concurrent version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sibling {
    /// The write that created this version; unique, so it identifies the sibling.
    pub dot: Dot,
    /// The value bytes as the client wrote them.
    pub value: Bytes,
    /// Coordinator's wall-clock time of the write: shown to clients and used to pick a winner
    /// among last-write-wins siblings.
    pub written_at: Timestamp,
    /// Absolute expiry (TTL); the sibling is invisible from this instant on.
    pub expires_at: Option<Timestamp>,
    /// Written in last-write-wins mode: reads collapse concurrent LWW siblings to the newest.
    pub lww: bool,
}

impl Sibling {
    /// True when the sibling's TTL has run out at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The full causal state of one key on one replica.
///
/// An object with no siblings but a non-empty context is a *tombstone*: the key was deleted, and
/// the context remembers which writes the delete removed so that a stale replica cannot bring them
/// back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Object {
    /// Sorted by dot; no two share a dot.
    siblings: Vec<Sibling>,
    /// Every dot this replica has seen for the key (covers every sibling's dot).
    context: VersionVector,
}

impl Object {
    /// An object that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds an object from its parts (codecs, tests), restoring the invariants: siblings
    /// sorted and unique by dot, and the context covering every sibling.
    pub fn from_parts(mut siblings: Vec<Sibling>, mut context: VersionVector) -> Self {
        siblings.sort_by_key(|s| s.dot);
        siblings.dedup_by(|later, earlier| later.dot == earlier.dot);
        for s in &siblings {
            context.add(s.dot);
        }
        Self { siblings, context }
    }

    /// Every stored sibling, expired or not, sorted by dot.
    pub fn siblings(&self) -> &[Sibling] {
        &self.siblings
    }

    /// The causal context: what a client must send back to overwrite what it read.
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// True when the key holds no sibling at all (deleted, or never written).
    pub fn is_tombstone(&self) -> bool {
        self.siblings.is_empty()
    }

    /// The siblings a read at `now` shows: unexpired ones, and among last-write-wins siblings only
    /// the newest (by write time, then dot). Causal siblings are always all shown.
    pub fn visible(&self, now: Timestamp) -> Vec<&Sibling> {
        let live: Vec<&Sibling> = self
            .siblings
            .iter()
            .filter(|s| !s.is_expired(now))
            .collect();
        if live.len() > 1 && live.iter().all(|s| s.lww) {
            let newest = live
                .iter()
                .copied()
                .max_by(|a, b| (a.written_at, a.dot).cmp(&(b.written_at, b.dot)));
            return newest.into_iter().collect();
        }
        live
    }

    /// The latest expiry over the siblings, or `None` if some sibling never expires (or there
    /// are none): once this instant passes the whole row may be purged.
    pub fn expires_at(&self) -> Option<Timestamp> {
        let mut latest = None;
        for s in &self.siblings {
            match s.expires_at {
                None => return None,
                Some(at) => latest = Some(latest.map_or(at, |l: Timestamp| l.max(at))),
            }
        }
        latest
    }

    /// Removes every sibling `seen` covers (they were read by the writer) and remembers `seen`.
    pub fn discard(&mut self, seen: &VersionVector) {
        self.siblings.retain(|s| !seen.covers(s.dot));
        self.context.join(seen);
    }

    /// Removes siblings whose TTL has run out. Their dots stay in the context, so a replica that
    /// still holds a copy cannot resurrect them on merge.
    pub fn drop_expired(&mut self, now: Timestamp) {
        self.siblings.retain(|s| !s.is_expired(now));
    }

    /// Adds a freshly written sibling. Its dot must be new (not covered by the context).
    pub fn add(&mut self, sibling: Sibling) {
        self.context.add(sibling.dot);
        let at = self.siblings.partition_point(|s| s.dot < sibling.dot);
        self.siblings.insert(at, sibling);
    }

    /// Merges another replica's state into a new object (the DCC `sync`).
    ///
    /// A sibling survives when both sides hold it, or when the other side has not seen its dot.
    /// This is a join in a semilattice: commutative, associative and idempotent, so replicas that
    /// exchange states in any order converge.
    pub fn merge(&self, other: &Object) -> Object {
        let mut siblings = Vec::with_capacity(self.siblings.len() + other.siblings.len());
        let (mut i, mut j) = (0, 0);
        loop {
            match (self.siblings.get(i), other.siblings.get(j)) {
                (Some(a), Some(b)) if a.dot == b.dot => {
                    // Same write on both sides; identical by construction. Pick deterministically
                    // anyway so that a corrupted copy cannot break commutativity.
                    siblings.push(if a >= b { a.clone() } else { b.clone() });
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a.dot < b.dot => {
                    if !other.context.covers(a.dot) {
                        siblings.push(a.clone());
                    }
                    i += 1;
                }
                (Some(a), None) => {
                    if !other.context.covers(a.dot) {
                        siblings.push(a.clone());
                    }
                    i += 1;
                }
                (_, Some(b)) => {
                    if !self.context.covers(b.dot) {
                        siblings.push(b.clone());
                    }
                    j += 1;
                }
                (None, None) => break,
            }
        }
        let mut context = self.context.clone();
        context.join(&other.context);
        Object { siblings, context }
    }
}

#[cfg(test)]
mod tests {
    use super::super::version::ActorId;
    use super::*;

    pub(crate) fn sib(actor: u64, counter: u64) -> Sibling {
        Sibling {
            dot: Dot::new(ActorId(actor), counter),
            value: Bytes::from(format!("{actor}:{counter}")),
            written_at: Timestamp(counter),
            expires_at: None,
            lww: false,
        }
    }

    #[test]
    fn concurrent_siblings_survive_merge() {
        let a = Object::from_parts(vec![sib(1, 1)], VersionVector::new());
        let b = Object::from_parts(vec![sib(2, 1)], VersionVector::new());
        let m = a.merge(&b);
        assert_eq!(m.siblings().len(), 2);
        assert_eq!(m, b.merge(&a));
    }

    #[test]
    fn seen_sibling_is_dropped_on_merge() {
        let old = Object::from_parts(vec![sib(1, 1)], VersionVector::new());
        let mut newer = old.clone();
        newer.discard(&old.context().clone());
        newer.add(sib(1, 2));
        let m = old.merge(&newer);
        assert_eq!(m.siblings(), &[sib(1, 2)]);
    }

    #[test]
    fn tombstone_beats_stale_copy() {
        let old = Object::from_parts(vec![sib(1, 1)], VersionVector::new());
        let mut deleted = old.clone();
        deleted.discard(&old.context().clone());
        assert!(deleted.is_tombstone());
        assert!(old.merge(&deleted).is_tombstone());
    }

    #[test]
    fn visible_hides_expired_and_collapses_lww() {
        let mut a = sib(1, 1);
        a.expires_at = Some(Timestamp(10));
        let obj = Object::from_parts(vec![a, sib(2, 1)], VersionVector::new());
        assert_eq!(obj.visible(Timestamp(9)).len(), 2);
        assert_eq!(obj.visible(Timestamp(10)).len(), 1);
        assert_eq!(obj.expires_at(), None);

        let (mut x, mut y) = (sib(1, 5), sib(2, 3));
        x.lww = true;
        y.lww = true;
        y.written_at = Timestamp(100);
        let obj = Object::from_parts(vec![x, y.clone()], VersionVector::new());
        assert_eq!(obj.visible(Timestamp(0)), vec![&y]);
    }
}
