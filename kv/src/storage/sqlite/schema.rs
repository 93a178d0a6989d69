//! Opening a database file: pragmas, schema migrations, and the store's identity.
//!
//! Schema (version 1):
//!
//! - `meta(name, value)`: `actor` (the dot-issuing identity, random at creation), `node_id`,
//!   `dot_counter` (last dot issued; written in the same transaction as the data it labels),
//!   `created_at`.
//! - `objects`: one row per key: the encoded object (siblings with their dots and the causal
//!   context), a tombstone flag, the sibling count, the latest expiry, the last change, a digest,
//!   and the key's hash in order-preserving signed form, indexed so that any partition (a
//!   contiguous hash range) can be listed, hashed and streamed by a range query. The hash index
//!   holds `khash` alone: an update changes no indexed column, so it rewrites only the row's page.
//!
//! Schema version 2 adds `hints(target, key, digest, updated_at, data)`: the cluster's durable
//! hints, one row per (target node, key), holding the encoded state to hand to that node when it
//! is reachable again; and `hint_targets(target, hints, bytes)`, the backlog per target, kept in
//! step by the writer inside the same transaction, so that the handoff task and the admin API
//! read it in O(targets) instead of scanning every hint. Hints are written by the same writer in
//! the same group commits as the data, so a hint is as durable as any acknowledged write.
//!
//! Each version is a step in [`MIGRATIONS`], keyed by `PRAGMA user_version`; opening an older
//! database runs the missing steps in one transaction.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::config::SqliteConfig;
use crate::error::KvError;
use crate::model::ActorId;

/// Schema steps; entry `i` upgrades `user_version` `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value ANY NOT NULL
);
CREATE TABLE objects (
    key        BLOB NOT NULL UNIQUE,
    khash      INTEGER NOT NULL,  -- key_hash(key) XOR 2^63: signed order = hash order
    tombstone  INTEGER NOT NULL,  -- 1 when no sibling is left (a delete awaiting reaping)
    siblings   INTEGER NOT NULL,
    expires_at INTEGER,           -- ms; set only when every sibling expires (latest expiry)
    updated_at INTEGER NOT NULL,  -- ms of the last change
    digest     INTEGER NOT NULL,  -- xxh3 of key and data, for anti-entropy
    data       BLOB NOT NULL      -- the canonical object encoding
);
CREATE INDEX objects_by_hash ON objects(khash);
CREATE INDEX objects_by_expiry ON objects(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX objects_tombstones ON objects(updated_at) WHERE tombstone = 1;
",
    "
CREATE TABLE hints (
    target     TEXT NOT NULL,     -- the node the hint is for
    key        BLOB NOT NULL,
    digest     INTEGER NOT NULL,  -- xxh3 of key and data: handoff drops a hint only if unchanged
    updated_at INTEGER NOT NULL,  -- ms of the last change
    data       BLOB NOT NULL,     -- the canonical object encoding
    PRIMARY KEY (target, key)
);
CREATE TABLE hint_targets (
    target TEXT PRIMARY KEY NOT NULL,
    hints  INTEGER NOT NULL,      -- rows in `hints` for this target
    bytes  INTEGER NOT NULL       -- sum of their length(data)
);
",
];

/// The database file inside the data directory.
pub(crate) fn database_path(dir: &Path) -> std::path::PathBuf {
    dir.join("kv.sqlite3")
}

/// The database's write-ahead log, next to it.
pub(crate) fn wal_path(dir: &Path) -> std::path::PathBuf {
    dir.join("kv.sqlite3-wal")
}

/// Opens a connection with the pragmas every connection needs.
pub(crate) fn open_connection(config: &SqliteConfig, writer: bool) -> Result<Connection, KvError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(database_path(&config.data_dir), flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in both modes: SQLite then syncs only around checkpoints. For FULL durability the
    // writer syncs the WAL itself after every group commit, before acknowledging it (see
    // `writer::WalSync`): the same guarantee as `synchronous=FULL`, with `fdatasync`, which the
    // bundled SQLite build does not use (it calls `fsync`, which also journals the mtime).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let cache_kib = if writer {
        config.writer_cache_kib
    } else {
        config.reader_cache_kib
    };
    conn.pragma_update(
        None,
        "cache_size",
        -i64::try_from(cache_kib).unwrap_or(i64::MAX),
    )?;
    conn.pragma_update(
        None,
        "mmap_size",
        i64::try_from(config.mmap_bytes).unwrap_or(i64::MAX),
    )?;
    if writer {
        // Checkpoints run on their own thread so that no commit waits for one.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Keep the WAL file's size when it restarts: commits then overwrite allocated blocks,
        // which this machine syncs about twice as fast as appends (0.25 ms against 0.5 ms p50).
        conn.pragma_update(None, "journal_size_limit", -1)?;
    } else {
        conn.pragma_update(None, "query_only", true)?;
    }
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// What the writer needs to know about the store it opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The dot-issuing actor.
    pub(crate) actor: ActorId,
    /// The last dot counter issued.
    pub(crate) dot_counter: u64,
}

