//! The replica-level operations of [`KvNode`] that a cluster builds on: writes that hand back the
//! stored object (to replicate it), raw reads (tombstones included), scans as stored objects,
//! and merges of other replicas' state. (Hints: `cluster::hints::store_hints`.)
//!
//! They validate exactly like the client calls (the same limits and context checks), so a
//! coordinator in a cluster refuses the same bad input a single node does.

use bytes::Bytes;

use super::cursor::decode_cursor;
use super::kv_node::KvNode;
use super::quorum::Quorum;
use super::types::{DeleteOutcome, Put, PutOutcome, Scan};
use crate::error::KvError;
use crate::model::{LocalWrite, Object, Resolved, decode_context, encode_context};
use crate::storage::{Applied, OpResult, Storage, StorageExt, WriteOp};

/// The single outcome of a one-operation request.
fn single(results: Vec<OpResult>) -> Result<Applied, KvError> {
    results.into_iter().next().unwrap_or(Err(KvError::Closed))
}

/// A storage outcome that does not fit the operation (a bug, reported rather than panicking).
fn unexpected(applied: &Applied) -> KvError {
    KvError::Internal(format!("unexpected storage outcome {applied:?}"))
}

impl<S: Storage> KvNode<S> {
    /// [`put`](Self::put) that also returns the object now stored: what a cluster coordinator
    /// sends to the other replicas. The quorum is not checked here (the coordinator does).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub async fn put_object(&self, put: Put) -> Result<(PutOutcome, Object), KvError> {
        let now = self.now();
        let return_body = put.return_body;
        let (key, op) = self.put_op(put, now)?;
        let _permit = self.write_permit().await?;
        let applied = single(self.storage().write(self.request(now, vec![op])).await?)?;
        let object = match &applied {
            Applied::Written(Resolved { object, .. }) => object.clone(),
            other => return Err(unexpected(other)),
        };
        Ok((self.put_outcome(&key, applied, now, return_body)?, object))
    }

    /// [`delete`](Self::delete) that also returns the tombstone (or surviving siblings) now
    /// stored, to replicate it.
    ///
    /// # Errors
    /// As [`delete`](Self::delete).
    pub async fn delete_object(
        &self,
        key: Bytes,
        context: Bytes,
    ) -> Result<(DeleteOutcome, Object), KvError> {
        self.config().limits.check_key(&key)?;
        let context = decode_context(&key, &context)?;
        let now = self.now();
        let op = WriteOp::Local {
            key: key.clone(),
            write: LocalWrite::Delete { context },
        };
        let _permit = self.write_permit().await?;
        match single(self.storage().write(self.request(now, vec![op])).await?)? {
            Applied::Written(Resolved { object, .. }) => Ok((
                DeleteOutcome {
                    context: Bytes::from(encode_context(&key, object.context())),
                    remaining_siblings: object.visible(now).len(),
                },
                object,
            )),
            other => Err(unexpected(&other)),
        }
    }

    /// The stored objects for `keys`, in order, tombstones and expired siblings included: a
    /// replica's raw state, for a coordinator to merge.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn read_objects(&self, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        let _permit = self.read_permit().await?;
        self.storage()
            .read(move |view| {
                keys.iter()
                    .map(|k| view.get(k))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
    }

    /// One page of this store's keys in the scan's range that have a visible value, as stored
    /// objects, and whether more follow: a cluster scan merges such pages from every node.
    ///
    /// # Errors
    /// Page size 0 or above the limit, a cursor from another scan, storage failures.
    pub async fn scan_objects(&self, scan: Scan) -> Result<(Vec<(Bytes, Object)>, bool), KvError> {
        self.config().limits.check_page_size(scan.page_size)?;
        let range = if scan.cursor.is_empty() {
            scan.range.clone()
        } else {
            scan.range.after(decode_cursor(&scan.range, &scan.cursor)?)
        };
        let now = self.now();
        let limit = scan.page_size + 1;
        let _permit = self.read_permit().await?;
        let mut rows = self
            .storage()
            .read(move |view| view.scan(&range, now, limit))
            .await?;
        let more = rows.len() > scan.page_size;
        rows.truncate(scan.page_size);
        Ok((rows, more))
    }

    /// Merges other replicas' states into this store in one group commit. Returns how many
    /// changed the stored state.
    ///
    /// # Errors
    /// Storage failures (nothing is applied).
    pub async fn merge_objects(&self, items: Vec<(Bytes, Object)>) -> Result<usize, KvError> {
        if items.is_empty() {
            return Ok(0);
        }
        let ops = items
            .into_iter()
            .map(|(key, object)| WriteOp::Merge { key, object })
            .collect();
        let now = self.now();
        let _permit = self.write_permit().await?;
        let mut changed = 0;
        for r in self.storage().write(self.request(now, ops)).await? {
            if let Applied::Merged { changed: true, .. } = r? {
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Fills a request's quorum defaults and checks `R, W <= N` (the cluster size is checked
    /// by the cluster's planner).
    ///
    /// # Errors
    /// [`KvError::InvalidArgument`] naming the values.
    pub fn resolve_quorum(&self, quorum: Quorum) -> Result<Quorum, KvError> {
        quorum.resolve(self.config().quorum)
    }
}
