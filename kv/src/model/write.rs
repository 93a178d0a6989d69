//! Write resolution: what a put, a delete or a replica merge does to a key's stored object.
//!
//! Pure functions of (stored object, request, now, dot issuer). Storage engines call them inside
//! their write transaction, so both engines resolve writes identically and every rule is unit
//! tested here without I/O.

use bytes::Bytes;

use super::object::{Object, Sibling};
use super::time::Timestamp;
use super::version::{ActorId, Dot, VersionVector};

/// Issues this store's dots: one monotonic counter for every key.
///
/// The counter is persisted with the data it labels (same transaction), so it never goes back, and
/// a dot is never reissued even after a key was purged. That makes it safe to reap tombstones and
/// expired rows on a single node, and lets a node reject contexts that claim dots it never issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DotIssuer {
    /// The actor every dot is issued for.
    actor: ActorId,
    /// The last counter issued (0: none yet).
    last: u64,
}

impl DotIssuer {
    /// Resumes issuing after `last` (0 for a new store).
    pub fn new(actor: ActorId, last: u64) -> Self {
        Self { actor, last }
    }

    /// The actor dots are issued for.
    pub fn actor(&self) -> ActorId {
        self.actor
    }

    /// The last counter issued; persist it with the data.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Issues the next dot.
    ///
    /// # Errors
    /// [`WriteRejection::CounterExhausted`] after 2^64 - 1 writes, which no store reaches.
    pub fn issue(&mut self) -> Result<Dot, WriteRejection> {
        self.last = self
            .last
            .checked_add(1)
            .ok_or(WriteRejection::CounterExhausted)?;
        Ok(Dot::new(self.actor, self.last))
    }

    /// Never issue a dot at or below `counter` (a merged state mentioned it).
    pub fn observe(&mut self, counter: u64) {
        self.last = self.last.max(counter);
    }
}

/// How a put treats the siblings it did not see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WriteMode {
    /// Dotted version vectors: replace only what the context covers; anything else stays as a
    /// sibling. Never loses a concurrent write.
    #[default]
    Causal,
    /// Replace every sibling this replica holds, whatever the context says. Lossy by design: a
    /// concurrent write the client never saw is discarded.
    LastWriteWins,
}

/// The sibling limits a put is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiblingLimits {
    /// From this many siblings on, the write succeeds but is flagged so the caller can warn.
    pub warn: usize,
    /// A put that would leave more siblings than this is rejected.
    pub max: usize,
}

impl Default for SiblingLimits {
    fn default() -> Self {
        Self { warn: 16, max: 64 }
    }
}

/// A client write as the coordinating replica applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalWrite {
    /// Store a value.
    Put {
        /// The value bytes.
        value: Bytes,
        /// The context the client read; `None` for a blind write (a new sibling if the key exists).
        context: Option<VersionVector>,
        /// Absolute expiry, if the put had a TTL.
        expires_at: Option<Timestamp>,
        /// Causal or last-write-wins.
        mode: WriteMode,
    },
    /// Remove the versions the context covers.
    Delete {
        /// The context the client read; `None` removes every version this replica holds.
        context: Option<VersionVector>,
    },
}

/// Why a write was refused without touching storage.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WriteRejection {
    /// The put would leave more siblings than allowed.
    #[error(
        "key has {siblings} siblings (limit {max}): read it and write back with its context to resolve them"
    )]
    TooManySiblings {
        /// Siblings the key would have after the put.
        siblings: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The context claims a write by this store that the store never issued.
    #[error(
        "context mentions version {claimed} of this node, which has only issued up to {issued}: the context is forged or from another store"
    )]
    ContextFromFuture {
        /// The counter the context claims.
        claimed: u64,
        /// The last counter this store issued.
        issued: u64,
    },
    /// The dot counter is exhausted.
    #[error("the store has issued 2^64-1 versions and cannot issue more")]
    CounterExhausted,
}

/// The result of applying a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The object to store (and to replicate).
    pub object: Object,
    /// The dot of the new sibling (puts only).
    pub dot: Option<Dot>,
    /// True when the sibling count reached the warning threshold.
    pub warn_siblings: bool,
}

