//! The claimant's rules: one change at a time, transfers that cover every moved slot, departing
//! members kept exactly as long as they stream.

use std::collections::BTreeSet;

use ringkit_hashring::{NodeId, RingConfig};

use super::claim::{Applied, RingChange, TransferDone, apply, claimant, decider};
use crate::cluster::topology::{ClusterMap, Member};
use crate::error::KvError;

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

fn member(name: &str) -> Member {
    Member::new(name, format!("{name}:50071"))
}

fn cluster(names: &[&str]) -> ClusterMap {
    // Room for growth: the partition count is fixed for a ring's life.
    ClusterMap::bootstrap(
        RingConfig::for_cluster_size(8),
        names.iter().map(|n| member(n)).collect(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn live(names: &[&str]) -> BTreeSet<NodeId> {
    names.iter().map(|n| id(n)).collect()
}

fn changed(r: Result<Applied, KvError>) -> ClusterMap {
    match r {
        Ok(Applied::Changed(m)) => std::sync::Arc::unwrap_or_clone(m),
        other => panic!("expected a new map, got {other:?}"),
    }
}

/// Completes every pending transfer one by one, as the sources would report them.
fn complete_all(mut map: ClusterMap, up: &BTreeSet<NodeId>) -> ClusterMap {
    while let Some((p, t)) = map.pending().iter().next().map(|(p, l)| (*p, l[0].clone())) {
        let epoch = map.epoch();
        map = changed(apply(
            &map,
            &RingChange::Complete(vec![TransferDone::of(p, &t)]),
            up,
        ));
        assert_eq!(map.epoch(), epoch + 1, "every completion is a new version");
    }
    map
}

#[test]
fn the_claimant_is_the_smallest_member() {
    let map = cluster(&["c", "a", "b"]);
    assert_eq!(claimant(&map), &id("a"));
    assert_eq!(
        decider(&map, &RingChange::Leave(id("b")), &live(&["a", "b", "c"])),
        id("a")
    );
    // Only a dead claimant's own removal goes to the next live member.
    assert_eq!(
        decider(&map, &RingChange::Remove(id("a")), &live(&["b", "c"])),
        id("b")
    );
    assert_eq!(
        decider(&map, &RingChange::Remove(id("a")), &live(&["a", "b", "c"])),
        id("a")
    );
}

#[test]
fn a_join_streams_only_to_the_new_node_then_completes() {
    let map = cluster(&["a", "b", "c"]);
    let up = live(&["a", "b", "c", "d"]);
    let joined = changed(apply(&map, &RingChange::Join(member("d")), &up));
    assert_eq!(joined.epoch(), map.epoch() + 1);
    assert!(joined.ring().node(&id("d")).is_some());
    let transfers: Vec<_> = joined.pending().values().flatten().collect();
    assert!(!transfers.is_empty());
    assert!(
        transfers
            .iter()
            .all(|t| t.to == id("d") && t.from != id("d"))
    );
    // Every slot d took is covered by a transfer.
    for (p, _) in joined.ring().slots_of(&id("d")) {
        assert!(
            joined
                .pending()
                .get(&p)
                .is_some_and(|l| l.iter().any(|t| t.to == id("d"))),
            "{p}"
        );
    }
    // A retried join changes nothing; another change waits for the transfers.
    assert_eq!(
        apply(&joined, &RingChange::Join(member("d")), &up).ok(),
        Some(Applied::Unchanged)
    );
    let busy = apply(&joined, &RingChange::Join(member("e")), &up);
    assert!(
        matches!(busy, Err(KvError::RingChange(ref m)) if m.contains("in progress")),
        "{busy:?}"
    );
    let done = complete_all(joined.clone(), &up);
    assert!(done.pending().is_empty());
    assert!(
        joined.ring().diff(done.ring()).is_empty(),
        "completion moves nothing"
    );
    // A late, repeated completion is harmless.
    let t = joined
        .pending()
        .iter()
        .next()
        .map(|(p, l)| (*p, l[0].clone()))
        .unwrap_or_else(|| panic!("transfers"));
    let again = RingChange::Complete(vec![TransferDone::of(t.0, &t.1)]);
    assert_eq!(apply(&done, &again, &up).ok(), Some(Applied::Unchanged));
}

#[test]
fn a_leaving_node_stays_addressable_until_its_transfers_complete() {
    let map = cluster(&["a", "b", "c", "d"]);
    let up = live(&["a", "b", "c", "d"]);
    let leaving = changed(apply(&map, &RingChange::Leave(id("c")), &up));
    assert!(leaving.ring().node(&id("c")).is_none());
    assert_eq!(
        leaving
            .departing()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        vec![id("c")]
    );
    assert!(
        leaving
            .pending()
            .values()
            .flatten()
            .all(|t| t.from == id("c"))
    );
    // Writes to a moving partition reach the leaver too; reads stay with it.
    let (p, t) = leaving
        .pending()
        .iter()
        .next()
        .map(|(p, l)| (*p, l[0].clone()))
        .unwrap_or_else(|| panic!("transfers"));
    let hash = *leaving.ring().partition_range(p).start();
    let set = leaving.replica_set(hash, 3);
    assert!(set.write.contains(&id("c")) && set.write.contains(&t.to));
    assert!(set.read.contains(&id("c")) && !set.read.contains(&t.to));
    let done = complete_all(leaving, &up);
    assert!(done.member(&id("c")).is_none());
    assert_eq!(done.size(), 3);
}

#[test]
fn remove_is_for_dead_nodes_and_copies_from_survivors() {
    let map = cluster(&["a", "b", "c", "d"]);
    let all = live(&["a", "b", "c", "d"]);
    let refused = apply(&map, &RingChange::Remove(id("d")), &all);
    assert!(
        matches!(refused, Err(KvError::RingChange(ref m)) if m.contains("use `leave`")),
        "{refused:?}"
    );
    let up = live(&["a", "b", "c"]);
    let removed = changed(apply(&map, &RingChange::Remove(id("d")), &up));
    assert!(removed.member(&id("d")).is_none());
    let transfers: Vec<_> = removed.pending().values().flatten().collect();
    assert!(!transfers.is_empty());
    assert!(
        transfers
            .iter()
            .all(|t| t.from != id("d") && t.to != id("d") && t.from != t.to)
    );
    // Every surviving old replica streams its copy (the new holder gets the union).
    for (p, list) in removed.pending() {
        let old: Vec<NodeId> = map
            .ring()
            .partition_preference_list(*p, 3)
            .replicas()
            .cloned()
            .collect();
        for to in list.iter().map(|t| &t.to) {
            let mut from: Vec<NodeId> = list
                .iter()
                .filter(|t| &t.to == to)
                .map(|t| t.from.clone())
                .collect();
            from.sort();
            let mut want: Vec<NodeId> = old
                .iter()
                .filter(|n| *n != to && **n != id("d"))
                .cloned()
                .collect();
            want.sort();
            assert_eq!(from, want, "{p} -> {to}");
        }
    }
}

#[test]
fn bad_requests_say_what_is_wrong() {
    let map = cluster(&["a", "b"]);
    let up = live(&["a", "b"]);
    for (change, needle) in [
        (RingChange::Leave(id("zz")), "not a member"),
        (RingChange::Remove(id("zz")), "not a member"),
        (
            RingChange::Join(Member::new("a", "elsewhere:1")),
            "already a member",
        ),
        (RingChange::Join(Member::new("e", "")), "grpc_addr is empty"),
    ] {
        match apply(&map, &change, &up) {
            Err(KvError::InvalidArgument(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("{change:?}: {other:?}"),
        }
    }
    let solo = cluster(&["a"]);
    let last = apply(&solo, &RingChange::Leave(id("a")), &live(&["a"]));
    assert!(matches!(last, Err(KvError::InvalidArgument(ref m)) if m.contains("last member")));
}

#[test]
fn completions_reported_together_make_one_epoch() {
    let map = cluster(&["a", "b", "c"]);
    let up = live(&["a", "b", "c", "d"]);
    let joined = changed(apply(&map, &RingChange::Join(member("d")), &up));
    let all: Vec<TransferDone> = joined
        .pending()
        .iter()
        .flat_map(|(p, l)| l.iter().map(|t| TransferDone::of(*p, t)))
        .collect();
    let done = changed(apply(&joined, &RingChange::Complete(all.clone()), &up));
    assert_eq!(done.epoch(), joined.epoch() + 1);
    assert!(done.pending().is_empty());
    assert_eq!(
        apply(&done, &RingChange::Complete(all), &up).ok(),
        Some(Applied::Unchanged)
    );
}

#[test]
fn a_leaving_claimant_hands_the_role_to_the_next_member() {
    let map = cluster(&["a", "b", "c", "d"]);
    let up = live(&["a", "b", "c", "d"]);
    let leaving = changed(apply(&map, &RingChange::Leave(id("a")), &up));
    // "a" is off the ring at once: its completions already go to the new claimant.
    assert_eq!(claimant(&leaving), &id("b"));
    let done = RingChange::Complete(Vec::new());
    assert_eq!(decider(&leaving, &done, &up), id("b"));
    let after = complete_all(leaving, &up);
    assert_eq!(claimant(&after), &id("b"));
    assert!(after.member(&id("a")).is_none());
}

#[test]
fn a_departing_node_that_dies_mid_hand_off_can_be_removed() {
    let map = cluster(&["a", "b", "c", "d"]);
    let leaving = changed(apply(
        &map,
        &RingChange::Leave(id("d")),
        &live(&["a", "b", "c", "d"]),
    ));
    assert!(leaving.member(&id("d")).is_some() && leaving.ring().node(&id("d")).is_none());
    // d is killed for good before it finished: removing it unblocks the ring.
    let up = live(&["a", "b", "c"]);
    let removed = changed(apply(&leaving, &RingChange::Remove(id("d")), &up));
    assert!(removed.member(&id("d")).is_none());
    let transfers: Vec<_> = removed.pending().values().flatten().collect();
    assert!(
        !transfers.is_empty(),
        "d's unfinished transfers are taken over"
    );
    assert!(
        transfers
            .iter()
            .all(|t| t.from != id("d") && t.to != id("d") && t.from != t.to)
    );
    let done = complete_all(removed, &up);
    assert!(matches!(
        apply(&done, &RingChange::Join(member("e")), &up),
        Ok(Applied::Changed(_))
    ));
}

#[test]
fn a_dead_source_of_a_join_is_replaced_by_the_other_replicas() {
    let map = cluster(&["a", "b", "c", "d"]);
    let all = live(&["a", "b", "c", "d", "e"]);
    let joined = changed(apply(&map, &RingChange::Join(member("e")), &all));
    let from_c = joined
        .pending()
        .iter()
        .find_map(|(p, l)| l.iter().any(|t| t.from == id("c")).then_some(*p));
    let Some(p) = from_c else {
        panic!("c is a source of some transfer to e")
    };
    let up = live(&["a", "b", "d", "e"]);
    let removed = changed(apply(&joined, &RingChange::Remove(id("c")), &up));
    let to_e: Vec<NodeId> = removed
        .pending()
        .get(&p)
        .map(|l| {
            l.iter()
                .filter(|t| t.to == id("e"))
                .map(|t| t.from.clone())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !to_e.is_empty(),
        "e still receives {p}, now from the other replicas"
    );
    assert!(!to_e.contains(&id("c")));
}

#[test]
fn a_stale_completion_does_not_complete_a_newer_move_of_the_same_slot() {
    let map = cluster(&["a", "b", "c"]);
    let up = live(&["a", "b", "c", "d"]);
    let joined = changed(apply(&map, &RingChange::Join(member("d")), &up));
    assert!(
        joined
            .pending()
            .values()
            .flatten()
            .all(|t| t.since == joined.epoch()),
        "a change's transfers carry its epoch"
    );
    // d joins, leaves and joins again: some slots move between the same nodes twice.
    let settled = complete_all(joined.clone(), &up);
    let left = complete_all(
        changed(apply(&settled, &RingChange::Leave(id("d")), &up)),
        &up,
    );
    let rejoined = changed(apply(&left, &RingChange::Join(member("d")), &up));
    let (p, old, new) = rejoined
        .pending()
        .iter()
        .find_map(|(p, list)| {
            let first = joined.pending().get(p)?;
            list.iter().find_map(|new| {
                let old = first
                    .iter()
                    .find(|o| o.from == new.from && o.to == new.to)?;
                Some((*p, old.clone(), new.clone()))
            })
        })
        .unwrap_or_else(|| panic!("the rejoin repeats none of the first join's moves"));
    assert!(new.since > old.since);

    // The first join's report, delayed until now, completes nothing.
    let stale = RingChange::Complete(vec![TransferDone::of(p, &old)]);
    assert_eq!(apply(&rejoined, &stale, &up).ok(), Some(Applied::Unchanged));
    // The current one does.
    let current = RingChange::Complete(vec![TransferDone::of(p, &new)]);
    let done = changed(apply(&rejoined, &current, &up));
    assert!(done.pending().get(&p).is_none_or(|l| !l.contains(&new)));
}
