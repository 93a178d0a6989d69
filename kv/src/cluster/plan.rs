//! Which nodes a request involves: a pure function of the [`ClusterMap`], the [`LiveSet`], this
//! node's id and the request's quorum.
//!
//! - A write goes to every live node of the key's write set. In sloppy mode each primary that is
//!   not live is replaced by the next live fallback, which keeps the object as a hint for it and
//!   counts toward W; in strict mode it is simply missing. The write is coordinated by a live
//!   primary (it issues the dot); any other node forwards to the first live primary.
//! - A read asks the live nodes of the key's read set. Fallbacks are never read: a hint lives
//!   apart from the node's data (see docs/adr/0410-kv-cluster-coordination.md).

use ringkit_hashring::NodeId;

use super::topology::{ClusterMap, LiveSet};
use crate::error::KvError;
use crate::node::{Quorum, QuorumMode};

/// One node a write is sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// `Some(primary)` when `node` is a fallback standing in for an unreachable primary: it keeps
    /// the object as a durable hint and hands it back later.
    pub hint_for: Option<NodeId>,
}

/// Where a request is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// This node coordinates.
    Local,
    /// This node is not a live replica of the key: send the request to this one.
    Forward(NodeId),
}

/// The nodes of a write and how many must acknowledge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePlan {
    /// Where the write is coordinated.
    pub route: Route,
    /// Every node that gets the object, this node first when it coordinates.
    pub targets: Vec<Target>,
    /// Live fallbacks not used yet, in order: stand-ins for targets that fail after the send
    /// (sloppy mode only; empty in strict mode).
    pub spare_fallbacks: Vec<NodeId>,
    /// Primaries that got no target (down, and no fallback left or strict mode): the
    /// coordinator keeps a hint for each.
    pub unplaced: Vec<NodeId>,
    /// Acknowledgements needed (W).
    pub w: usize,
    /// Replicas of the key (N), for error messages.
    pub n: usize,
}

/// The nodes a read asks and how many must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadPlan {
    /// Where the read is coordinated.
    pub route: Route,
    /// The live read replicas to ask, this node first when it is one.
    pub targets: Vec<NodeId>,
    /// Answers needed (R).
    pub r: usize,
    /// Replicas of the key (N), for error messages.
    pub n: usize,
}

/// Checks a resolved quorum against the cluster's size.
fn check_size(map: &ClusterMap, q: &Quorum) -> Result<usize, KvError> {
    let n = q.n as usize;
    if n > map.size() {
        return Err(KvError::InvalidArgument(format!(
            "quorum n={n} is larger than the cluster ({} nodes); ask for n <= {}",
            map.size(),
            map.size()
        )));
    }
    Ok(n)
}

/// Puts `local` first when it is among `nodes`, keeping the others' order.
fn local_first<T>(items: &mut [T], is_local: impl Fn(&T) -> bool) {
    if let Some(i) = items.iter().position(is_local) {
        items[..=i].rotate_right(1);
    }
}

