//! [`WriteQuorum`]: counting a write's acknowledgements, sans IO.
//!
//! The coordinator feeds it each target's outcome; it says when W is reached or can no longer be,
//! picks a stand-in fallback when a target fails (sloppy mode), and at the end lists the primaries
//! nothing reached, for which the coordinator keeps a hint.

use ringkit_hashring::NodeId;

use super::plan::{Target, WritePlan};
use crate::error::KvError;

/// Why a target did not acknowledge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the per-replica timeout.
    Timeout,
    /// It answered with an error or could not be reached.
    Error(String),
}

/// The nodes that timed out, and `node: error` for the others: the two lists every quorum
/// error reports.
pub(super) fn summarize<'a>(
    failed: impl Iterator<Item = (&'a NodeId, &'a Failure)>,
) -> (Vec<String>, Vec<String>) {
    let mut timeouts = Vec::new();
    let mut errors = Vec::new();
    for (node, f) in failed {
        match f {
            Failure::Timeout => timeouts.push(node.to_string()),
            Failure::Error(e) => errors.push(format!("{node}: {e}")),
        }
    }
    (timeouts, errors)
}

/// Where a write stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStatus {
    /// Neither reached nor impossible yet.
    Pending,
    /// W targets acknowledged.
    Succeeded,
    /// Too many failed for W to be reached.
    Failed,
}

/// Acknowledgement counting for one write.
#[derive(Clone, Debug)]
pub struct WriteQuorum {
    /// Acknowledgements needed.
    w: usize,
    /// Replicas of the key, for the error message.
    n: usize,
    /// Sent and not answered yet.
    pending: Vec<Target>,
    /// Acknowledged.
    acked: Vec<Target>,
    /// Failed, with why.
    failed: Vec<(Target, Failure)>,
    /// Live fallbacks not used yet, next one last.
    spare: Vec<NodeId>,
    /// Primaries the plan found no target for.
    unplaced: Vec<NodeId>,
}

impl WriteQuorum {
    /// A tracker with every target of `plan` in flight.
    pub fn new(plan: &WritePlan) -> Self {
        let mut spare = plan.spare_fallbacks.clone();
        spare.reverse();
        Self {
            w: plan.w,
            n: plan.n,
            pending: plan.targets.clone(),
            acked: Vec::new(),
            failed: Vec::new(),
            spare,
            unplaced: plan.unplaced.clone(),
        }
    }

    /// Records `node`'s acknowledgement. Unknown or repeated answers are ignored.
    pub fn ack(&mut self, node: &NodeId) {
        if let Some(i) = self.pending.iter().position(|t| t.node == *node) {
            self.acked.push(self.pending.swap_remove(i));
        }
    }

    /// Records `node`'s failure. Returns the stand-in to send the object to next, if a fallback
    /// is left (sloppy mode): it keeps a hint for the primary the failed target stood for. The
    /// stand-in is counted as in flight.
    pub fn fail(&mut self, node: &NodeId, failure: Failure) -> Option<Target> {
        let i = self.pending.iter().position(|t| t.node == *node)?;
        let target = self.pending.swap_remove(i);
        let primary = target
            .hint_for
            .clone()
            .unwrap_or_else(|| target.node.clone());
        self.failed.push((target, failure));
        let stand_in = Target {
            node: self.spare.pop()?,
            hint_for: Some(primary),
        };
        self.pending.push(stand_in.clone());
        Some(stand_in)
    }

    /// Where the write stands now.
    pub fn status(&self) -> WriteStatus {
        if self.acked.len() >= self.w {
            WriteStatus::Succeeded
        } else if self.acked.len() + self.pending.len() < self.w {
            WriteStatus::Failed
        } else {
            WriteStatus::Pending
        }
    }

    /// True once no target is in flight.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// Acknowledgements so far.
    pub fn acks(&self) -> usize {
        self.acked.len()
    }

