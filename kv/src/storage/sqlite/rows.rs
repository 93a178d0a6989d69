//! Row-level SQL: the writer's [`RowWriter`] and the readers' [`ReadView`] over a connection.
//!
//! Every statement is prepared once per connection and cached.

use std::ops::Bound;

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::super::api::{DataStats, HintBacklog, HintEntry, RangeSummary, ReadView, RowEntry};
use super::super::apply::RowWriter;
use crate::error::KvError;
use crate::model::{
    HashRange, KeyRange, Object, Timestamp, decode_object, encode_object, hash_to_sortable,
    key_hash, row_digest, sortable_to_hash,
};

/// Milliseconds as SQLite stores them.
pub(crate) fn ms(t: Timestamp) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

/// Decodes a stored object, naming the key if it is corrupt.
fn decode(key: &[u8], data: &[u8]) -> Result<Object, KvError> {
    decode_object(&Bytes::copy_from_slice(data)).map_err(|reason| KvError::Corrupt {
        what: format!("object of key {}", String::from_utf8_lossy(key)),
        reason,
    })
}

/// Loads one key's object.
fn load(conn: &Connection, key: &[u8]) -> Result<Option<Object>, KvError> {
    let mut stmt = conn.prepare_cached("SELECT data FROM objects WHERE key = ?1")?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        Some(row) => {
            let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            Ok(Some(decode(key, data)?))
        }
        None => Ok(None),
    }
}

/// The writer's view of its open transaction.
pub(crate) struct SqlRows<'c> {
    /// The writer connection, inside `BEGIN`.
    pub(crate) conn: &'c Connection,
}

impl RowWriter for SqlRows<'_> {
    fn load(&mut self, key: &[u8]) -> Result<Option<Object>, KvError> {
        load(self.conn, key)
    }

    fn store(&mut self, key: &Bytes, object: &Object, now: Timestamp) -> Result<(), KvError> {
        let data = encode_object(object);
        let digest = row_digest(key, &data);
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO objects (key, khash, tombstone, siblings, expires_at, updated_at, digest, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (key) DO UPDATE SET
                tombstone = excluded.tombstone, siblings = excluded.siblings,
                expires_at = excluded.expires_at, updated_at = excluded.updated_at,
                digest = excluded.digest, data = excluded.data",
        )?;
        stmt.execute(params![
            key.as_ref(),
            hash_to_sortable(key_hash(key)),
            object.is_tombstone(),
            object.siblings().len() as i64,
            object.expires_at().map(ms),
            ms(now),
            digest as i64,
            data,
        ])?;
        Ok(())
    }

    fn purge_expired(&mut self, now: Timestamp, limit: usize) -> Result<usize, KvError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM objects WHERE rowid IN
               (SELECT rowid FROM objects WHERE expires_at <= ?1 LIMIT ?2)",
        )?;
        Ok(stmt.execute(params![ms(now), i64::try_from(limit).unwrap_or(i64::MAX)])?)
    }

    fn reap_if_unchanged(&mut self, key: &[u8], digest: u64) -> Result<usize, KvError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM objects WHERE key = ?1 AND tombstone = 1 AND digest = ?2",
        )?;
        Ok(stmt.execute(params![key, digest as i64])?)
    }

    fn drop_if_unchanged(&mut self, key: &[u8], digest: u64) -> Result<usize, KvError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM objects WHERE key = ?1 AND digest = ?2")?;
        Ok(stmt.execute(params![key, digest as i64])?)
    }

    fn reap_tombstones(&mut self, before: Timestamp, limit: usize) -> Result<usize, KvError> {
        let mut stmt = self.conn.prepare_cached(
            "DELETE FROM objects WHERE rowid IN
               (SELECT rowid FROM objects WHERE tombstone = 1 AND updated_at < ?1 LIMIT ?2)",
        )?;
        Ok(stmt.execute(params![
            ms(before),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])?)
    }

    fn load_hint(&mut self, target: &str, key: &[u8]) -> Result<Option<Object>, KvError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT data FROM hints WHERE target = ?1 AND key = ?2")?;
        let mut rows = stmt.query(params![target, key])?;
        match rows.next()? {
            Some(row) => {
                let data = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                Ok(Some(decode_hint(target, key, data)?))
            }
            None => Ok(None),
        }
    }

    fn store_hint(
        &mut self,
        target: &str,
        hint: &HintEntry,
        encoded: &[u8],
        now: Timestamp,
    ) -> Result<(), KvError> {
        let old_len: Option<i64> = self
            .conn
            .prepare_cached("SELECT length(data) FROM hints WHERE target = ?1 AND key = ?2")?
            .query_row(params![target, hint.key.as_ref()], |r| r.get(0))
            .optional()?;
        let new_len = i64::try_from(encoded.len()).unwrap_or(i64::MAX);
        count_hints(
            self.conn,
            target,
            i64::from(old_len.is_none()),
            new_len - old_len.unwrap_or(0),
        )?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO hints (target, key, digest, updated_at, data) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (target, key) DO UPDATE SET
                digest = excluded.digest, updated_at = excluded.updated_at, data = excluded.data",
        )?;
        stmt.execute(params![
            target,
            hint.key.as_ref(),
            hint.digest as i64,
            ms(now),
            encoded
        ])?;
        Ok(())
    }

    fn drop_hint(&mut self, target: &str, key: &[u8], digest: u64) -> Result<usize, KvError> {
        let removed: Option<i64> = self
            .conn
            .prepare_cached(
                "DELETE FROM hints WHERE target = ?1 AND key = ?2 AND digest = ?3
                 RETURNING length(data)",
            )?
            .query_row(params![target, key, digest as i64], |r| r.get(0))
            .optional()?;
        match removed {
            Some(len) => {
                count_hints(self.conn, target, -1, -len)?;
                Ok(1)
            }
            None => Ok(0),
        }
    }
}