/// Plans a write of a key with hash `hash`. `quorum` must already be resolved (defaults
/// filled, `R, W <= N` checked).
///
/// # Errors
/// [`KvError::InvalidArgument`] when N exceeds the cluster size; [`KvError::Unavailable`] when no
/// primary of the key is live (nobody may issue its dot) or too few targets are live for W.
pub fn plan_write(
    map: &ClusterMap,
    live: &LiveSet,
    local: &NodeId,
    hash: u64,
    quorum: &Quorum,
) -> Result<WritePlan, KvError> {
    let n = check_size(map, quorum)?;
    let set = map.replica_set(hash, n);
    let mut spare: Vec<NodeId> = set
        .fallbacks
        .iter()
        .filter(|f| live.contains(*f))
        .cloned()
        .collect();
    spare.reverse(); // pop() takes them in order
    let mut targets = Vec::with_capacity(set.write.len());
    let mut unplaced: Vec<NodeId> = Vec::new();
    for primary in &set.write {
        if live.contains(primary) {
            targets.push(Target {
                node: primary.clone(),
                hint_for: None,
            });
        } else if quorum.mode == QuorumMode::Sloppy
            && let Some(stand_in) = spare.pop()
        {
            targets.push(Target {
                node: stand_in,
                hint_for: Some(primary.clone()),
            });
        } else {
            unplaced.push(primary.clone());
        }
    }
    spare.reverse();
    if quorum.mode == QuorumMode::Strict {
        spare.clear();
    }
    let down: Vec<String> = unplaced.iter().map(ToString::to_string).collect();
    let Some(first_primary) = targets.iter().find(|t| t.hint_for.is_none()) else {
        return Err(KvError::Unavailable(format!(
            "no primary replica of the key is reachable (n={n}, down: {down:?})"
        )));
    };
    let route = if targets
        .iter()
        .any(|t| t.node == *local && t.hint_for.is_none())
    {
        Route::Local
    } else {
        Route::Forward(first_primary.node.clone())
    };
    let w = quorum.w as usize;
    if targets.len() < w {
        return Err(KvError::Unavailable(format!(
            "got 0 of {w} acknowledgements (n={n}, only {} replicas reachable, down: {down:?})",
            targets.len()
        )));
    }
    local_first(&mut targets, |t| t.node == *local && t.hint_for.is_none());
    Ok(WritePlan {
        route,
        targets,
        spare_fallbacks: spare,
        unplaced,
        w,
        n,
    })
}

