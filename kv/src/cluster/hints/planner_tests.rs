//! Unit tests of [`HandoffPlanner`]: every decision, in microseconds.

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

fn config() -> HandoffConfig {
    HandoffConfig {
        interval: SEC,
        max_concurrent: 2,
        backoff_min: SEC,
        backoff_max: 8 * SEC,
        ..HandoffConfig::default()
    }
}

fn live(ids: &[&str]) -> BTreeSet<NodeId> {
    ids.iter().map(|s| id(s)).collect()
}

/// A planner on node "a" with hints for the given targets, all alive.
fn planner(targets: &[(&str, u64)]) -> HandoffPlanner {
    let mut p = HandoffPlanner::new(config(), id("a"));
    p.observe_backlog(
        targets.iter().map(|(t, n)| (id(t), *n, n * 10)),
        Duration::ZERO,
    );
    let mut all: Vec<&str> = targets.iter().map(|(t, _)| *t).collect();
    all.push("a");
    p.observe_live(&live(&all), Duration::ZERO);
    p
}

/// The targets of the batches due at `now`.
fn due(p: &mut HandoffPlanner, now: Duration) -> Vec<NodeId> {
    p.due(now).into_iter().map(|h| h.target).collect()
}

fn report(sent: usize, dropped: usize, full: bool) -> BatchReport {
    BatchReport {
        sent,
        dropped,
        full,
    }
}

#[test]
fn a_live_target_with_hints_is_due_at_once_and_only_once() {
    let mut p = planner(&[("b", 3)]);
    assert_eq!(due(&mut p, Duration::ZERO), vec![id("b")]);
    assert!(
        due(&mut p, Duration::ZERO).is_empty(),
        "one batch in flight per target"
    );
    assert_eq!(
        p.next_wake(),
        None,
        "nothing else can become due while in flight"
    );
}

#[test]
fn a_dead_target_waits_and_is_due_the_moment_it_comes_back() {
    let mut p = planner(&[("b", 3)]);
    p.observe_live(&live(&["a"]), SEC);
    assert!(due(&mut p, 10 * SEC).is_empty());
    assert_eq!(p.next_wake(), None, "no timer for a dead target");
    assert_eq!(p.pending().get(&id("b")), Some(&(3, 30)), "still pending");
    p.observe_live(&live(&["a", "b"]), 11 * SEC);
    assert_eq!(due(&mut p, 11 * SEC), vec![id("b")]);
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap_and_success_resets() {
    let mut p = planner(&[("b", 3)]);
    let mut now = Duration::ZERO;
    let mut waits = Vec::new();
    for _ in 0..5 {
        assert_eq!(due(&mut p, now), vec![id("b")]);
        p.failed(&id("b"), now);
        let next = p.next_wake().unwrap_or_default();
        waits.push((next - now).as_secs());
        assert!(
            due(&mut p, next - Duration::from_millis(1)).is_empty(),
            "not before the backoff"
        );
        now = next;
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 8]);
    assert_eq!(p.failures(&id("b")), 5);
    assert_eq!(due(&mut p, now), vec![id("b")]);
    p.delivered(&id("b"), report(3, 3, false), now);
    assert_eq!(p.failures(&id("b")), 0);
    assert!(p.pending().is_empty());
}

#[test]
fn a_target_that_comes_back_skips_its_backoff() {
    let mut p = planner(&[("b", 3)]);
    let mut now = Duration::ZERO;
    for _ in 0..4 {
        now = p.next_wake().unwrap_or_default();
        due(&mut p, now);
        p.failed(&id("b"), now);
    }
    assert_eq!(p.next_wake(), Some(now + 8 * SEC));
    now += SEC;
    assert!(due(&mut p, now).is_empty(), "backing off");
    p.observe_live(&live(&["a"]), now);
    p.observe_live(&live(&["a", "b"]), now);
    assert_eq!(due(&mut p, now), vec![id("b")]);
    assert_eq!(p.failures(&id("b")), 0);
}

#[test]
fn full_batches_keep_draining_and_a_partial_one_waits_an_interval() {
    let mut p = planner(&[("b", 600)]);
    assert_eq!(due(&mut p, Duration::ZERO), vec![id("b")]);
    p.delivered(&id("b"), report(256, 256, true), Duration::ZERO);
    assert_eq!(
        due(&mut p, Duration::ZERO),
        vec![id("b")],
        "more are waiting"
    );
    p.delivered(&id("b"), report(256, 256, true), Duration::ZERO);
    assert_eq!(p.pending().get(&id("b")).map(|x| x.0), Some(88));
    due(&mut p, Duration::ZERO);
    // Everything sent, but 8 hints changed during the delivery and were kept.
    p.delivered(&id("b"), report(88, 80, false), Duration::ZERO);
    assert!(due(&mut p, Duration::ZERO).is_empty());
    assert_eq!(p.next_wake(), Some(SEC));
    assert_eq!(due(&mut p, SEC), vec![id("b")]);
}