/// Adjusts `target`'s backlog row by `hints` and `bytes`, forgetting the target at zero.
fn count_hints(conn: &Connection, target: &str, hints: i64, bytes: i64) -> Result<(), KvError> {
    conn.prepare_cached(
        "INSERT INTO hint_targets (target, hints, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (target) DO UPDATE SET
            hints = hints + excluded.hints, bytes = bytes + excluded.bytes",
    )?
    .execute(params![target, hints, bytes])?;
    if hints < 0 {
        conn.prepare_cached("DELETE FROM hint_targets WHERE target = ?1 AND hints <= 0")?
            .execute([target])?;
    }
    Ok(())
}

/// Decodes a stored hint, naming its target and key if it is corrupt.
fn decode_hint(target: &str, key: &[u8], data: &[u8]) -> Result<Object, KvError> {
    decode_object(&Bytes::copy_from_slice(data)).map_err(|reason| KvError::Corrupt {
        what: format!(
            "hint for node {target:?}, key {}",
            String::from_utf8_lossy(key)
        ),
        reason,
    })
}

/// A reader's view: a connection inside a read transaction.
pub(crate) struct SqlReadView<'c> {
    /// A reader connection.
    pub(crate) conn: &'c Connection,
    /// Bytes the files occupy, read by `stats`.
    pub(crate) disk_bytes: &'c dyn Fn() -> u64,
}