    /// Primaries that neither acknowledged nor had a stand-in acknowledge for them (the plan's
    /// unplaced ones included): the coordinator keeps a hint for each. Meaningful once
    /// [`is_done`](Self::is_done).
    pub fn unreached_primaries(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self.unplaced.clone();
        for (t, _) in &self.failed {
            let primary = t.hint_for.as_ref().unwrap_or(&t.node);
            let covered = self
                .acked
                .iter()
                .chain(&self.pending)
                .any(|a| a.node == *primary || a.hint_for.as_ref() == Some(primary));
            if !covered && !out.contains(primary) {
                out.push(primary.clone());
            }
        }
        out
    }

    /// The UNAVAILABLE error for a failed write: how many acknowledged, of how many, and which
    /// targets timed out or failed.
    pub fn error(&self) -> KvError {
        let (timeouts, errors) = summarize(self.failed.iter().map(|(t, f)| (&t.node, f)));
        KvError::Unavailable(format!(
            "got {} of {} acknowledgements (n={}, timeouts: {timeouts:?}, errors: {errors:?}); \
             the write may be applied on the replicas that acknowledged",
            self.acked.len(),
            self.w,
            self.n
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::plan::Route;

    fn t(id: &str) -> Target {
        Target {
            node: NodeId::from(id),
            hint_for: None,
        }
    }

    fn plan(targets: &[&str], spare: &[&str], w: usize) -> WritePlan {
        WritePlan {
            route: Route::Local,
            targets: targets.iter().map(|s| t(s)).collect(),
            spare_fallbacks: spare.iter().map(|s| NodeId::from(*s)).collect(),
            unplaced: Vec::new(),
            w,
            n: targets.len(),
        }
    }

    #[test]
    fn succeeds_at_w_acks() {
        let mut q = WriteQuorum::new(&plan(&["a", "b", "c"], &[], 2));
        q.ack(&"a".into());
        assert_eq!(q.status(), WriteStatus::Pending);
        q.ack(&"a".into());
        assert_eq!(q.acks(), 1, "a repeated ack counts once");
        q.ack(&"c".into());
        assert_eq!(q.status(), WriteStatus::Succeeded);
        assert!(!q.is_done());
    }

    #[test]
    fn fails_when_w_is_out_of_reach_and_says_why() {
        let mut q = WriteQuorum::new(&plan(&["a", "b", "c"], &[], 2));
        q.ack(&"a".into());
        assert_eq!(q.fail(&"b".into(), Failure::Timeout), None);
        assert_eq!(q.status(), WriteStatus::Pending);
        q.fail(&"c".into(), Failure::Error("refused".into()));
        assert_eq!(q.status(), WriteStatus::Failed);
        let msg = q.error().to_string();
        assert!(msg.contains("got 1 of 2"), "{msg}");
        assert!(
            msg.contains("timeouts: [\"b\"]") && msg.contains("c: refused"),
            "{msg}"
        );
        assert_eq!(q.unreached_primaries(), vec![NodeId::from("b"), "c".into()]);
    }

    #[test]
    fn a_failed_primary_gets_a_hinted_stand_in_that_counts() {
        let mut q = WriteQuorum::new(&plan(&["a", "b", "c"], &["d", "e"], 3));
        q.ack(&"a".into());
        q.ack(&"b".into());
        let s = q.fail(&"c".into(), Failure::Timeout);
        assert_eq!(
            s,
            Some(Target {
                node: "d".into(),
                hint_for: Some("c".into())
            })
        );
        // The stand-in fails too: the next one stands for the same primary.
        let s2 = q.fail(&"d".into(), Failure::Timeout);
        assert_eq!(s2.and_then(|t| t.hint_for), Some("c".into()));
        assert_eq!(q.status(), WriteStatus::Pending);
        q.ack(&"e".into());
        assert_eq!(q.status(), WriteStatus::Succeeded);
        assert!(q.is_done());
        assert!(q.unreached_primaries().is_empty());
    }
}