/// Plans a read of a key with hash `hash`. `quorum` must already be resolved.
///
/// # Errors
/// [`KvError::InvalidArgument`] when N exceeds the cluster size; [`KvError::Unavailable`] when
/// fewer than R read replicas are live.
pub fn plan_read(
    map: &ClusterMap,
    live: &LiveSet,
    local: &NodeId,
    hash: u64,
    quorum: &Quorum,
) -> Result<ReadPlan, KvError> {
    let n = check_size(map, quorum)?;
    let set = map.replica_set(hash, n);
    let mut targets: Vec<NodeId> = set
        .read
        .iter()
        .filter(|id| live.contains(*id))
        .cloned()
        .collect();
    let r = quorum.r as usize;
    if targets.len() < r {
        let down: Vec<String> = set
            .read
            .iter()
            .filter(|id| !live.contains(*id))
            .map(ToString::to_string)
            .collect();
        return Err(KvError::Unavailable(format!(
            "got 0 of {r} answers (n={n}, only {} replicas reachable, down: {down:?})",
            targets.len()
        )));
    }
    let route = if targets.contains(local) {
        Route::Local
    } else {
        match targets.first() {
            Some(first) => Route::Forward(first.clone()),
            None => {
                return Err(KvError::Unavailable(format!(
                    "no replica of the key is reachable (n={n})"
                )));
            }
        }
    };
    local_first(&mut targets, |id| id == local);
    Ok(ReadPlan {
        route,
        targets,
        r,
        n,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use ringkit_hashring::RingConfig;

    use super::*;
    use crate::cluster::topology::Member;

    fn map(n: usize) -> ClusterMap {
        let members = (0..n)
            .map(|i| Member::new(format!("n{i}"), format!("h:{i}")))
            .collect();
        ClusterMap::bootstrap(RingConfig::for_cluster_size(n), members)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn live(m: &ClusterMap, down: &[&NodeId]) -> LiveSet {
        Arc::new(
            m.members()
                .map(|x| x.id.clone())
                .filter(|id| !down.contains(&id))
                .collect::<BTreeSet<_>>(),
        )
    }

    fn q(n: u32, r: u32, w: u32, mode: QuorumMode) -> Quorum {
        Quorum { n, r, w, mode }
    }

    const H: u64 = 0x1234_5678_9abc_def0;

    #[test]
    fn all_live_a_primary_coordinates_and_sends_to_all_n() {
        let m = map(5);
        let set = m.replica_set(H, 3);
        let me = set.write[1].clone();
        let p = plan_write(&m, &live(&m, &[]), &me, H, &q(3, 2, 2, QuorumMode::Sloppy))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.route, Route::Local);
        assert_eq!(p.targets.len(), 3);
        assert_eq!(p.targets[0].node, me, "the coordinator is first");
        assert!(p.targets.iter().all(|t| t.hint_for.is_none()));
        assert_eq!(p.spare_fallbacks, set.fallbacks);
    }

    #[test]
    fn a_non_replica_forwards_to_the_first_live_primary() {
        let m = map(5);
        let set = m.replica_set(H, 3);
        let outsider = set.fallbacks[0].clone();
        let l = live(&m, &[&set.write[0]]);
        let p = plan_write(&m, &l, &outsider, H, &q(3, 2, 2, QuorumMode::Sloppy))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.route, Route::Forward(set.write[1].clone()));
        let r = plan_read(&m, &l, &outsider, H, &q(3, 2, 2, QuorumMode::Sloppy))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.route, Route::Forward(set.read[1].clone()));
        assert_eq!(r.targets.len(), 2);
    }

    #[test]
    fn sloppy_replaces_a_down_primary_by_a_hinted_fallback() {
        let m = map(5);
        let set = m.replica_set(H, 3);
        let down = set.write[2].clone();
        let p = plan_write(
            &m,
            &live(&m, &[&down]),
            &set.write[0],
            H,
            &q(3, 2, 3, QuorumMode::Sloppy),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.targets.len(), 3);
        let hinted: Vec<_> = p.targets.iter().filter(|t| t.hint_for.is_some()).collect();
        assert_eq!(hinted.len(), 1);
        assert_eq!(hinted[0].node, set.fallbacks[0]);
        assert_eq!(hinted[0].hint_for.as_ref(), Some(&down));
        assert_eq!(p.spare_fallbacks, set.fallbacks[1..].to_vec());
    }

    #[test]
    fn strict_counts_only_primaries() {
        let m = map(5);
        let set = m.replica_set(H, 3);
        let l = live(&m, &[&set.write[2]]);
        let strict = q(3, 2, 2, QuorumMode::Strict);
        let p = plan_write(&m, &l, &set.write[0], H, &strict).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.targets.len(), 2);
        assert!(p.spare_fallbacks.is_empty());
        assert_eq!(p.unplaced, vec![set.write[2].clone()]);
        let all = q(3, 2, 3, QuorumMode::Strict);
        let err = plan_write(&m, &l, &set.write[0], H, &all);
        assert!(matches!(err, Err(KvError::Unavailable(_))), "{err:?}");
    }

    #[test]
    fn n_above_the_cluster_size_is_invalid_and_no_live_primary_is_unavailable() {
        let m = map(3);
        let me = NodeId::from("n0");
        let err = plan_write(&m, &live(&m, &[]), &me, H, &q(4, 2, 2, QuorumMode::Sloppy));
        assert!(matches!(err, Err(KvError::InvalidArgument(ref s)) if s.contains("n=4")));
        let m5 = map(5);
        let set = m5.replica_set(H, 2);
        let l = live(&m5, &[&set.write[0], &set.write[1]]);
        let err = plan_write(
            &m5,
            &l,
            &set.fallbacks[0],
            H,
            &q(2, 1, 1, QuorumMode::Sloppy),
        );
        assert!(matches!(err, Err(KvError::Unavailable(_))), "{err:?}");
    }

    #[test]
    fn reads_need_r_live_primaries() {
        let m = map(3);
        let set = m.replica_set(H, 3);
        let l = live(&m, &[&set.read[0], &set.read[1]]);
        let err = plan_read(&m, &l, &set.read[2], H, &q(3, 2, 2, QuorumMode::Sloppy));
        assert!(matches!(err, Err(KvError::Unavailable(ref s)) if s.contains("0 of 2")));
        let one = plan_read(&m, &l, &set.read[2], H, &q(3, 1, 1, QuorumMode::Sloppy))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.targets, vec![set.read[2].clone()]);
        assert_eq!(one.route, Route::Local);
    }
}
