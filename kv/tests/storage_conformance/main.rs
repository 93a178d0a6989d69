//! One conformance suite, run against both storage engines (SQLite and the in-memory twin), plus
//! a twin test that the two produce identical digests for identical histories.

use std::ops::Deref;

use bytes::Bytes;
use ringkit_kv::error::KvError;
use ringkit_kv::model::{
    ActorId, KeyRange, LocalWrite, Object, SiblingLimits, Timestamp, VersionVector, WriteMode,
    partition_hash_range,
};
use ringkit_kv::storage::{
    Applied, MemStorage, OpResult, SqliteConfig, SqliteStorage, Storage, StorageExt, WriteOp,
    WriteRequest,
};

/// A store plus whatever keeps it alive (a temp dir).
struct Fixture<S> {
    store: S,
    _dir: Option<tempfile::TempDir>,
}

impl<S> Deref for Fixture<S> {
    type Target = S;
    fn deref(&self) -> &S {
        &self.store
    }
}

fn sqlite() -> Fixture<SqliteStorage> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut config = SqliteConfig::new(dir.path(), "test-node");
    config.readers = 2;
    let store = SqliteStorage::open(config).unwrap_or_else(|e| panic!("open: {e}"));
    Fixture {
        store,
        _dir: Some(dir),
    }
}

fn memory() -> Fixture<MemStorage> {
    Fixture {
        store: MemStorage::new(ActorId(42)),
        _dir: None,
    }
}

const LIMITS: SiblingLimits = SiblingLimits { warn: 3, max: 4 };

fn put(key: &str, value: &str, context: Option<VersionVector>) -> WriteOp {
    put_ttl(key, value, context, None)
}

fn put_ttl(
    key: &str,
    value: &str,
    context: Option<VersionVector>,
    expires_at: Option<u64>,
) -> WriteOp {
    WriteOp::Local {
        key: Bytes::from(key.to_owned()),
        write: LocalWrite::Put {
            value: Bytes::from(value.to_owned()),
            context,
            expires_at: expires_at.map(Timestamp),
            mode: WriteMode::Causal,
        },
    }
}

fn delete(key: &str, context: Option<VersionVector>) -> WriteOp {
    WriteOp::Local {
        key: Bytes::from(key.to_owned()),
        write: LocalWrite::Delete { context },
    }
}

fn write_at(s: &impl Storage, now: u64, ops: Vec<WriteOp>) -> Vec<OpResult> {
    s.write_blocking(WriteRequest {
        now: Timestamp(now),
        siblings: LIMITS,
        ops,
    })
    .unwrap_or_else(|e| panic!("write failed: {e}"))
}

fn write(s: &impl Storage, ops: Vec<WriteOp>) -> Vec<OpResult> {
    write_at(s, 1, ops)
}

fn written(r: &OpResult) -> &Object {
    match r {
        Ok(Applied::Written(resolved)) => &resolved.object,
        other => panic!("expected a write, got {other:?}"),
    }
}

fn get(s: &impl Storage, key: &str) -> Option<Object> {
    let key = key.as_bytes().to_vec();
    s.read_blocking(move |v| v.get(&key))
        .unwrap_or_else(|e| panic!("read failed: {e}"))
}

fn values(o: &Object) -> Vec<String> {
    o.siblings()
        .iter()
        .map(|s| String::from_utf8_lossy(&s.value).into_owned())
        .collect()
}

mod hints;
mod suite;

