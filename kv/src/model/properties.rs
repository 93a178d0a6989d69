//! Property tests of the causality model over random histories of three replicas.
//!
//! A history is a sequence of client writes and deletes (each with the context read from some
//! replica, or none) and replica-to-replica syncs. The ground truth is simple: a write survives iff
//! no write or delete *saw* it (its dot is covered by the context that write used). After every
//! replica has merged every other's state, the siblings must be exactly the survivors, and all
//! replicas must agree.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Replicas in the simulated cluster.
const REPLICAS: usize = 3;

/// One step of a history.
#[derive(Clone, Debug)]
enum Step {
    /// A put at `at`, with the context read from `read_from` (or blind).
    Put { at: usize, read_from: Option<usize> },
    /// A delete at `at`, with the context read from `read_from` (or everything `at` holds).
    Delete { at: usize, read_from: Option<usize> },
    /// `to` merges the state of `from`.
    Sync { from: usize, to: usize },
}

fn step() -> impl Strategy<Value = Step> {
    let r = 0..REPLICAS;
    prop_oneof![
        4 => (r.clone(), proptest::option::of(0..REPLICAS)).prop_map(|(at, read_from)| Step::Put { at, read_from }),
        1 => (r.clone(), proptest::option::of(0..REPLICAS)).prop_map(|(at, read_from)| Step::Delete { at, read_from }),
        3 => (r.clone(), r).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// The replicas' states after `steps`, all written dots, and the dots some writer saw.
fn run(steps: &[Step]) -> (Vec<Object>, BTreeSet<Dot>, Vec<VersionVector>) {
    let mut objects = vec![Object::new(); REPLICAS];
    let mut issuers: Vec<DotIssuer> = (0..REPLICAS)
        .map(|i| DotIssuer::new(ActorId(i as u64 + 1), 0))
        .collect();
    let mut written = BTreeSet::new();
    let mut contexts = Vec::new();
    for (n, s) in steps.iter().enumerate() {
        let now = Timestamp(n as u64);
        match *s {
            Step::Put { at, read_from } => {
                let context = read_from.map(|j| objects[j].context().clone());
                contexts.push(context.clone().unwrap_or_default());
                let write = LocalWrite::Put {
                    value: Bytes::from(format!("v{n}")),
                    context,
                    expires_at: None,
                    mode: WriteMode::Causal,
                };
                let limits = SiblingLimits {
                    warn: 1000,
                    max: 1000,
                };
                let r =
                    resolve_local_write(Some(&objects[at]), write, now, &mut issuers[at], limits);
                let r = r.unwrap_or_else(|e| panic!("put rejected: {e}"));
                written.extend(r.dot);
                objects[at] = r.object;
            }
            Step::Delete { at, read_from } => {
                let context = read_from.map(|j| objects[j].context().clone());
                contexts.push(
                    context
                        .clone()
                        .unwrap_or_else(|| objects[at].context().clone()),
                );
                let write = LocalWrite::Delete { context };
                let r = resolve_local_write(
                    Some(&objects[at]),
                    write,
                    now,
                    &mut issuers[at],
                    SiblingLimits::default(),
                );
                objects[at] = r.unwrap_or_else(|e| panic!("delete rejected: {e}")).object;
            }
            Step::Sync { from, to } => {
                let incoming = objects[from].clone();
                objects[to] = resolve_merge(Some(&objects[to]), &incoming, &mut issuers[to]);
            }
        }
    }
    (objects, written, contexts)
}

fn dots(o: &Object) -> BTreeSet<Dot> {
    o.siblings().iter().map(|s| s.dot).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn concurrent_writes_kept_and_seen_writes_removed(steps in proptest::collection::vec(step(), 0..40)) {
        let (objects, written, contexts) = run(&steps);
        let merged = objects.iter().fold(Object::new(), |acc, o| acc.merge(o));
        let survivors: BTreeSet<Dot> = written
            .iter()
            .copied()
            .filter(|d| !contexts.iter().any(|c| c.covers(*d)))
            .collect();
        prop_assert_eq!(dots(&merged), survivors);
        // Every replica that merges everyone converges on the same state.
        for o in &objects {
            let full = objects.iter().fold(o.clone(), |acc, other| acc.merge(other));
            prop_assert_eq!(&full, &merged);
        }
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(steps in proptest::collection::vec(step(), 0..40)) {
        let (o, _, _) = run(&steps);
        let (a, b, c) = (&o[0], &o[1], &o[2]);
        prop_assert_eq!(a.merge(b), b.merge(a));
        prop_assert_eq!(a.merge(b).merge(c), a.merge(&b.merge(c)));
        prop_assert_eq!(a.merge(a), a.clone());
        // Merging never forgets: the result has seen everything either side had.
        let m = a.merge(b);
        prop_assert!(m.context().descends(a.context()) && m.context().descends(b.context()));
    }

    #[test]
    fn a_write_with_the_full_context_leaves_one_sibling(steps in proptest::collection::vec(step(), 0..30), at in 0..REPLICAS) {
        let (objects, _, _) = run(&steps);
        let mut issuer = DotIssuer::new(ActorId(at as u64 + 1), u64::from(u32::MAX));
        let write = LocalWrite::Put {
            value: Bytes::from_static(b"final"),
            context: Some(objects[at].context().clone()),
            expires_at: None,
            mode: WriteMode::Causal,
        };
        let r = resolve_local_write(Some(&objects[at]), write, Timestamp(0), &mut issuer, SiblingLimits::default());
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        prop_assert_eq!(r.object.siblings().len(), 1);
    }
}
