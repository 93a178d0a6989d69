//! The checkers against hand-made histories: each must pass a correct run and fail the bug it
//! exists to catch.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkit_kv::model::{ActorId, Dot, Object, Sibling, Timestamp, VersionVector};

use super::checkers::{
    FinalReads, ReplicaRows, Violation, check_converged, check_deletes, check_readable, check_set,
    check_siblings,
};
use super::history::{Event, Op, Outcome};

fn put(client: &str, key: &str, value: &str, seen: &[&str], acked: bool) -> Event {
    event(
        client,
        Op::Put {
            key: key.into(),
            value: value.into(),
            seen: seen.iter().map(|s| (*s).to_owned()).collect(),
        },
        acked,
    )
}

fn delete(client: &str, key: &str, seen: &[&str], acked: bool) -> Event {
    event(
        client,
        Op::Delete {
            key: key.into(),
            seen: seen.iter().map(|s| (*s).to_owned()).collect(),
        },
        acked,
    )
}

fn event(client: &str, op: Op, acked: bool) -> Event {
    Event {
        client: client.into(),
        node: "n1".into(),
        op,
        outcome: if acked {
            Outcome::Ok
        } else {
            Outcome::Unknown("deadline exceeded".into())
        },
        invoked_ms: 0,
        completed_ms: 1,
    }
}

fn finals(entries: &[(&str, &[&str])]) -> FinalReads {
    entries
        .iter()
        .map(|(k, vs)| {
            (
                (*k).to_owned(),
                Ok(vs.iter().map(|v| (*v).to_owned()).collect()),
            )
        })
        .collect()
}

#[test]
fn set_passes_when_every_acked_add_is_present_and_unknown_adds_may_be_either() {
    let h = [
        put("c1", "set/a", "a", &[], true),
        put("c1", "set/b", "b", &[], false),
        put("c2", "set/c", "c", &[], false),
    ];
    let f = finals(&[("set/a", &["a"]), ("set/b", &["b"]), ("set/c", &[])]);
    assert_eq!(check_set(&h, &f), vec![]);
}

#[test]
fn set_fails_on_a_lost_acked_add_and_on_a_phantom() {
    let h = [
        put("c1", "set/a", "a", &[], true),
        put("c1", "set/b", "b", &[], true),
    ];
    let f = finals(&[("set/a", &[]), ("set/b", &["b", "zzz"])]);
    let v = check_set(&h, &f);
    assert_eq!(
        v,
        vec![
            Violation::Lost {
                checker: "set",
                key: "set/a".into(),
                value: "a".into()
            },
            Violation::Phantom {
                key: "set/b".into(),
                value: "zzz".into()
            },
        ]
    );
}

#[test]
fn siblings_pass_when_both_concurrent_writes_survive_or_a_reader_replaced_both() {
    let both = [
        put("c1", "sib/0", "x", &[], true),
        put("c2", "sib/0", "y", &[], true),
    ];
    assert_eq!(
        check_siblings(&both, &finals(&[("sib/0", &["x", "y"])])),
        vec![]
    );

    let resolved = [
        put("c1", "sib/0", "x", &[], true),
        put("c2", "sib/0", "y", &[], true),
        // An unacknowledged resolver write that took effect explains both absences.
        put("c3", "sib/0", "xy", &["x", "y"], false),
    ];
    assert_eq!(
        check_siblings(&resolved, &finals(&[("sib/0", &["xy"])])),
        vec![]
    );
}

#[test]
fn siblings_fail_when_a_concurrent_write_is_dropped() {
    // Last-write-wins behaviour: y silently overwrote x.
    let h = [
        put("c1", "sib/0", "x", &[], true),
        put("c2", "sib/0", "y", &[], true),
    ];
    let v = check_siblings(&h, &finals(&[("sib/0", &["y"])]));
    assert_eq!(
        v,
        vec![Violation::Lost {
            checker: "siblings",
            key: "sib/0".into(),
            value: "x".into()
        }]
    );
    // A resolver that saw only y does not explain x's absence, and a resolver write that is
    // itself missing explains nothing.
    let h = [
        put("c1", "sib/0", "x", &[], true),
        put("c2", "sib/0", "y", &[], true),
        put("c3", "sib/0", "y2", &["y"], true),
        put("c3", "sib/0", "gone", &["x"], false),
    ];
    let v = check_siblings(&h, &finals(&[("sib/0", &["y2"])]));
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(matches!(&v[0], Violation::Lost { value, .. } if value == "x"));
}

#[test]
fn deletes_pass_when_acked_deletes_stay_deleted() {
    let h = [
        put("c1", "del/a", "a1", &[], true),
        put("c1", "del/a", "a2", &["a1"], true),
        delete("c1", "del/a", &["a1", "a2"], true),
        put("c1", "del/b", "b1", &[], true),
        delete("c1", "del/b", &["b1"], false),
    ];
    // b's delete was not acknowledged: b1 may be there or not.
    let f = finals(&[("del/a", &[]), ("del/b", &["b1"])]);
    assert_eq!(check_deletes(&h, &f), vec![]);
    let f = finals(&[("del/a", &[]), ("del/b", &[])]);
    assert_eq!(check_deletes(&h, &f), vec![]);
}

#[test]
fn deletes_fail_on_resurrection_of_a_deleted_or_overwritten_value() {
    let h = [
        put("c1", "del/a", "a1", &[], true),
        put("c1", "del/a", "a2", &["a1"], true),
        delete("c1", "del/a", &["a2"], true),
    ];
    let v = check_deletes(&h, &finals(&[("del/a", &["a1", "a2"])]));
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|x| matches!(x, Violation::Resurrected { .. })));
}

#[test]
fn unreadable_keys_are_violations() {
    let mut f = finals(&[("set/a", &["a"])]);
    f.insert("set/b".into(), Err("UNAVAILABLE: got 1 of 2".into()));
    assert_eq!(check_readable(&f).len(), 1);
}

fn object(dots: &[(u64, u64)], context: &[(u64, u64)]) -> Object {
    let siblings = dots
        .iter()
        .map(|&(a, c)| Sibling {
            dot: Dot::new(ActorId(a), c),
            value: Bytes::from(format!("v{a}.{c}")),
            written_at: Timestamp(1),
            expires_at: None,
            lww: false,
        })
        .collect();
    let ctx = VersionVector::from_pairs(context.iter().map(|&(a, c)| (ActorId(a), c)));
    Object::from_parts(siblings, ctx)
}

#[test]
fn convergence_compares_owner_replicas_only() {
    let owners = |_: &[u8]| vec!["n1".to_owned(), "n2".to_owned()];
    let mut rows: ReplicaRows = BTreeMap::new();
    let k = Bytes::from_static(b"set/a");
    for n in ["n1", "n2"] {
        rows.entry(n.into())
            .or_default()
            .insert(k.clone(), object(&[(1, 1)], &[]));
    }
    // A non-owner may hold anything (a hinted copy, say).
    rows.entry("n3".into())
        .or_default()
        .insert(k.clone(), object(&[], &[(1, 1)]));
    assert_eq!(check_converged(&rows, owners), vec![]);

    // A tombstone on one owner and the live value on the other: diverged.
    rows.entry("n2".into())
        .or_default()
        .insert(k.clone(), object(&[], &[(1, 1)]));
    assert_eq!(check_converged(&rows, owners).len(), 1);
    // A missing row on one owner: diverged too.
    rows.entry("n2".into()).or_default().remove(&k);
    let v = check_converged(&rows, owners);
    assert_eq!(v.len(), 1);
    assert!(v[0].to_string().contains("n2: None"), "{}", v[0]);
}