#[test]
fn a_full_batch_that_dropped_nothing_does_not_spin() {
    let mut p = planner(&[("b", 256)]);
    due(&mut p, Duration::ZERO);
    // Every hint changed while it was being delivered (a hot key range): try again later.
    p.delivered(&id("b"), report(256, 0, true), Duration::ZERO);
    assert!(due(&mut p, Duration::ZERO).is_empty());
    assert_eq!(p.next_wake(), Some(SEC));
}

#[test]
fn concurrency_is_capped_and_the_longest_waiting_go_first() {
    let mut p = HandoffPlanner::new(config(), id("a"));
    p.observe_live(&live(&["a", "b", "c", "d"]), Duration::ZERO);
    p.observe_backlog([(id("d"), 1, 1)], Duration::ZERO);
    p.observe_backlog([(id("b"), 1, 1), (id("c"), 1, 1), (id("d"), 1, 1)], SEC);
    let first = due(&mut p, 2 * SEC);
    assert_eq!(first.len(), 2);
    assert_eq!(first[0], id("d"), "waiting since 0");
    assert_eq!(due(&mut p, 2 * SEC), Vec::<NodeId>::new(), "cap reached");
    assert_eq!(
        p.next_wake(),
        None,
        "a third target is due, but nothing can start before a batch finishes: no wake time \
         (a past one made the handoff task spin, found by the simulation's seed 5)"
    );
    p.delivered(&first[0], report(1, 1, false), 2 * SEC);
    assert_eq!(
        p.next_wake(),
        Some(SEC),
        "a slot freed: the waiting target is due"
    );
    assert_eq!(due(&mut p, 2 * SEC).len(), 1, "a slot freed");
}

#[test]
fn the_backlog_adds_updates_and_forgets_targets() {
    let mut p = planner(&[("b", 3), ("c", 2)]);
    due(&mut p, Duration::ZERO); // b and c in flight
    p.observe_backlog([(id("b"), 5, 50)], SEC);
    assert_eq!(p.pending().get(&id("b")), Some(&(5, 50)));
    assert_eq!(p.pending().get(&id("c")), None, "no hints left for c");
    // c's batch still completes without trouble, and c is then forgotten.
    p.delivered(&id("c"), report(2, 2, false), SEC);
    p.observe_backlog([(id("b"), 5, 50)], 2 * SEC);
    assert_eq!(p.pending().len(), 1);
    p.failed(&id("zzz"), SEC); // unknown targets are ignored
    p.delivered(&id("zzz"), report(1, 1, false), SEC);
}

#[test]
fn the_local_node_is_never_a_target() {
    let mut p = planner(&[]);
    p.observe_backlog([(id("a"), 4, 40), (id("b"), 0, 0)], Duration::ZERO);
    assert!(p.pending().is_empty());
    assert!(due(&mut p, Duration::ZERO).is_empty());
}

#[test]
fn a_removed_target_is_redirected_alive_or_not() {
    let mut p = planner(&[("b", 3), ("c", 1)]);
    p.observe_live(&live(&["a", "c"]), Duration::ZERO); // b is down
    p.observe_members(&live(&["a", "b", "c"]), Duration::ZERO);
    assert_eq!(
        p.due(Duration::ZERO),
        vec![Handoff {
            target: id("c"),
            redirect: false
        }]
    );
    p.delivered(&id("c"), report(1, 1, false), Duration::ZERO);
    assert!(p.due(SEC).is_empty(), "b is down and still a member: wait");
    // b is removed from the ring: its hints go to the keys' current replicas, now.
    p.observe_members(&live(&["a", "c"]), SEC);
    assert_eq!(
        p.due(SEC),
        vec![Handoff {
            target: id("b"),
            redirect: true
        }]
    );
    p.failed(&id("b"), SEC);
    assert_eq!(
        p.next_wake(),
        Some(2 * SEC),
        "redirects back off like any batch"
    );
}

#[test]
fn no_target_counts_as_removed_before_the_ring_is_known() {
    let mut p = planner(&[("b", 3)]);
    p.observe_live(&live(&["a"]), Duration::ZERO);
    assert!(p.due(Duration::ZERO).is_empty());
    assert_eq!(p.next_wake(), None);
}

#[test]
fn a_leaving_node_redirects_every_target() {
    let mut p = planner(&[("b", 3), ("c", 1)]);
    p.observe_live(&live(&["a", "c"]), Duration::ZERO); // b is down
    p.observe_members(&live(&["a", "b", "c"]), Duration::ZERO);
    due(&mut p, Duration::ZERO);
    p.delivered(&id("c"), report(1, 0, false), Duration::ZERO);
    // a leaves the ring: b's hints (b down) and c's (c alive) all go to the keys' replicas.
    p.observe_members(&live(&["b", "c"]), SEC);
    let mut got = p.due(SEC);
    got.sort_by(|x, y| x.target.cmp(&y.target));
    assert_eq!(
        got,
        vec![
            Handoff {
                target: id("b"),
                redirect: true
            },
            Handoff {
                target: id("c"),
                redirect: true
            }
        ]
    );
}
