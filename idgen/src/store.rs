//! Where the high-water mark is persisted: SQLite on disk, or memory for tests.
//!
//! The mark is Unix milliseconds, not a tick, so a layout change between runs keeps it meaningful.
//! Calls are blocking; the generator makes them at start, at shutdown and from its renewer thread,
//! never on the hot path or an async executor thread.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
};

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// Durable storage of one high-water mark per worker id.
pub trait MarkStore: Send + 'static {
    /// The mark stored for `worker`, if any.
    ///
    /// # Errors
    /// The store's error.
    fn load(&mut self, worker: u64) -> Result<Option<u64>>;

    /// Stores `mark_ms` for `worker`; returns only once it is durable.
    ///
    /// # Errors
    /// The store's error; the caller then keeps the old reservation.
    fn save(&mut self, worker: u64, mark_ms: u64) -> Result<()>;
}

/// Marks kept in memory; clones share them, so a test can "restart" a generator on the same store.
#[derive(Debug, Clone, Default)]
pub struct MemoryMarkStore {
    /// Worker id to mark.
    marks: Arc<Mutex<HashMap<u64, u64>>>,
}

impl MemoryMarkStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored mark for `worker` (for assertions).
    pub fn get(&self, worker: u64) -> Option<u64> {
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&worker)
            .copied()
    }
}

impl MarkStore for MemoryMarkStore {
    fn load(&mut self, worker: u64) -> Result<Option<u64>> {
        Ok(self.get(worker))
    }

    fn save(&mut self, worker: u64, mark_ms: u64) -> Result<()> {
        self.marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(worker, mark_ms);
        Ok(())
    }
}

/// The mark in a SQLite file (WAL, `synchronous = FULL`: a save is on disk when it returns).
#[derive(Debug)]
pub struct SqliteMarkStore {
    /// The open database.
    conn: Connection,
}

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "idgen.sqlite3";

impl SqliteMarkStore {
    /// Opens (creating if needed) `dir/idgen.sqlite3`, creating `dir` too.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) or [`Error::Store`](crate::Error::Store).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        Self::open(&dir.join(DB_FILE))
    }

    /// Opens (creating if needed) the database at `path`.
    ///
    /// # Errors
    /// [`Error::Store`](crate::Error::Store).
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS high_water_mark (
                 worker     INTEGER PRIMARY KEY,
                 mark_ms    INTEGER NOT NULL,
                 updated_ms INTEGER NOT NULL
             );",
        )?;
        Ok(Self { conn })
    }
}

impl MarkStore for SqliteMarkStore {
    fn load(&mut self, worker: u64) -> Result<Option<u64>> {
        let mark: Option<i64> = self
            .conn
            .query_row(
                "SELECT mark_ms FROM high_water_mark WHERE worker = ?1",
                params![worker as i64],
                |row| row.get(0),
            )
            .optional()?;
        // A negative mark can only come from tampering. Reading it as "no mark" could reissue IDs,
        // so read it as the largest mark: the generator then refuses until an operator fixes it.
        Ok(mark.map(|m| u64::try_from(m).unwrap_or(u64::MAX)))
    }

    fn save(&mut self, worker: u64, mark_ms: u64) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        self.conn.execute(
            "INSERT INTO high_water_mark (worker, mark_ms, updated_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT(worker) DO UPDATE SET mark_ms = excluded.mark_ms, updated_ms = excluded.updated_ms",
            params![worker as i64, i64::try_from(mark_ms).unwrap_or(i64::MAX), now],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteMarkStore::open_dir(dir.path()).unwrap();
        assert_eq!(store.load(3).unwrap(), None);
        store.save(3, 1_700_000_000_000).unwrap();
        store.save(3, 1_700_000_003_000).unwrap();
        store.save(4, 5).unwrap();
        drop(store);
        let mut store = SqliteMarkStore::open_dir(dir.path()).unwrap();
        assert_eq!(store.load(3).unwrap(), Some(1_700_000_003_000));
        assert_eq!(store.load(4).unwrap(), Some(5));
    }
}
