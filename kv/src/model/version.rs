//! Actors, dots and version vectors: the vocabulary of causality.
//!
//! A *dot* names one write: the actor that coordinated it and that actor's counter at the time. A
//! *version vector* summarises every dot a replica (or a client's context) has seen for one key:
//! entry `a: n` means "every write by actor `a` up to counter `n` has been seen".

use std::fmt;

/// The identity that issues dots: one per data directory (or in-memory store) incarnation.
///
/// It is a random 64-bit number created with the store and never reused, which is Riak's lesson
/// about vnode ids: a node that loses its disk and comes back under the same *name* must not issue
/// dots that collide with the ones it issued before, or new writes would look already seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId(pub u64);

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One write event: `(actor, counter)`, unique in the whole cluster.
///
/// Counters come from one monotonic sequence per actor (not per key), so a dot is never reissued
/// even after the key's row was purged or reaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// Who coordinated the write.
    pub actor: ActorId,
    /// The actor's sequence number for this write; starts at 1.
    pub counter: u64,
}

impl Dot {
    /// Builds a dot; a convenience for tests and codecs.
    pub fn new(actor: ActorId, counter: u64) -> Self {
        Self { actor, counter }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.actor, self.counter)
    }
}

/// A version vector: for each actor, the highest counter seen.
///
/// Stored as a vector sorted by actor with no zero entries, so equality is structural and the
/// encoding is canonical (equal vectors hash equally, which anti-entropy relies on).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector {
    /// Sorted by actor, every counter > 0.
    entries: Vec<(ActorId, u64)>,
}

impl VersionVector {
    /// The empty vector: has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a vector from any `(actor, counter)` pairs, keeping the maximum per actor and
    /// dropping zero counters.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (ActorId, u64)>) -> Self {
        let mut vv = Self::new();
        for (actor, counter) in pairs {
            vv.add(Dot::new(actor, counter));
        }
        vv
    }

    /// The highest counter seen for `actor` (0 if none).
    pub fn get(&self, actor: ActorId) -> u64 {
        match self.entries.binary_search_by_key(&actor, |(a, _)| *a) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// True when this vector has seen `dot`.
    pub fn covers(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.actor)
    }

    /// Records `dot` as seen (raising the actor's entry if needed).
    pub fn add(&mut self, dot: Dot) {
        if dot.counter == 0 {
            return;
        }
        match self.entries.binary_search_by_key(&dot.actor, |(a, _)| *a) {
            Ok(i) => {
                let entry = &mut self.entries[i].1;
                *entry = (*entry).max(dot.counter);
            }
            Err(i) => self.entries.insert(i, (dot.actor, dot.counter)),
        }
    }

    /// Pointwise maximum: afterwards this vector has seen everything either had.
    pub fn join(&mut self, other: &VersionVector) {
        for &(actor, counter) in &other.entries {
            self.add(Dot::new(actor, counter));
        }
    }

    /// True when this vector has seen everything `other` has (`self >= other`).
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.entries.iter().all(|&(a, c)| self.get(a) >= c)
    }

    /// The entries, sorted by actor.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ActorId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of actors with a non-zero entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ActorId = ActorId(1);
    const B: ActorId = ActorId(2);

    #[test]
    fn add_keeps_maximum_and_order() {
        let mut vv = VersionVector::new();
        vv.add(Dot::new(B, 3));
        vv.add(Dot::new(A, 5));
        vv.add(Dot::new(B, 1));
        vv.add(Dot::new(A, 0));
        assert_eq!(vv.iter().collect::<Vec<_>>(), vec![(A, 5), (B, 3)]);
        assert!(vv.covers(Dot::new(B, 2)));
        assert!(!vv.covers(Dot::new(B, 4)));
    }

    #[test]
    fn join_and_descends() {
        let a = VersionVector::from_pairs([(A, 2), (B, 1)]);
        let b = VersionVector::from_pairs([(B, 4)]);
        let mut j = a.clone();
        j.join(&b);
        assert!(j.descends(&a) && j.descends(&b));
        assert!(!a.descends(&b) && !b.descends(&a));
        assert_eq!(j.get(B), 4);
    }
}
