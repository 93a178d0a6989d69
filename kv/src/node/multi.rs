//! The multi-key operations of [`KvNode`]: batch reads and writes, and scans.

use bytes::Bytes;

use super::cursor::{decode_cursor, encode_cursor};
use super::kv_node::{KvNode, observe};
use super::quorum::Quorum;
use super::types::{Put, PutOutcome, Scan, ScanPage, Versioned};
use crate::error::KvError;
use crate::storage::{Storage, StorageExt};

impl<S: Storage> KvNode<S> {
    /// Reads several keys from one snapshot.
    ///
    /// # Errors
    /// Any invalid key fails the whole call (nothing was read); storage failures.
    pub async fn batch_get(
        &self,
        keys: Vec<Bytes>,
        quorum: Quorum,
    ) -> Result<Vec<Versioned>, KvError> {
        observe("batch_get", async {
            let limits = &self.config().limits;
            limits.check_batch(keys.len())?;
            for k in &keys {
                limits.check_key(k)?;
            }
            quorum.resolve(self.config().quorum)?;
            let _permit = self.read_permit().await?;
            let ks = keys.clone();
            let objects = self
                .storage()
                .read(move |view| {
                    ks.iter()
                        .map(|k| view.get(k))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await?;
            Ok(keys
                .into_iter()
                .zip(objects)
                .map(|(k, o)| self.versioned(k, o.as_ref(), false))
                .collect())
        })
        .await
    }

    /// Writes several keys in one group commit; each item succeeds or fails on its own (a
    /// storage failure fails them all).
    ///
    /// # Errors
    /// An empty or oversize batch, an invalid quorum, storage failures.
    pub async fn batch_put(
        &self,
        puts: Vec<Put>,
        quorum: Quorum,
    ) -> Result<Vec<Result<PutOutcome, KvError>>, KvError> {
        observe("batch_put", async {
            self.config().limits.check_batch(puts.len())?;
            quorum.resolve(self.config().quorum)?;
            let now = self.now();
            let mut slots: Vec<Result<(Bytes, bool), KvError>> = Vec::with_capacity(puts.len());
            let mut ops = Vec::with_capacity(puts.len());
            for put in puts {
                let return_body = put.return_body;
                match self.put_op(put, now) {
                    Ok((key, op)) => {
                        ops.push(op);
                        slots.push(Ok((key, return_body)));
                    }
                    Err(e) => slots.push(Err(e)),
                }
            }
            let mut results = if ops.is_empty() {
                Vec::new().into_iter()
            } else {
                let _permit = self.write_permit().await?;
                self.storage()
                    .write(self.request(now, ops))
                    .await?
                    .into_iter()
            };
            Ok(slots
                .into_iter()
                .map(|slot| {
                    let (key, return_body) = slot?;
                    let applied = results.next().unwrap_or(Err(KvError::Closed))?;
                    self.put_outcome(&key, applied, now, return_body)
                })
                .collect())
        })
        .await
    }

    /// Lists one page of keys in order.
    ///
    /// # Errors
    /// Page size 0 or above the limit, a cursor from elsewhere, storage failures.
    pub async fn scan(&self, scan: Scan) -> Result<ScanPage, KvError> {
        observe("scan", async {
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
            let next_cursor = match (more, rows.last()) {
                (true, Some((last, _))) => encode_cursor(&scan.range, last),
                _ => Bytes::new(),
            };
            let entries = rows
                .into_iter()
                .map(|(k, o)| self.versioned(k, Some(&o), scan.keys_only))
                .collect();
            Ok(ScanPage {
                entries,
                next_cursor,
            })
        })
        .await
    }
}