macro_rules! conformance {
    ($engine:ident) => {
        mod $engine {
            use super::*;

            #[test]
            fn put_then_get() {
                suite::put_then_get(&*$engine());
            }
            #[test]
            fn siblings_and_causal_overwrite() {
                suite::siblings_and_causal_overwrite(&*$engine());
            }
            #[test]
            fn delete_leaves_tombstone() {
                suite::delete_leaves_tombstone(&*$engine());
            }
            #[test]
            fn rejected_op_stores_nothing_and_others_apply() {
                suite::rejected_op_stores_nothing_and_others_apply(&*$engine());
            }
            #[test]
            fn forged_context_is_rejected() {
                suite::forged_context_is_rejected(&*$engine());
            }
            #[test]
            fn merge_is_idempotent() {
                suite::merge_is_idempotent(&*$engine());
            }
            #[test]
            fn scan_orders_and_hides_deleted_and_expired() {
                suite::scan_orders_and_hides_deleted_and_expired(&*$engine());
            }
            #[test]
            fn purge_and_reap_are_bounded_and_selective() {
                suite::purge_and_reap_are_bounded_and_selective(&*$engine());
            }
            #[test]
            fn reap_if_unchanged_needs_the_exact_tombstone() {
                suite::reap_if_unchanged_needs_the_exact_tombstone(&*$engine());
            }
            #[test]
            fn drop_if_unchanged_needs_the_exact_row_value_or_tombstone() {
                suite::drop_if_unchanged_needs_the_exact_row_value_or_tombstone(&*$engine());
            }
            #[test]
            fn hash_ranges_partition_the_keys() {
                suite::hash_ranges_partition_the_keys(&*$engine());
            }
            #[test]
            fn closed_store_refuses_work() {
                suite::closed_store_refuses_work(&*$engine());
            }
            #[test]
            fn hints_are_listed_per_target_in_key_order() {
                hints::hints_are_listed_per_target_in_key_order(&*$engine());
            }
            #[test]
            fn hints_are_not_data() {
                hints::hints_are_not_data(&*$engine());
            }
            #[test]
            fn hints_merge_and_keep_siblings() {
                hints::hints_merge_and_keep_siblings(&*$engine());
            }
            #[test]
            fn drop_hint_keeps_a_hint_changed_since_it_was_read() {
                hints::drop_hint_keeps_a_hint_changed_since_it_was_read(&*$engine());
            }
        }
    };
}

conformance!(sqlite);
conformance!(memory);

/// The twin property: identical histories under the same actor give identical rows, bytes for
/// bytes (equal digests), in both engines.
#[test]
fn engines_agree_on_rows_and_digests() {
    let disk = sqlite();
    let mem = MemStorage::new(disk.actor());
    let history = |s: &dyn Storage| {
        let run = |now: u64, ops: Vec<WriteOp>| {
            let (tx, rx) = std::sync::mpsc::channel();
            let req = WriteRequest {
                now: Timestamp(now),
                siblings: LIMITS,
                ops,
            };
            s.submit_write(req, Box::new(move |r| drop(tx.send(r))));
            rx.recv()
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        run(
            1,
            (0..20).map(|i| put(&format!("k{i}"), "v", None)).collect(),
        );
        run(
            2,
            vec![
                put("k1", "sibling", None),
                put_ttl("k2", "ttl", None, Some(500)),
                delete("k3", None),
            ],
        );
    };
    history(&*disk);
    history(&mem);
    let rows = |s: &dyn Storage| {
        let (tx, rx) = std::sync::mpsc::channel();
        s.submit_read(Box::new(move |v| {
            drop(tx.send(v.hash_range(&(0..=u64::MAX), None, 100)))
        }));
        rx.recv()
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b) = (rows(&*disk), rows(&mem));
    assert_eq!(a.len(), 20);
    assert_eq!(a, b);
}

/// A storage error inside a multi-operation request rolls back that request alone (savepoint);
/// requests committed in the same group are unaffected.
#[test]
fn sqlite_failing_request_is_rolled_back_alone() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SqliteStorage::open(SqliteConfig::new(dir.path(), "test-node"))
        .unwrap_or_else(|e| panic!("open: {e}"));
    // Make one key impossible to store, from outside, as a failing disk or constraint would.
    let side =
        rusqlite::Connection::open(dir.path().join("kv.sqlite3")).unwrap_or_else(|e| panic!("{e}"));
    side.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON objects WHEN NEW.key = CAST('poison' AS BLOB)
         BEGIN SELECT RAISE(ABORT, 'poisoned key'); END;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(side);

    let submit = |ops: Vec<WriteOp>| {
        let (tx, rx) = std::sync::mpsc::channel();
        let req = WriteRequest {
            now: Timestamp(1),
            siblings: LIMITS,
            ops,
        };
        store.submit_write(req, Box::new(move |r| drop(tx.send(r))));
        rx
    };
    // Queued back to back, so they usually share one group commit; the outcome must not depend
    // on it.
    let doomed = submit(vec![put("a", "1", None), put("poison", "2", None)]);
    let fine = submit(vec![put("b", "3", None)]);
    let doomed = doomed.recv().unwrap_or_else(|e| panic!("{e}"));
    let fine = fine.recv().unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(doomed, Err(KvError::Sqlite(_))), "got {doomed:?}");
    assert!(fine.is_ok(), "got {fine:?}");
    assert_eq!(
        get(&store, "a"),
        None,
        "the failed request's first write was rolled back"
    );
    assert!(get(&store, "b").is_some());
    assert!(get(&store, "poison").is_none());
}

