//! The invariants checked after a run has healed and settled. Pure functions of the history
//! (what clients were told), the final reads and the replicas' stored objects.
//!
//! A value is *accounted for* when it is visible in the final read, or when a write that saw it
//! explains its absence: a put whose context covered it and whose own value is accounted for,
//! or a delete that covered it. An acknowledged write that is not accounted for was lost.
//! Unknown writes (timeouts, failed quorums) may or may not be visible: nothing is demanded of
//! them, except that they cannot hide an acknowledged write unless they are visible themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use ringkit_kv::model::Object;

use super::history::{Event, Op};

/// The final read of every key a client wrote: the visible values, or why the read failed.
pub(crate) type FinalReads = BTreeMap<String, Result<Vec<String>, String>>;

/// Each node's stored rows (tombstones included), by node name.
pub(crate) type ReplicaRows = BTreeMap<String, BTreeMap<Bytes, Object>>;

/// A broken invariant, with what is needed to understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Violation {
    /// An acknowledged write is neither visible nor replaced by a write that saw it.
    Lost {
        /// Which checker found it ("set", "siblings", "deletes").
        checker: &'static str,
        /// The key.
        key: String,
        /// The lost value.
        value: String,
    },
    /// A value an acknowledged delete or overwrite removed is visible again.
    Resurrected {
        /// The key.
        key: String,
        /// The value that came back.
        value: String,
        /// The acknowledged write that removed it.
        removed_by: String,
    },
    /// A visible value that no client ever wrote.
    Phantom {
        /// The key.
        key: String,
        /// The value nobody wrote.
        value: String,
    },
    /// After healing, a key could not be read.
    Unreadable {
        /// The key.
        key: String,
        /// The error.
        error: String,
    },
    /// A phase of the run did not finish within its simulated-time bound (a client request
    /// that never completed, a read that never returned): a liveness failure.
    Stuck {
        /// Which phase ("workload", "final reads").
        phase: &'static str,
        /// Simulated milliseconds when the run gave up.
        at_ms: u64,
    },
    /// After the settle time the ring had not reached its final shape (a node that never
    /// joined, partition transfers still pending): a liveness failure of ownership changes.
    Unsettled {
        /// What was still under way.
        state: String,
    },
    /// Two replicas of a key hold different objects after the settle time.
    Diverged {
        /// The key.
        key: String,
        /// Each replica's object (`None`: no row).
        replicas: Vec<(String, Option<Object>)>,
    },
}

impl Violation {
    /// The key concerned.
    pub(crate) fn key(&self) -> String {
        match self {
            Violation::Lost { key, .. }
            | Violation::Resurrected { key, .. }
            | Violation::Phantom { key, .. }
            | Violation::Unreadable { key, .. }
            | Violation::Diverged { key, .. } => key.clone(),
            Violation::Stuck { .. } | Violation::Unsettled { .. } => String::new(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Lost {
                checker,
                key,
                value,
            } => write!(
                f,
                "[{checker}] LOST acknowledged write {key}={value}: not visible and not replaced by a write that saw it"
            ),
            Violation::Resurrected {
                key,
                value,
                removed_by,
            } => write!(
                f,
                "[deletes] RESURRECTED {key}={value}, removed by acknowledged {removed_by}"
            ),
            Violation::Phantom { key, value } => {
                write!(f, "[set] PHANTOM {key}={value}: visible but never written")
            }
            Violation::Stuck { phase, at_ms } => {
                write!(
                    f,
                    "[liveness] the {phase} phase had not finished at {at_ms} ms"
                )
            }
            Violation::Unsettled { state } => {
                write!(f, "[membership] the ring had not settled: {state}")
            }
            Violation::Unreadable { key, error } => {
                write!(f, "[final read] {key} unreadable after heal: {error}")
            }
            Violation::Diverged { key, replicas } => {
                write!(f, "[convergence] {key} differs between replicas:")?;
                for (node, object) in replicas {
                    write!(f, "\n      {node}: {object:?}")?;
                }
                Ok(())
            }
        }
    }
}

/// The final values of `key`, if it was read successfully.
fn visible<'a>(finals: &'a FinalReads, key: &str) -> Option<&'a [String]> {
    finals
        .get(key)
        .and_then(|r| r.as_ref().ok())
        .map(Vec::as_slice)
}

