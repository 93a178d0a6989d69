//! The write path both engines share: one operation applied through a small row interface.
//!
//! Each engine provides [`RowWriter`] over its transaction (SQLite) or map (memory); the
//! decisions come from the model, so the engines cannot drift apart.

use bytes::Bytes;

use super::api::{Applied, HintEntry, OpResult, WriteOp};
use crate::error::KvError;
use crate::model::{
    DotIssuer, Object, SiblingLimits, Timestamp, encode_object, resolve_local_write, resolve_merge,
    row_digest,
};

/// Row-level access to an engine inside its write transaction.
pub(crate) trait RowWriter {
    /// The stored object for `key`.
    fn load(&mut self, key: &[u8]) -> Result<Option<Object>, KvError>;
    /// Stores `object` for `key` (insert or replace), recording `now` as its last change.
    fn store(&mut self, key: &Bytes, object: &Object, now: Timestamp) -> Result<(), KvError>;
    /// Deletes up to `limit` rows whose every sibling expired at or before `now`.
    fn purge_expired(&mut self, now: Timestamp, limit: usize) -> Result<usize, KvError>;
    /// Deletes `key` if it is a tombstone with this digest; returns the rows deleted (0 or 1).
    fn reap_if_unchanged(&mut self, key: &[u8], digest: u64) -> Result<usize, KvError>;
    /// Deletes `key` if its row's digest is `digest`; returns the rows deleted (0 or 1).
    fn drop_if_unchanged(&mut self, key: &[u8], digest: u64) -> Result<usize, KvError>;
    /// Deletes up to `limit` tombstones whose last change is before `before`.
    fn reap_tombstones(&mut self, before: Timestamp, limit: usize) -> Result<usize, KvError>;
    /// The hint held for (`target`, `key`).
    fn load_hint(&mut self, target: &str, key: &[u8]) -> Result<Option<Object>, KvError>;
    /// Stores `hint` for `target` (insert or replace); `encoded` is its object's canonical
    /// encoding, from which `hint.digest` was computed.
    fn store_hint(
        &mut self,
        target: &str,
        hint: &HintEntry,
        encoded: &[u8],
        now: Timestamp,
    ) -> Result<(), KvError>;
    /// Deletes the hint for (`target`, `key`) if its digest is `digest`; returns the rows
    /// deleted (0 or 1).
    fn drop_hint(&mut self, target: &str, key: &[u8], digest: u64) -> Result<usize, KvError>;
}

/// Applies one operation. The outer error is a storage failure (the caller rolls the request
/// back); the inner result is the operation's own outcome (a model rejection stores nothing).
pub(crate) fn apply_op(
    rows: &mut impl RowWriter,
    issuer: &mut DotIssuer,
    op: WriteOp,
    now: Timestamp,
    siblings: SiblingLimits,
) -> Result<OpResult, KvError> {
    match op {
        WriteOp::Local { key, write } => {
            let stored = rows.load(&key)?;
            match resolve_local_write(stored.as_ref(), write, now, issuer, siblings) {
                Ok(resolved) => {
                    rows.store(&key, &resolved.object, now)?;
                    Ok(Ok(Applied::Written(resolved)))
                }
                Err(rejection) => Ok(Err(rejection.into())),
            }
        }
        WriteOp::Merge { key, object } => {
            let stored = rows.load(&key)?;
            let merged = resolve_merge(stored.as_ref(), &object, issuer);
            let changed = stored.as_ref() != Some(&merged);
            if changed {
                rows.store(&key, &merged, now)?;
            }
            Ok(Ok(Applied::Merged {
                object: merged,
                changed,
            }))
        }
        WriteOp::PurgeExpired { limit } => {
            let removed = rows.purge_expired(now, limit)?;
            Ok(Ok(Applied::Removed { rows: removed }))
        }
        WriteOp::ReapIfUnchanged { key, digest } => {
            let removed = rows.reap_if_unchanged(&key, digest)?;
            Ok(Ok(Applied::Removed { rows: removed }))
        }
        WriteOp::DropIfUnchanged { key, digest } => {
            let removed = rows.drop_if_unchanged(&key, digest)?;
            Ok(Ok(Applied::Removed { rows: removed }))
        }
        WriteOp::ReapTombstones {
            deleted_before,
            limit,
        } => {
            let removed = rows.reap_tombstones(deleted_before, limit)?;
            Ok(Ok(Applied::Removed { rows: removed }))
        }
        WriteOp::StoreHint {
            target,
            key,
            object,
        } => {
            let held = rows.load_hint(&target, &key)?;
            // No dot is issued or observed: a hint is another node's state in transit, and it
            // becomes this node's business only through a Merge.
            let merged = match &held {
                Some(held) => held.merge(&object),
                None => object,
            };
            let changed = held.as_ref() != Some(&merged);
            let encoded = encode_object(&merged);
            let hint = HintEntry {
                digest: row_digest(&key, &encoded),
                key,
                object: merged,
            };
            if changed {
                rows.store_hint(&target, &hint, &encoded, now)?;
            }
            Ok(Ok(Applied::Hinted {
                digest: hint.digest,
                changed,
            }))
        }
        WriteOp::DropHint {
            target,
            key,
            digest,
        } => {
            let removed = rows.drop_hint(&target, &key, digest)?;
            Ok(Ok(Applied::Removed { rows: removed }))
        }
    }
}
