//! Exchanges between two in-memory replicas: trees built from row sets, the descent answered
//! from the other tree, rows compared, repairs merged both ways, and convergence checked.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::*;
use crate::cluster::aae::tree::{MerkleTree, TreeShape};
use crate::model::HashRange;
use crate::model::{
    ActorId, Dot, Object, Sibling, Timestamp, VersionVector, encode_object, key_hash, row_digest,
};

/// One replica: its rows by key.
type Replica = BTreeMap<Bytes, Object>;

fn value(actor: u64, counter: u64, v: &str) -> Object {
    Object::from_parts(
        vec![Sibling {
            dot: Dot::new(ActorId(actor), counter),
            value: Bytes::from(v.to_owned()),
            written_at: Timestamp(counter),
            expires_at: None,
            lww: false,
        }],
        VersionVector::new(),
    )
}

/// A tombstone that removed everything up to `counter` of `actor`.
fn tombstone(actor: u64, counter: u64) -> Object {
    Object::from_parts(
        Vec::new(),
        VersionVector::from_pairs([(ActorId(actor), counter)]),
    )
}

fn rows(replica: &Replica) -> Vec<RowDigest> {
    let mut out: Vec<RowDigest> = replica
        .iter()
        .map(|(k, o)| RowDigest {
            hash: key_hash(k),
            key: k.clone(),
            digest: row_digest(k, &encode_object(o)),
        })
        .collect();
    out.sort_by(|a, b| (a.hash, &a.key).cmp(&(b.hash, &b.key)));
    out
}

/// The tree of a replica, built the way a refresh does: every leaf summarised.
fn tree(replica: &Replica) -> MerkleTree {
    let shape = TreeShape {
        fan_out: 4,
        depth: 3,
    };
    let mut t = MerkleTree::new(0..=u64::MAX, shape).unwrap_or_else(|e| panic!("{e}"));
    let mut leaves: BTreeMap<u64, RangeSummary> = BTreeMap::new();
    for r in rows(replica) {
        let Some(leaf) = t.leaf_of(r.hash) else {
            panic!("hash outside the tree")
        };
        let s = leaves.entry(leaf).or_default();
        s.rows += 1;
        s.digest = s.digest.wrapping_add(r.digest);
    }
    for leaf in t.take_dirty(usize::MAX) {
        t.set_leaf(leaf, leaves.get(&leaf).copied().unwrap_or_default());
    }
    t
}

