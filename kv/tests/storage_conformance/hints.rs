//! Durable hints, held to the same contract by both engines: stored apart from the data, merged
//! per (target, key) so concurrent writes stay siblings, listed in key order, and dropped only
//! when unchanged since they were read.

use ringkit_kv::model::encode_object;
use ringkit_kv::storage::{HintBacklog, HintEntry};

use super::*;

/// A one-sibling object written by a store of its own (actor `actor`).
pub(super) fn remote_object(actor: u64, value: &str) -> Object {
    let other = MemStorage::new(ActorId(actor));
    written(&write(&other, vec![put("k", value, None)])[0]).clone()
}

pub(super) fn store_hint(target: &str, key: &str, object: Object) -> WriteOp {
    WriteOp::StoreHint {
        target: target.to_owned(),
        key: Bytes::from(key.to_owned()),
        object,
    }
}

/// Stores one hint and returns (digest, changed).
pub(super) fn hinted(s: &impl Storage, op: WriteOp) -> (u64, bool) {
    match &write(s, vec![op])[0] {
        Ok(Applied::Hinted { digest, changed }) => (*digest, *changed),
        other => panic!("expected a stored hint, got {other:?}"),
    }
}

/// Drops one hint and returns the rows removed.
fn drop_hint(s: &impl Storage, target: &str, key: &str, digest: u64) -> usize {
    let op = WriteOp::DropHint {
        target: target.to_owned(),
        key: Bytes::from(key.to_owned()),
        digest,
    };
    match &write(s, vec![op])[0] {
        Ok(Applied::Removed { rows }) => *rows,
        other => panic!("expected a removal, got {other:?}"),
    }
}