impl ReadView for SqlReadView<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Object>, KvError> {
        load(self.conn, key)
    }

    fn scan(
        &mut self,
        range: &KeyRange,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Bytes, Object)>, KvError> {
        let mut sql = String::from(
            "SELECT key, data FROM objects
             WHERE tombstone = 0 AND (expires_at IS NULL OR expires_at > ?1)",
        );
        let mut args = vec![
            Value::Integer(ms(now)),
            Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)),
        ];
        for (bound, incl, excl) in [(&range.start, ">=", ">"), (&range.end, "<=", "<")] {
            let (op, key) = match bound {
                Bound::Included(k) => (incl, k),
                Bound::Excluded(k) => (excl, k),
                Bound::Unbounded => continue,
            };
            args.push(Value::Blob(key.to_vec()));
            sql.push_str(&format!(" AND key {op} ?{}", args.len()));
        }
        sql.push_str(" ORDER BY key LIMIT ?2");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let data = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            out.push((Bytes::copy_from_slice(key), decode(key, data)?));
        }
        Ok(out)
    }

    fn hash_range(
        &mut self,
        range: &HashRange,
        after: Option<(u64, &[u8])>,
        limit: usize,
    ) -> Result<Vec<RowEntry>, KvError> {
        let lo = hash_to_sortable(*range.start());
        let hi = hash_to_sortable(*range.end());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut out = Vec::new();
        let mut push = |row: &rusqlite::Row<'_>| -> Result<(), KvError> {
            let key = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
            let data = row.get_ref(3)?.as_blob().map_err(rusqlite::Error::from)?;
            out.push(RowEntry {
                hash: sortable_to_hash(row.get(0)?),
                key: Bytes::copy_from_slice(key),
                digest: row.get::<_, i64>(2)? as u64,
                object: decode(key, data)?,
            });
            Ok(())
        };
        match after {
            None => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT khash, key, digest, data FROM objects
                     WHERE khash BETWEEN ?1 AND ?2 ORDER BY khash, key LIMIT ?3",
                )?;
                let mut rows = stmt.query(params![lo, hi, limit])?;
                while let Some(row) = rows.next()? {
                    push(row)?;
                }
            }
            Some((hash, key)) => {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT khash, key, digest, data FROM objects
                     WHERE khash BETWEEN ?1 AND ?2 AND (khash > ?3 OR (khash = ?3 AND key > ?4))
                     ORDER BY khash, key LIMIT ?5",
                )?;
                let mut rows = stmt.query(params![lo, hi, hash_to_sortable(hash), key, limit])?;
                while let Some(row) = rows.next()? {
                    push(row)?;
                }
            }
        }
        Ok(out)
    }

    fn summarize(&mut self, range: &HashRange) -> Result<RangeSummary, KvError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT digest FROM objects WHERE khash BETWEEN ?1 AND ?2")?;
        let mut rows = stmt.query(params![
            hash_to_sortable(*range.start()),
            hash_to_sortable(*range.end())
        ])?;
        let mut summary = RangeSummary::default();
        while let Some(row) = rows.next()? {
            summary.rows += 1;
            summary.digest = summary.digest.wrapping_add(row.get::<_, i64>(0)? as u64);
        }
        Ok(summary)
    }

    fn row_digests(&mut self, range: &HashRange) -> Result<Vec<(u64, u64)>, KvError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT khash, digest FROM objects WHERE khash BETWEEN ?1 AND ?2")?;
        let mut rows = stmt.query(params![
            hash_to_sortable(*range.start()),
            hash_to_sortable(*range.end())
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push((
                sortable_to_hash(row.get::<_, i64>(0)?),
                row.get::<_, i64>(1)? as u64,
            ));
        }
        Ok(out)
    }

    fn stats(&mut self) -> Result<DataStats, KvError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT count(*), coalesce(sum(tombstone), 0), coalesce(sum(siblings), 0),
                    count(expires_at), coalesce(sum(length(data)), 0)
             FROM objects",
        )?;
        let s = stmt
            .query_row([], |r| {
                Ok(DataStats {
                    rows: r.get::<_, i64>(0)? as u64,
                    tombstones: r.get::<_, i64>(1)? as u64,
                    siblings: r.get::<_, i64>(2)? as u64,
                    expiring: r.get::<_, i64>(3)? as u64,
                    data_bytes: r.get::<_, i64>(4)? as u64,
                    disk_bytes: 0,
                })
            })
            .optional()?
            .unwrap_or_default();
        Ok(DataStats {
            disk_bytes: (self.disk_bytes)(),
            ..s
        })
    }

    fn hints(
        &mut self,
        target: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<HintEntry>, KvError> {
        // An empty key sorts first and no stored key is empty, so "after nothing" is "after ''".
        let after = after.unwrap_or_default();
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, digest, data FROM hints WHERE target = ?1 AND key > ?2
             ORDER BY key LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![
            target,
            after,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let key = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
            let data = row.get_ref(2)?.as_blob().map_err(rusqlite::Error::from)?;
            out.push(HintEntry {
                key: Bytes::copy_from_slice(key),
                digest: row.get::<_, i64>(1)? as u64,
                object: decode_hint(target, key, data)?,
            });
        }
        Ok(out)
    }

    fn hint_summary(&mut self) -> Result<Vec<HintBacklog>, KvError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT target, hints, bytes FROM hint_targets WHERE hints > 0 ORDER BY target",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(HintBacklog {
                target: row.get(0)?,
                hints: row.get::<_, i64>(1)? as u64,
                bytes: row.get::<_, i64>(2)? as u64,
            });
        }
        Ok(out)
    }
}