/// Whether `value` of `key` is accounted for (see the module docs). `visiting` breaks cycles,
/// which a correct history cannot have (a write only sees earlier values).
fn accounted(
    value: &str,
    key: &str,
    writes: &[&Event],
    finals: &FinalReads,
    visiting: &mut BTreeSet<String>,
) -> bool {
    if visible(finals, key).is_some_and(|v| v.iter().any(|x| x == value)) {
        return true;
    }
    if !visiting.insert(value.to_owned()) {
        return false;
    }
    let explained = writes.iter().any(|e| {
        e.op.seen().iter().any(|s| s == value)
            && match &e.op {
                Op::Delete { .. } => true,
                Op::Put { value: newer, .. } => accounted(newer, key, writes, finals, visiting),
            }
    });
    visiting.remove(value);
    explained
}

/// Acknowledged puts to keys starting with `prefix` that are not accounted for.
fn lost_writes(
    checker: &'static str,
    prefix: &str,
    history: &[Event],
    finals: &FinalReads,
) -> Vec<Violation> {
    let mut by_key: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in history.iter().filter(|e| e.op.key().starts_with(prefix)) {
        by_key.entry(e.op.key()).or_default().push(e);
    }
    let mut out = Vec::new();
    for (key, writes) in by_key {
        if visible(finals, key).is_none() {
            continue; // Reported by `unreadable`.
        }
        for e in writes.iter().filter(|e| e.acked()) {
            if let Op::Put { value, .. } = &e.op
                && !accounted(value, key, &writes, finals, &mut BTreeSet::new())
            {
                out.push(Violation::Lost {
                    checker,
                    key: key.to_owned(),
                    value: value.clone(),
                });
            }
        }
    }
    out
}

/// Jepsen's set test on the `set/` keys (one key per added element): every acknowledged add is
/// present after healing (0 lost), and nothing is present that nobody added. Unacknowledged
/// adds may be present or not.
pub(crate) fn check_set(history: &[Event], finals: &FinalReads) -> Vec<Violation> {
    let mut out = lost_writes("set", "set/", history, finals);
    let written: BTreeSet<(&str, &str)> = history
        .iter()
        .filter_map(|e| match &e.op {
            Op::Put { key, value, .. } => Some((key.as_str(), value.as_str())),
            Op::Delete { .. } => None,
        })
        .collect();
    for (key, read) in finals {
        for value in read.iter().flatten() {
            if !written.contains(&(key.as_str(), value.as_str())) {
                out.push(Violation::Phantom {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
    }
    out
}

/// Concurrent writes are kept as siblings, on the `sib/` keys that several clients write
/// blindly: each acknowledged put is visible, or replaced by a later put that read it (and is
/// itself accounted for).
pub(crate) fn check_siblings(history: &[Event], finals: &FinalReads) -> Vec<Violation> {
    lost_writes("siblings", "sib/", history, finals)
}

/// No resurrected deletes: a value removed by an acknowledged delete (or overwritten by an
/// acknowledged put whose context covered it) never becomes visible again. Also checks that
/// the `del/` keys' acknowledged puts are accounted for.
pub(crate) fn check_deletes(history: &[Event], finals: &FinalReads) -> Vec<Violation> {
    let mut out = lost_writes("deletes", "del/", history, finals);
    for e in history.iter().filter(|e| e.acked()) {
        let Some(values) = visible(finals, e.op.key()) else {
            continue;
        };
        for value in e.op.seen().iter().filter(|s| values.contains(s)) {
            out.push(Violation::Resurrected {
                key: e.op.key().to_owned(),
                value: value.clone(),
                removed_by: e.to_string(),
            });
        }
    }
    out
}

/// Every key written must be readable after healing.
pub(crate) fn check_readable(finals: &FinalReads) -> Vec<Violation> {
    finals
        .iter()
        .filter_map(|(key, r)| {
            r.as_ref().err().map(|error| Violation::Unreadable {
                key: key.clone(),
                error: error.clone(),
            })
        })
        .collect()
}

/// All replicas converged: for every key stored anywhere, the nodes `owners` names hold equal
/// objects (a missing row differs from a tombstone: reaping happens only once all agree).
pub(crate) fn check_converged(
    rows: &ReplicaRows,
    owners: impl Fn(&[u8]) -> Vec<String>,
) -> Vec<Violation> {
    let keys: BTreeSet<&Bytes> = rows.values().flat_map(BTreeMap::keys).collect();
    let mut out = Vec::new();
    for key in keys {
        let replicas: Vec<(String, Option<Object>)> = owners(key)
            .into_iter()
            .map(|node| {
                let object = rows.get(&node).and_then(|r| r.get(key)).cloned();
                (node, object)
            })
            .collect();
        if replicas.windows(2).any(|w| w[0].1 != w[1].1) {
            out.push(Violation::Diverged {
                key: String::from_utf8_lossy(key).into_owned(),
                replicas,
            });
        }
    }
    out
}