/// Applies a client put or delete to the stored object.
///
/// Steps: drop expired siblings; pick the context (the client's, or for LWW puts and blind
/// deletes everything this replica has seen); discard the siblings it covers; for a put, add the
/// new sibling with a fresh dot.
///
/// # Errors
/// [`WriteRejection`] when the context is impossible or the sibling limit would be exceeded; the
/// stored object must then be left untouched.
pub fn resolve_local_write(
    stored: Option<&Object>,
    write: LocalWrite,
    now: Timestamp,
    issuer: &mut DotIssuer,
    limits: SiblingLimits,
) -> Result<Resolved, WriteRejection> {
    let mut object = stored.cloned().unwrap_or_default();
    object.drop_expired(now);
    match write {
        LocalWrite::Put {
            value,
            context,
            expires_at,
            mode,
        } => {
            let seen = match mode {
                WriteMode::Causal => context.unwrap_or_default(),
                WriteMode::LastWriteWins => {
                    let mut all = object.context().clone();
                    all.join(&context.unwrap_or_default());
                    all
                }
            };
            check_context(&seen, issuer)?;
            object.discard(&seen);
            let siblings = object.siblings().len() + 1;
            if siblings > limits.max {
                return Err(WriteRejection::TooManySiblings {
                    siblings,
                    max: limits.max,
                });
            }
            let dot = issuer.issue()?;
            object.add(Sibling {
                dot,
                value,
                written_at: now,
                expires_at,
                lww: mode == WriteMode::LastWriteWins,
            });
            Ok(Resolved {
                object,
                dot: Some(dot),
                warn_siblings: siblings >= limits.warn,
            })
        }
        LocalWrite::Delete { context } => {
            let seen = context.unwrap_or_else(|| object.context().clone());
            check_context(&seen, issuer)?;
            object.discard(&seen);
            Ok(Resolved {
                object,
                dot: None,
                warn_siblings: false,
            })
        }
    }
}

/// Merges a replica's state (replication, read repair, handoff, anti-entropy) into ours.
///
/// Never rejected: refusing would leave replicas diverged. The issuer observes the incoming
/// context so this store can never reissue a dot the merged state mentions.
pub fn resolve_merge(stored: Option<&Object>, incoming: &Object, issuer: &mut DotIssuer) -> Object {
    issuer.observe(incoming.context().get(issuer.actor()));
    match stored {
        Some(stored) => stored.merge(incoming),
        None => incoming.clone(),
    }
}

