//! [`ReadQuorum`]: collecting a read's answers, merging them, and finding the replicas to
//! repair, sans IO.
//!
//! Answers are merged with the model's [`Object::merge`] (the join of dotted version vectors), so
//! concurrent writes seen on different replicas come back as siblings and a tombstone hides the
//! stale copies it covers. A replica whose answer differs from the merge (stale, or missing the
//! key) is repaired with the merged object.

use ringkit_hashring::NodeId;

use super::plan::ReadPlan;
use super::write_quorum::{Failure, summarize};
use crate::error::KvError;
use crate::model::Object;

/// Where a read stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Fewer than R answers, and R still reachable.
    Pending,
    /// R replicas answered.
    Ready,
    /// Too many failed for R to be reached.
    Failed,
}

/// Answer collection for one read.
#[derive(Clone, Debug)]
pub struct ReadQuorum {
    /// Answers needed.
    r: usize,
    /// Replicas of the key, for the error message.
    n: usize,
    /// Asked and not answered yet.
    pending: Vec<NodeId>,
    /// Answers: each replica's stored object (`None`: it has nothing for the key).
    replies: Vec<(NodeId, Option<Object>)>,
    /// Failed, with why.
    failed: Vec<(NodeId, Failure)>,
}

impl ReadQuorum {
    /// A tracker with every target of `plan` asked.
    pub fn new(plan: &ReadPlan) -> Self {
        Self {
            r: plan.r,
            n: plan.n,
            pending: plan.targets.clone(),
            replies: Vec::with_capacity(plan.targets.len()),
            failed: Vec::new(),
        }
    }

    /// Records `node`'s answer. Unknown or repeated answers are ignored.
    pub fn reply(&mut self, node: &NodeId, object: Option<Object>) {
        if let Some(i) = self.pending.iter().position(|p| p == node) {
            self.replies.push((self.pending.swap_remove(i), object));
        }
    }

    /// Records `node`'s failure.
    pub fn fail(&mut self, node: &NodeId, failure: Failure) {
        if let Some(i) = self.pending.iter().position(|p| p == node) {
            self.failed.push((self.pending.swap_remove(i), failure));
        }
    }

    /// Where the read stands now.
    pub fn status(&self) -> ReadStatus {
        if self.replies.len() >= self.r {
            ReadStatus::Ready
        } else if self.replies.len() + self.pending.len() < self.r {
            ReadStatus::Failed
        } else {
            ReadStatus::Pending
        }
    }

    /// True once every asked replica answered or failed.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }

    /// The merge of every answer so far; `None` when no replica holds anything for the key.
    pub fn merged(&self) -> Option<Object> {
        self.replies
            .iter()
            .filter_map(|(_, o)| o.as_ref())
            .fold(None, |acc: Option<Object>, o| {
                Some(match acc {
                    None => o.clone(),
                    Some(a) => a.merge(o),
                })
            })
    }

    /// Replicas whose answer differs from `merged` (stale, or missing the key): they get the
    /// merged object.
    pub fn repairs(&self, merged: &Object) -> Vec<NodeId> {
        self.replies
            .iter()
            .filter(|(_, o)| o.as_ref() != Some(merged))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The UNAVAILABLE error for a failed read: answers, of how many, and who failed.
    pub fn error(&self) -> KvError {
        let (timeouts, errors) = summarize(self.failed.iter().map(|(id, f)| (id, f)));
        KvError::Unavailable(format!(
            "got {} of {} answers (n={}, timeouts: {timeouts:?}, errors: {errors:?})",
            self.replies.len(),
            self.r,
            self.n
        ))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::cluster::plan::Route;
    use crate::model::{ActorId, Dot, Sibling, Timestamp, VersionVector};

    fn plan(targets: &[&str], r: usize) -> ReadPlan {
        ReadPlan {
            route: Route::Local,
            targets: targets.iter().map(|s| NodeId::from(*s)).collect(),
            r,
            n: targets.len(),
        }
    }

    fn obj(actor: u64, counter: u64) -> Object {
        let s = Sibling {
            dot: Dot::new(ActorId(actor), counter),
            value: Bytes::from(format!("{actor}:{counter}")),
            written_at: Timestamp(counter),
            expires_at: None,
            lww: false,
        };
        Object::from_parts(vec![s], VersionVector::new())
    }

    #[test]
    fn ready_at_r_merges_concurrent_writes_as_siblings() {
        let mut q = ReadQuorum::new(&plan(&["a", "b", "c"], 2));
        q.reply(&"a".into(), Some(obj(1, 1)));
        assert_eq!(q.status(), ReadStatus::Pending);
        q.reply(&"b".into(), Some(obj(2, 1)));
        assert_eq!(q.status(), ReadStatus::Ready);
        let m = q
            .merged()
            .unwrap_or_else(|| panic!("two answers with data"));
        assert_eq!(m.siblings().len(), 2);
        assert_eq!(q.repairs(&m), vec![NodeId::from("a"), "b".into()]);
    }

    #[test]
    fn stale_and_missing_replicas_are_repaired_up_to_date_ones_are_not() {
        let old = obj(1, 1);
        let mut newer = old.clone();
        newer.discard(old.context());
        newer.add(obj(1, 2).siblings()[0].clone());
        let mut q = ReadQuorum::new(&plan(&["a", "b", "c"], 2));
        q.reply(&"a".into(), Some(newer.clone()));
        q.reply(&"b".into(), Some(old));
        q.reply(&"c".into(), None);
        assert!(q.is_done());
        let m = q.merged().unwrap_or_else(|| panic!("data"));
        assert_eq!(m, newer, "the newer write supersedes the one it saw");
        assert_eq!(q.repairs(&m), vec![NodeId::from("b"), "c".into()]);
    }

    #[test]
    fn nothing_anywhere_is_not_found_and_failures_are_reported() {
        let mut q = ReadQuorum::new(&plan(&["a", "b", "c"], 2));
        q.reply(&"a".into(), None);
        q.fail(&"b".into(), Failure::Timeout);
        assert_eq!(q.status(), ReadStatus::Pending);
        q.fail(&"c".into(), Failure::Error("down".into()));
        assert_eq!(q.status(), ReadStatus::Failed);
        assert_eq!(q.merged(), None);
        let msg = q.error().to_string();
        assert!(
            msg.contains("got 1 of 2 answers") && msg.contains("c: down"),
            "{msg}"
        );
    }
}