/// Brings the schema up to date and loads (or creates) the store's identity.
pub(crate) fn migrate_and_identify(
    conn: &mut Connection,
    node_id: &str,
    now_ms: i64,
) -> Result<Identity, KvError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(KvError::Identity(format!(
            "the database has schema version {version}, newer than this build understands ({known}); run a newer ringkit"
        )));
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", known)?;

    let meta = |name: &str| -> Result<Option<rusqlite::types::Value>, KvError> {
        Ok(tx
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?)
    };
    use rusqlite::types::Value;
    let identity = match (meta("actor")?, meta("node_id")?, meta("dot_counter")?) {
        (None, _, _) => {
            let actor = ActorId(rand::random::<u64>() | 1);
            tx.execute(
                "INSERT INTO meta(name, value) VALUES ('actor', ?1)",
                [actor.0 as i64],
            )?;
            tx.execute(
                "INSERT INTO meta(name, value) VALUES ('node_id', ?1)",
                [node_id],
            )?;
            tx.execute(
                "INSERT INTO meta(name, value) VALUES ('dot_counter', 0)",
                [],
            )?;
            tx.execute(
                "INSERT INTO meta(name, value) VALUES ('created_at', ?1)",
                [now_ms],
            )?;
            Identity {
                actor,
                dot_counter: 0,
            }
        }
        (Some(Value::Integer(actor)), Some(Value::Text(stored)), Some(Value::Integer(counter))) => {
            if stored != node_id {
                return Err(KvError::Identity(format!(
                    "the data directory belongs to node {stored:?}, not {node_id:?}: start with --node-id {stored} or use another data directory"
                )));
            }
            Identity {
                actor: ActorId(actor as u64),
                dot_counter: counter as u64,
            }
        }
        other => {
            return Err(KvError::Identity(format!(
                "the meta table is damaged (actor, node_id, dot_counter = {other:?})"
            )));
        }
    };
    tx.commit()?;
    Ok(identity)
}

/// Persists the last dot counter issued (inside the writer's transaction).
pub(crate) fn save_dot_counter(conn: &Connection, counter: u64) -> Result<(), KvError> {
    let mut stmt = conn.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'dot_counter'")?;
    stmt.execute(params![counter as i64])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let conn = open_connection(&SqliteConfig::new(dir.path(), "n1"), true)
            .unwrap_or_else(|e| panic!("open: {e}"));
        (dir, conn)
    }

    fn user_version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn has_table(conn: &Connection, name: &str) -> bool {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or_else(|e| panic!("{e}"))
            == 1
    }

    #[test]
    fn a_version_1_database_gains_the_hints_table_and_keeps_its_data() {
        let (_dir, mut conn) = fresh();
        let identity = migrate_and_identify(&mut conn, "n1", 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(user_version(&conn), 2);
        // Put the file back to what kv part 1 wrote: schema 1, with a row.
        conn.execute_batch(
            "DROP TABLE hints; DROP TABLE hint_targets; PRAGMA user_version = 1;
             INSERT INTO objects (key, khash, tombstone, siblings, updated_at, digest, data)
             VALUES (x'6b', 0, 0, 0, 1, 0, x'00');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let again = migrate_and_identify(&mut conn, "n1", 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, identity);
        assert_eq!(user_version(&conn), 2);
        assert!(has_table(&conn, "hints"));
        assert!(has_table(&conn, "hint_targets"));
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM objects", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let (_dir, mut conn) = fresh();
        migrate_and_identify(&mut conn, "n1", 1).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch("PRAGMA user_version = 3")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = migrate_and_identify(&mut conn, "n1", 2).err();
        assert!(
            matches!(&err, Some(KvError::Identity(m)) if m.contains("schema version 3")),
            "got {err:?}"
        );
    }
}