/// The twin property for hints: identical hint histories give identical hints and digests.
#[test]
fn engines_agree_on_hints() {
    let disk = sqlite();
    let mem = MemStorage::new(disk.actor());
    hints::engines_agree_on_hints(&*disk, &mem);
}

/// A hint is durable: once its write is acknowledged it survives closing and reopening the
/// store, digest included (so a handoff that read it before the restart can still drop it).
#[test]
fn sqlite_hints_survive_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let open = || {
        SqliteStorage::open(SqliteConfig::new(dir.path(), "test-node"))
            .unwrap_or_else(|e| panic!("open: {e}"))
    };
    let store = open();
    let (a, b) = (hints::remote_object(7, "a"), hints::remote_object(8, "b"));
    let (digest, _) = hints::hinted(&store, hints::store_hint("node-b", "k", a.clone()));
    hints::hinted(&store, hints::store_hint("node-b", "k", b.clone()));
    hints::hinted(&store, hints::store_hint("node-c", "j", b));
    let before = hints::hints_of(&store, "node-b", None, 10);
    assert_ne!(before[0].digest, digest);
    store.close();
    drop(store);

    let store = open();
    assert_eq!(hints::hints_of(&store, "node-b", None, 10), before);
    let backlog = hints::summary(&store);
    assert_eq!(backlog.len(), 2);
    assert_eq!(
        (backlog[0].target.as_str(), backlog[0].hints),
        ("node-b", 1)
    );
    assert_eq!(
        (backlog[1].target.as_str(), backlog[1].hints),
        ("node-c", 1)
    );
}

/// A hint write that fails in storage is rolled back whole: the per-target backlog the engine
/// keeps beside the hints does not drift.
#[test]
fn sqlite_failed_hint_write_leaves_the_backlog_exact() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SqliteStorage::open(SqliteConfig::new(dir.path(), "test-node"))
        .unwrap_or_else(|e| panic!("open: {e}"));
    let side =
        rusqlite::Connection::open(dir.path().join("kv.sqlite3")).unwrap_or_else(|e| panic!("{e}"));
    side.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON hints WHEN NEW.key = CAST('poison' AS BLOB)
         BEGIN SELECT RAISE(ABORT, 'poisoned key'); END;",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(side);
    let object = hints::remote_object(7, "v");
    let failed = store.write_blocking(WriteRequest {
        now: Timestamp(1),
        siblings: LIMITS,
        ops: vec![hints::store_hint("node-b", "poison", object.clone())],
    });
    assert!(matches!(failed, Err(KvError::Sqlite(_))), "got {failed:?}");
    assert!(
        hints::summary(&store).is_empty(),
        "no backlog for a hint never stored"
    );
    hints::hinted(&store, hints::store_hint("node-b", "fine", object));
    let backlog = hints::summary(&store);
    assert_eq!((backlog.len(), backlog[0].hints), (1, 1));
}
