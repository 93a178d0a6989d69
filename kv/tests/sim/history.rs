//! What the clients did: every write they invoked, what it had seen, and how it ended.
//!
//! A Dynamo store cannot tell a client whether a failed write took effect (a timeout, or a
//! quorum not reached after some replicas stored it), so every outcome other than success is
//! *unknown*: the checkers demand nothing of unknown writes, and everything of acknowledged ones.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A client write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// A put of `value` (unique across the run) to `key`, sent with a context that covered the
    /// values in `seen` (empty: a blind write).
    Put {
        /// The key.
        key: String,
        /// The value written.
        value: String,
        /// The values the context covered: the ones this write replaces.
        seen: Vec<String>,
    },
    /// A delete of `key` with a context that covered the values in `seen`.
    Delete {
        /// The key.
        key: String,
        /// The values the delete removes.
        seen: Vec<String>,
    },
}

impl Op {
    /// The key written.
    pub(crate) fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    /// The values this write replaces.
    pub(crate) fn seen(&self) -> &[String] {
        match self {
            Op::Put { seen, .. } | Op::Delete { seen, .. } => seen,
        }
    }
}

/// How a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Acknowledged by the cluster (W replicas).
    Ok,
    /// Anything else (timeout, UNAVAILABLE, connection lost): it may or may not have applied.
    Unknown(String),
}

/// One write with its outcome and simulated times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The client host that issued it.
    pub(crate) client: String,
    /// The node it was sent to.
    pub(crate) node: String,
    /// The write.
    pub(crate) op: Op,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Simulated milliseconds when it was sent.
    pub(crate) invoked_ms: u64,
    /// Simulated milliseconds when it ended.
    pub(crate) completed_ms: u64,
}

impl Event {
    /// True when acknowledged.
    pub(crate) fn acked(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match &self.outcome {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Unknown(why) => format!("unknown ({why})"),
        };
        let what = match &self.op {
            Op::Put { key, value, seen } => format!("put {key}={value} seen={seen:?}"),
            Op::Delete { key, seen } => format!("delete {key} seen={seen:?}"),
        };
        write!(
            f,
            "[{:>6}ms..{:>6}ms] {} via {}: {what} -> {outcome}",
            self.invoked_ms, self.completed_ms, self.client, self.node
        )
    }
}

/// Every write of a run, in completion order. Shared by the client tasks (clones share it).
#[derive(Clone, Debug, Default)]
pub(crate) struct History {
    /// The events.
    events: Arc<Mutex<Vec<Event>>>,
}

impl History {
    /// An empty history.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records a completed write.
    pub(crate) fn record(&self, event: Event) {
        self.lock().push(event);
    }

    /// A copy of the events so far.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