/// A context may not claim dots of this store beyond what it issued.
fn check_context(seen: &VersionVector, issuer: &DotIssuer) -> Result<(), WriteRejection> {
    let claimed = seen.get(issuer.actor());
    if claimed > issuer.last() {
        return Err(WriteRejection::ContextFromFuture {
            claimed,
            issued: issuer.last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: ActorId = ActorId(7);

    fn put(value: &str, context: Option<VersionVector>) -> LocalWrite {
        LocalWrite::Put {
            value: Bytes::from(value.to_owned()),
            context,
            expires_at: None,
            mode: WriteMode::Causal,
        }
    }

    fn values(o: &Object) -> Vec<&[u8]> {
        o.siblings().iter().map(|s| s.value.as_ref()).collect()
    }

    fn apply(stored: Option<&Object>, w: LocalWrite, issuer: &mut DotIssuer) -> Object {
        resolve_local_write(stored, w, Timestamp(1), issuer, SiblingLimits::default())
            .map(|r| r.object)
            .unwrap_or_else(|e| panic!("write rejected: {e}"))
    }

    #[test]
    fn blind_writes_become_siblings_and_context_replaces_them() {
        let mut issuer = DotIssuer::new(ME, 0);
        let o1 = apply(None, put("a", None), &mut issuer);
        let o2 = apply(Some(&o1), put("b", None), &mut issuer);
        assert_eq!(values(&o2), vec![&b"a"[..], b"b"]);
        let o3 = apply(Some(&o2), put("c", Some(o2.context().clone())), &mut issuer);
        assert_eq!(values(&o3), vec![&b"c"[..]]);
    }

    #[test]
    fn stale_context_keeps_the_write_it_did_not_see() {
        let mut issuer = DotIssuer::new(ME, 0);
        let o1 = apply(None, put("a", None), &mut issuer);
        let ctx1 = o1.context().clone();
        let o2 = apply(Some(&o1), put("b", Some(ctx1.clone())), &mut issuer);
        // A second client still holds ctx1: its write is concurrent with "b".
        let o3 = apply(Some(&o2), put("c", Some(ctx1)), &mut issuer);
        assert_eq!(values(&o3), vec![&b"b"[..], b"c"]);
    }

    #[test]
    fn lww_replaces_everything() {
        let mut issuer = DotIssuer::new(ME, 0);
        let o1 = apply(None, put("a", None), &mut issuer);
        let o2 = apply(Some(&o1), put("b", None), &mut issuer);
        let lww = LocalWrite::Put {
            value: Bytes::from_static(b"z"),
            context: None,
            expires_at: None,
            mode: WriteMode::LastWriteWins,
        };
        let o3 = apply(Some(&o2), lww, &mut issuer);
        assert_eq!(values(&o3), vec![&b"z"[..]]);
        assert!(o3.siblings()[0].lww);
    }

    #[test]
    fn delete_with_context_leaves_tombstone_and_blind_delete_removes_all() {
        let mut issuer = DotIssuer::new(ME, 0);
        let o1 = apply(None, put("a", None), &mut issuer);
        let ctx = o1.context().clone();
        let o2 = apply(Some(&o1), put("b", None), &mut issuer);
        let partial = apply(
            Some(&o2),
            LocalWrite::Delete { context: Some(ctx) },
            &mut issuer,
        );
        assert_eq!(values(&partial), vec![&b"b"[..]]);
        let all = apply(Some(&o2), LocalWrite::Delete { context: None }, &mut issuer);
        assert!(all.is_tombstone());
        assert_eq!(all.context(), o2.context());
    }

    #[test]
    fn sibling_limit_rejects_and_warns() {
        let mut issuer = DotIssuer::new(ME, 0);
        let limits = SiblingLimits { warn: 2, max: 3 };
        let mut obj: Option<Object> = None;
        let mut warned = vec![];
        for _ in 0..3 {
            let r = resolve_local_write(
                obj.as_ref(),
                put("x", None),
                Timestamp(1),
                &mut issuer,
                limits,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            warned.push(r.warn_siblings);
            obj = Some(r.object);
        }
        assert_eq!(warned, vec![false, true, true]);
        let err = resolve_local_write(
            obj.as_ref(),
            put("x", None),
            Timestamp(1),
            &mut issuer,
            limits,
        );
        assert_eq!(
            err,
            Err(WriteRejection::TooManySiblings {
                siblings: 4,
                max: 3
            })
        );
    }

    #[test]
    fn context_with_unissued_dot_is_rejected() {
        let mut issuer = DotIssuer::new(ME, 5);
        let forged = VersionVector::from_pairs([(ME, 6)]);
        let err = resolve_local_write(
            None,
            put("x", Some(forged)),
            Timestamp(1),
            &mut issuer,
            SiblingLimits::default(),
        );
        assert_eq!(
            err,
            Err(WriteRejection::ContextFromFuture {
                claimed: 6,
                issued: 5
            })
        );
        assert_eq!(issuer.last(), 5);
    }

    #[test]
    fn expired_siblings_are_dropped_before_writing() {
        let mut issuer = DotIssuer::new(ME, 0);
        let ttl = LocalWrite::Put {
            value: Bytes::from_static(b"t"),
            context: None,
            expires_at: Some(Timestamp(5)),
            mode: WriteMode::Causal,
        };
        let o1 = apply(None, ttl, &mut issuer);
        let r = resolve_local_write(
            Some(&o1),
            put("n", None),
            Timestamp(5),
            &mut issuer,
            SiblingLimits::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(values(&r.object), vec![&b"n"[..]]);
    }

    #[test]
    fn merge_observes_own_dots() {
        let mut issuer = DotIssuer::new(ME, 1);
        let remote = Object::from_parts(vec![], VersionVector::from_pairs([(ME, 9)]));
        let merged = resolve_merge(None, &remote, &mut issuer);
        assert_eq!(merged, remote);
        assert_eq!(issuer.issue(), Ok(Dot::new(ME, 10)));
    }
}