/// Walks `local` against `remote`; returns the differing leaves and the round trips taken.
fn descend(local: &MerkleTree, remote: &MerkleTree) -> (Vec<u64>, usize) {
    let (mut walk, mut step) = TreeDescent::start(usize::MAX);
    let mut trips = 0;
    loop {
        match step {
            DescentStep::Done { leaves } => return (leaves, trips),
            DescentStep::Fetch { level, nodes } => {
                trips += 1;
                let reply: Vec<RangeSummary> = nodes
                    .iter()
                    .map(|&i| remote.node(level, i).unwrap_or_default())
                    .collect();
                step = walk
                    .on_reply(local, &reply)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}

/// One full exchange: descent, row diff of the differing leaves, repair both ways.
/// Returns the number of keys that differed.
fn exchange(a: &mut Replica, b: &mut Replica) -> usize {
    let (ta, tb) = (tree(a), tree(b));
    let (leaves, _) = descend(&ta, &tb);
    let in_leaves = |rows: Vec<RowDigest>| -> Vec<RowDigest> {
        rows.into_iter()
            .filter(|r| ta.leaf_of(r.hash).is_some_and(|l| leaves.contains(&l)))
            .collect()
    };
    let diff = diff_rows(&in_leaves(rows(a)), &in_leaves(rows(b)));
    for key in diff
        .only_local
        .iter()
        .chain(&diff.only_remote)
        .chain(&diff.different)
    {
        let merged = match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) => x.merge(y),
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (None, None) => panic!("a differing key is on some side"),
        };
        a.insert(key.clone(), merged.clone());
        b.insert(key.clone(), merged);
    }
    diff.len()
}

fn replica(items: &[(&str, Object)]) -> Replica {
    items
        .iter()
        .map(|(k, o)| (Bytes::from(k.to_string()), o.clone()))
        .collect()
}

#[test]
fn identical_replicas_stop_at_the_root() {
    let a = replica(&[("k1", value(1, 1, "x")), ("k2", tombstone(2, 3))]);
    let (leaves, trips) = descend(&tree(&a), &tree(&a.clone()));
    assert!(leaves.is_empty());
    assert_eq!(trips, 1);
}

#[test]
fn one_differing_key_is_found_in_one_leaf_and_merged_both_ways() {
    let mut a: Replica = (0..50)
        .map(|i| (Bytes::from(format!("k{i}")), value(1, i + 1, "v")))
        .collect();
    let mut b = a.clone();
    b.insert(Bytes::from("k7"), value(2, 1, "concurrent"));
    let (leaves, trips) = descend(&tree(&a), &tree(&b));
    assert_eq!(leaves.len(), 1);
    assert_eq!(trips, 4, "root plus one round trip a level");
    assert_eq!(exchange(&mut a, &mut b), 1);
    assert_eq!(a, b);
    let merged = &a[&Bytes::from("k7")];
    assert_eq!(
        merged.siblings().len(),
        2,
        "concurrent versions kept as siblings"
    );
    assert_eq!(exchange(&mut a, &mut b), 0);
}

#[test]
fn keys_missing_on_either_side_are_copied() {
    let mut a = replica(&[("shared", value(1, 1, "s")), ("only-a", value(1, 2, "a"))]);
    let mut b = replica(&[("shared", value(1, 1, "s")), ("only-b", value(2, 1, "b"))]);
    let diff = diff_rows(&rows(&a), &rows(&b));
    assert_eq!(diff.only_local, vec![Bytes::from("only-a")]);
    assert_eq!(diff.only_remote, vec![Bytes::from("only-b")]);
    assert!(diff.different.is_empty());
    assert_eq!(diff.remote_keys(), vec![Bytes::from("only-b")]);
    assert_eq!(exchange(&mut a, &mut b), 2);
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
}

#[test]
fn a_tombstone_beats_the_value_it_deleted_and_spreads() {
    // b deleted what a still holds (dot 1:1); a missed the delete.
    let mut a = replica(&[("gone", value(1, 1, "old"))]);
    let mut b = replica(&[("gone", tombstone(1, 1))]);
    assert_eq!(exchange(&mut a, &mut b), 1);
    assert_eq!(a, b);
    assert!(
        a[&Bytes::from("gone")].is_tombstone(),
        "the delete is not undone"
    );
}

#[test]
fn a_tombstone_keeps_a_write_it_did_not_see() {
    let mut a = replica(&[("k", value(2, 1, "newer"))]);
    let mut b = replica(&[("k", tombstone(1, 1))]);
    assert_eq!(exchange(&mut a, &mut b), 1);
    assert_eq!(a, b);
    let k = &a[&Bytes::from("k")];
    assert_eq!(k.siblings().len(), 1);
    assert_eq!(
        k.context().get(ActorId(1)),
        1,
        "the tombstone's context is kept"
    );
}

#[test]
fn a_tombstone_missing_on_one_side_is_copied_not_ignored() {
    let mut a = replica(&[("k", tombstone(1, 4))]);
    let mut b = Replica::new();
    let (leaves, _) = descend(&tree(&a), &tree(&b));
    assert_eq!(leaves.len(), 1, "a tombstone is a row: the trees differ");
    assert_eq!(exchange(&mut a, &mut b), 1);
    assert_eq!(a, b);
}

#[test]
fn the_descent_is_bounded_and_rejects_malformed_replies() {
    let a: Replica = (0..200)
        .map(|i| (Bytes::from(format!("k{i}")), value(1, i + 1, "v")))
        .collect();
    let ta = tree(&a);
    let tb = tree(&Replica::new());
    let (mut walk, _) = TreeDescent::start(3);
    let mut step = walk.on_reply(&ta, &[tb.root()]);
    while let Ok(DescentStep::Fetch { level, nodes }) = step {
        let reply: Vec<RangeSummary> = nodes
            .iter()
            .map(|&i| tb.node(level, i).unwrap_or_default())
            .collect();
        step = walk.on_reply(&ta, &reply);
    }
    match step {
        Ok(DescentStep::Done { leaves }) => assert_eq!(leaves.len(), 3),
        other => panic!("unexpected {other:?}"),
    }
    let (mut walk, _) = TreeDescent::start(3);
    assert!(walk.on_reply(&ta, &[]).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever the divergence, one exchange finds exactly the keys that differ and leaves the
    /// replicas equal.
    #[test]
    fn one_exchange_finds_every_difference_and_converges(
        base in proptest::collection::btree_map(0u16..500, 1u64..4, 0..120),
        only_a in proptest::collection::btree_set(500u16..600, 0..10),
        only_b in proptest::collection::btree_set(600u16..700, 0..10),
        changed in proptest::collection::btree_set(0u16..500, 0..10),
        deleted in proptest::collection::btree_set(0u16..500, 0..10),
    ) {
        let key = |k: u16| Bytes::from(format!("key{k}"));
        let mut a: Replica = base.iter().map(|(&k, &c)| (key(k), value(1, c, "v"))).collect();
        let mut b = a.clone();
        for k in &only_a {
            a.insert(key(*k), value(1, 10, "a"));
        }
        for k in &only_b {
            b.insert(key(*k), tombstone(2, 5));
        }
        let mut expected = only_a.len() + only_b.len();
        for k in changed.iter().filter(|k| base.contains_key(k)) {
            b.insert(key(*k), value(3, 1, "concurrent"));
            expected += 1;
        }
        for k in deleted.iter().filter(|k| base.contains_key(k) && !changed.contains(k)) {
            a.insert(key(*k), tombstone(1, 9));
            expected += 1;
        }
        proptest::prop_assert_eq!(exchange(&mut a, &mut b), expected);
        proptest::prop_assert_eq!(&a, &b);
        proptest::prop_assert_eq!(exchange(&mut a, &mut b), 0);
    }
}

#[test]
fn touching_ranges_coalesce_into_bounded_runs() {
    let ranges = vec![0..=9, 10..=19, 20..=29, 40..=49, 50..=u64::MAX];
    assert_eq!(coalesce(&ranges, 8), vec![0..=29, 40..=u64::MAX]);
    assert_eq!(coalesce(&ranges, 2), vec![0..=19, 20..=29, 40..=u64::MAX]);
    assert_eq!(coalesce(&[], 4), Vec::<HashRange>::new());
}