pub(super) fn hints_of(
    s: &impl Storage,
    target: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<HintEntry> {
    let target = target.to_owned();
    let after = after.map(|a| a.as_bytes().to_vec());
    s.read_blocking(move |v| v.hints(&target, after.as_deref(), limit))
        .unwrap_or_else(|e| panic!("reading hints failed: {e}"))
}

pub(super) fn summary(s: &impl Storage) -> Vec<HintBacklog> {
    s.read_blocking(|v| v.hint_summary())
        .unwrap_or_else(|e| panic!("reading the hint summary failed: {e}"))
}

fn keys(hints: &[HintEntry]) -> Vec<String> {
    hints
        .iter()
        .map(|h| String::from_utf8_lossy(&h.key).into_owned())
        .collect()
}

pub(super) fn hints_are_listed_per_target_in_key_order(s: &impl Storage) {
    let obj = remote_object(7, "v");
    write(
        s,
        vec![
            store_hint("node-b", "k2", obj.clone()),
            store_hint("node-b", "k1", obj.clone()),
            store_hint("node-b", "k3", obj.clone()),
            store_hint("node-c", "k1", obj.clone()),
        ],
    );
    assert_eq!(
        keys(&hints_of(s, "node-b", None, 10)),
        vec!["k1", "k2", "k3"]
    );
    assert_eq!(keys(&hints_of(s, "node-b", None, 2)), vec!["k1", "k2"]);
    assert_eq!(keys(&hints_of(s, "node-b", Some("k2"), 10)), vec!["k3"]);
    assert_eq!(keys(&hints_of(s, "node-c", None, 10)), vec!["k1"]);
    assert!(hints_of(s, "node-x", None, 10).is_empty());
    assert!(hints_of(s, "node-b", Some("k3"), 10).is_empty());
    let listed = &hints_of(s, "node-b", None, 1)[0];
    assert_eq!(listed.object, obj);

    let backlog = summary(s);
    assert_eq!(
        backlog
            .iter()
            .map(|b| (b.target.as_str(), b.hints))
            .collect::<Vec<_>>(),
        vec![("node-b", 3), ("node-c", 1)]
    );
    let one = encode_object(&obj).len() as u64;
    assert_eq!(backlog[0].bytes, 3 * one);
    assert_eq!(backlog[1].bytes, one);
}

pub(super) fn hints_are_not_data(s: &impl Storage) {
    write(s, vec![store_hint("node-b", "k", remote_object(7, "v"))]);
    assert_eq!(get(s, "k"), None, "a hint is not this node's data");
    let stats = s
        .read_blocking(|v| v.stats())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.rows, 0);
    let rows = s
        .read_blocking(|v| v.hash_range(&(0..=u64::MAX), None, 10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(rows.is_empty(), "anti-entropy must not see hints");
    // And the data does not disturb the hints.
    write(s, vec![put("k", "local", None)]);
    assert_eq!(hints_of(s, "node-b", None, 10).len(), 1);
}

pub(super) fn hints_merge_and_keep_siblings(s: &impl Storage) {
    let (a, b) = (remote_object(7, "from-7"), remote_object(8, "from-8"));
    let (first, changed) = hinted(s, store_hint("node-b", "k", a.clone()));
    assert!(changed);
    let (second, changed) = hinted(s, store_hint("node-b", "k", b.clone()));
    assert!(changed);
    assert_ne!(first, second);
    let held = hints_of(s, "node-b", None, 10);
    assert_eq!(held.len(), 1, "one hint per (target, key)");
    let mut got = values(&held[0].object);
    got.sort();
    assert_eq!(got, vec!["from-7", "from-8"]);
    assert_eq!(held[0].object, a.merge(&b));
    assert_eq!(
        held[0].digest, second,
        "the reported digest is the listed one"
    );
    let merged_len = encode_object(&held[0].object).len() as u64;
    assert_eq!(
        summary(s),
        vec![HintBacklog {
            target: "node-b".to_owned(),
            hints: 1,
            bytes: merged_len
        }],
        "the backlog follows a hint that grew"
    );

    let (again, changed) = hinted(s, store_hint("node-b", "k", a));
    assert!(!changed, "a hint already covered is not rewritten");
    assert_eq!(again, second);

    // A newer write that saw the old one replaces it in the hint, as a merge would.
    let other = MemStorage::new(ActorId(7));
    let v1 = written(&write(&other, vec![put("k", "old", None)])[0]).clone();
    let v2 = written(&write(&other, vec![put("k", "new", Some(v1.context().clone()))])[0]).clone();
    hinted(s, store_hint("node-c", "k", v1));
    hinted(s, store_hint("node-c", "k", v2.clone()));
    assert_eq!(hints_of(s, "node-c", None, 10)[0].object, v2);
}

pub(super) fn drop_hint_keeps_a_hint_changed_since_it_was_read(s: &impl Storage) {
    let (read_digest, _) = hinted(s, store_hint("node-b", "k", remote_object(7, "first")));
    hinted(s, store_hint("node-b", "other", remote_object(7, "x")));
    // Delivery is under way with what was read; a newer write arrives for the same key.
    let (newer, _) = hinted(s, store_hint("node-b", "k", remote_object(8, "during")));
    assert_eq!(
        drop_hint(s, "node-b", "k", read_digest),
        0,
        "a stale digest keeps the hint"
    );
    let held = hints_of(s, "node-b", None, 10);
    assert_eq!(keys(&held), vec!["k", "other"]);
    let mut got = values(&held[0].object);
    got.sort();
    assert_eq!(got, vec!["during", "first"]);

    assert_eq!(
        drop_hint(s, "node-c", "k", newer),
        0,
        "another target's hint"
    );
    assert_eq!(drop_hint(s, "node-b", "missing", newer), 0);
    assert_eq!(summary(s)[0].hints, 2, "a refused drop leaves the backlog");
    assert_eq!(drop_hint(s, "node-b", "k", newer), 1);
    assert_eq!(keys(&hints_of(s, "node-b", None, 10)), vec!["other"]);
    let other_len = encode_object(&hints_of(s, "node-b", None, 10)[0].object).len() as u64;
    assert_eq!((summary(s)[0].hints, summary(s)[0].bytes), (1, other_len));
    let other = hints_of(s, "node-b", None, 10)[0].digest;
    assert_eq!(drop_hint(s, "node-b", "other", other), 1);
    assert!(
        summary(s).is_empty(),
        "a target without hints leaves the summary"
    );
}

/// Same hint history, same hints and digests, in both engines.
pub(super) fn engines_agree_on_hints(disk: &impl Storage, mem: &impl Storage) {
    for s in [disk as &dyn Storage, mem as &dyn Storage] {
        let run = |ops: Vec<WriteOp>| {
            let (tx, rx) = std::sync::mpsc::channel();
            let req = WriteRequest {
                now: Timestamp(5),
                siblings: LIMITS,
                ops,
            };
            s.submit_write(req, Box::new(move |r| drop(tx.send(r))));
            rx.recv()
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        run((0..10)
            .map(|i| store_hint("node-b", &format!("k{i}"), remote_object(7, "v")))
            .collect());
        run(vec![store_hint("node-b", "k3", remote_object(8, "w"))]);
    }
    assert_eq!(
        hints_of(disk, "node-b", None, 100),
        hints_of(mem, "node-b", None, 100)
    );
    assert_eq!(summary(disk), summary(mem));
}
