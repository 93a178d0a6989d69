//! [`TrackedStorage`]: the write hook that keeps the Merkle trees honest.
//!
//! Every write a node makes (client puts and deletes, replication merges, read repair, handoff,
//! anti-entropy's own repairs, reaping, expiry purges) goes through [`Storage::submit_write`],
//! whoever calls it. Wrapping the store there observes all of them without touching the
//! coordinator, the hint loop or the transfer code: the wrapper marks the leaf of each changed
//! key after the write committed, and the trees re-read dirty leaves before they are compared
//! (see `docs/adr/0430-kv-aae.md`).

use std::sync::Arc;

use crate::model::{ActorId, key_hash};
use crate::storage::{
    Applied, OpResult, ReadJob, Storage, WriteDone, WriteOp, WriteRequest, WriterStats,
};

use super::trees::AaeTrees;

/// A [`Storage`] that reports every committed change to the anti-entropy trees.
///
/// Build the node's `KvNode` over it (`KvNode::new(TrackedStorage::new(store, trees), ..)`) so
/// that nothing writes around it.
#[derive(Debug)]
pub struct TrackedStorage<S> {
    /// The real store.
    inner: S,
    /// The trees to mark.
    trees: Arc<AaeTrees>,
}

impl<S: Clone> Clone for TrackedStorage<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            trees: Arc::clone(&self.trees),
        }
    }
}

impl<S> TrackedStorage<S> {
    /// Wraps `inner`, marking `trees`.
    pub fn new(inner: S, trees: Arc<AaeTrees>) -> Self {
        Self { inner, trees }
    }

    /// The wrapped store (reads through it are fine; writes would escape the trees).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The trees this store marks.
    pub fn trees(&self) -> &Arc<AaeTrees> {
        &self.trees
    }
}

/// What a committed operation means for the trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Touch {
    /// The row of the key with this hash may have changed.
    Key(u64),
    /// Rows that the operation does not name may have changed.
    Unknown,
    /// The node's data rows did not change.
    Nothing,
}

/// The rows an operation may touch, given its outcome (`None`: the request failed as a whole;
/// treated as "may have changed", which only costs a leaf re-read).
fn touch(op_key: Option<u64>, result: Option<&OpResult>) -> Touch {
    let changed = match result {
        None => true,
        Some(Err(_)) => false,
        Some(Ok(Applied::Written(_))) => true,
        Some(Ok(Applied::Merged { changed, .. })) => *changed,
        Some(Ok(Applied::Removed { rows })) => *rows > 0,
        // Hints live apart from the data rows the trees summarise.
        Some(Ok(Applied::Hinted { .. })) => false,
    };
    match (changed, op_key) {
        (false, _) => Touch::Nothing,
        (true, Some(hash)) => Touch::Key(hash),
        (true, None) => Touch::Unknown,
    }
}

/// The hash of the data row an operation names, if it names exactly one.
fn op_key(op: &WriteOp) -> Option<u64> {
    match op {
        WriteOp::Local { key, .. }
        | WriteOp::Merge { key, .. }
        | WriteOp::ReapIfUnchanged { key, .. }
        | WriteOp::DropIfUnchanged { key, .. } => Some(key_hash(key)),
        _ => None,
    }
}

impl<S: Storage> Storage for TrackedStorage<S> {
    fn actor(&self) -> ActorId {
        self.inner.actor()
    }

    fn submit_write(&self, request: WriteRequest, done: WriteDone) {
        let keys: Vec<Option<u64>> = request.ops.iter().map(op_key).collect();
        let hint_only = request
            .ops
            .iter()
            .all(|op| matches!(op, WriteOp::StoreHint { .. } | WriteOp::DropHint { .. }));
        let trees = Arc::clone(&self.trees);
        self.inner.submit_write(
            request,
            Box::new(move |outcome| {
                // Mark before acknowledging: a refresh that starts after the caller sees the
                // acknowledgement finds the leaf dirty or the write in its snapshot.
                let results = outcome.as_ref().ok();
                let mut unknown = false;
                for (i, key) in keys.iter().enumerate() {
                    let result = results.map(|r| r.get(i));
                    let t = match result {
                        Some(None) => Touch::Nothing,
                        Some(Some(r)) => touch(*key, Some(r)),
                        None if hint_only => Touch::Nothing,
                        None => touch(*key, None),
                    };
                    match t {
                        Touch::Key(hash) => trees.mark(hash),
                        Touch::Unknown => unknown = true,
                        Touch::Nothing => {}
                    }
                }
                if unknown {
                    trees.mark_all();
                }
                done(outcome);
            }),
        );
    }

    fn submit_read(&self, job: ReadJob) {
        self.inner.submit_read(job);
    }

    fn writer_stats(&self) -> WriterStats {
        self.inner.writer_stats()
    }

    fn durability(&self) -> &'static str {
        self.inner.durability()
    }

    fn close(&self) {
        self.inner.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Object;

    #[test]
    fn outcomes_decide_what_is_marked() {
        let merged = |changed| {
            Ok(Applied::Merged {
                object: Object::new(),
                changed,
            })
        };
        assert_eq!(touch(Some(7), Some(&merged(true))), Touch::Key(7));
        assert_eq!(touch(Some(7), Some(&merged(false))), Touch::Nothing);
        let removed = |rows| Ok(Applied::Removed { rows });
        assert_eq!(touch(None, Some(&removed(3))), Touch::Unknown);
        assert_eq!(touch(None, Some(&removed(0))), Touch::Nothing);
        assert_eq!(touch(Some(1), Some(&removed(1))), Touch::Key(1));
        let hinted = Ok(Applied::Hinted {
            digest: 1,
            changed: true,
        });
        assert_eq!(touch(None, Some(&hinted)), Touch::Nothing);
        assert_eq!(touch(Some(2), None), Touch::Key(2));
        assert_eq!(touch(None, None), Touch::Unknown);
    }
}
