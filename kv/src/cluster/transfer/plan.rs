//! Sans-IO transfer planning: which partitions this node must stream where, and whether the
//! receiver provably holds a streamed row.

use std::collections::BTreeSet;

use ringkit_hashring::{NodeId, PartitionId};

use crate::cluster::topology::ClusterMap;
use crate::model::{HashRange, Object};
use crate::storage::RowEntry;

/// What identifies a [`TransferTask`]: partition, new holder, and the epoch that created it.
pub type TaskKey = (PartitionId, NodeId, u64);

/// One partition to stream from this node to a new holder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransferTask {
    /// The epoch that created the transfer ([`PendingTransfer::since`](crate::cluster::topology::PendingTransfer::since)),
    /// reported back on completion.
    pub since: u64,
    /// The partition.
    pub partition: PartitionId,
    /// Its hash range: what `ReadView::hash_range` pages over.
    pub range: HashRange,
    /// The new holder.
    pub to: NodeId,
}

impl TransferTask {
    /// Identity of the work: completions of other transfers bump the map's epoch without
    /// changing this one, but a new move of the same slot is new work.
    pub fn key(&self) -> TaskKey {
        (self.partition, self.to.clone(), self.since)
    }
}

/// The transfers `me` must send under `map`, in partition order.
pub fn outgoing(map: &ClusterMap, me: &NodeId) -> Vec<TransferTask> {
    let mut out = Vec::new();
    for (p, list) in map.pending() {
        for t in list.iter().filter(|t| &t.from == me) {
            out.push(TransferTask {
                since: t.since,
                partition: *p,
                range: map.ring().partition_range(*p),
                to: t.to.clone(),
            });
        }
    }
    out
}

/// Tasks in `wanted` not yet in `running` (by [`TransferTask::key`]).
pub fn to_start<'a>(
    wanted: &'a [TransferTask],
    running: &'a BTreeSet<TaskKey>,
) -> impl Iterator<Item = &'a TransferTask> + 'a {
    wanted.iter().filter(move |t| !running.contains(&t.key()))
}

/// Rough encoded size of a row on the wire: key, values, per-sibling and context overhead.
fn approx_bytes(row: &RowEntry) -> usize {
    row.key.len()
        + row
            .object
            .siblings()
            .iter()
            .map(|s| s.value.len() + 32)
            .sum::<usize>()
        + row.object.context().len() * 12
}

/// Splits a page of rows into runs of at most `budget` bytes each (a row larger than the budget
/// travels alone), so no merge or read-back exceeds the gRPC message limit.
pub fn split_by_bytes(rows: Vec<RowEntry>, budget: usize) -> Vec<Vec<RowEntry>> {
    let mut out: Vec<Vec<RowEntry>> = Vec::new();
    let mut used = 0;
    for row in rows {
        let size = approx_bytes(&row);
        match out.last_mut() {
            Some(run) if used + size <= budget => run.push(row),
            _ => {
                out.push(vec![row]);
                used = 0;
            }
        }
        used += size;
    }
    out
}

/// Whether the receiver's copy (`remote`) already contains everything of `local`: merging
/// `local` into it changes nothing. Writes that reached only the receiver are fine (it may hold
/// more); a missing key or a missing version is not.
pub fn holds(remote: Option<&Object>, local: &Object) -> bool {
    match remote {
        Some(r) => r.merge(local) == *r,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ringkit_hashring::RingConfig;

    use super::*;
    use crate::cluster::topology::{Member, PendingTransfer};
    use crate::model::{ActorId, Dot, Sibling, Timestamp, VersionVector};

    fn map() -> ClusterMap {
        let members = ["a", "b", "c"]
            .map(|n| Member::new(n, format!("{n}:1")))
            .to_vec();
        let base = ClusterMap::bootstrap(RingConfig::for_cluster_size(3), members)
            .unwrap_or_else(|e| panic!("{e}"));
        let pending = BTreeMap::from([
            (
                PartitionId(1),
                vec![PendingTransfer {
                    from: "a".into(),
                    to: "b".into(),
                    since: 0,
                }],
            ),
            (
                PartitionId(2),
                vec![PendingTransfer {
                    from: "c".into(),
                    to: "a".into(),
                    since: 0,
                }],
            ),
        ]);
        ClusterMap::from_parts(
            base.ring().clone(),
            base.members().cloned().collect(),
            pending,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_node_sends_exactly_its_transfers() {
        let m = map();
        let a = outgoing(&m, &"a".into());
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].partition, a[0].to.as_str()), (PartitionId(1), "b"));
        assert_eq!(a[0].range, m.ring().partition_range(PartitionId(1)));
        assert!(outgoing(&m, &"b".into()).is_empty());
        let running = BTreeSet::from([a[0].key()]);
        assert_eq!(to_start(&a, &running).count(), 0);
    }

    #[test]
    fn pages_are_cut_by_bytes() {
        let row = |key: &str, value: usize| RowEntry {
            hash: 0,
            key: bytes::Bytes::from(key.to_owned()),
            digest: 0,
            object: Object::from_parts(
                vec![Sibling {
                    dot: Dot::new(ActorId(1), 1),
                    value: bytes::Bytes::from(vec![0u8; value]),
                    written_at: Timestamp::default(),
                    expires_at: None,
                    lww: false,
                }],
                VersionVector::from_pairs([(ActorId(1), 1)]),
            ),
        };
        let rows = vec![row("a", 400), row("b", 400), row("c", 5000), row("d", 10)];
        let runs = split_by_bytes(rows, 1000);
        let keys: Vec<Vec<&[u8]>> = runs
            .iter()
            .map(|r| r.iter().map(|e| &e.key[..]).collect())
            .collect();
        assert_eq!(keys, vec![vec![&b"a"[..], b"b"], vec![b"c"], vec![b"d"]]);
        assert!(split_by_bytes(Vec::new(), 1000).is_empty());
    }

    #[test]
    fn holds_means_nothing_would_change() {
        let dot = Dot::new(ActorId(1), 1);
        let sibling = Sibling {
            dot,
            value: bytes::Bytes::from_static(b"v"),
            written_at: Timestamp::default(),
            expires_at: None,
            lww: false,
        };
        let local = Object::from_parts(vec![sibling], VersionVector::from_pairs([(ActorId(1), 1)]));
        assert!(!holds(None, &local));
        assert!(!holds(Some(&Object::new()), &local));
        assert!(holds(Some(&local), &local));
        // The receiver may hold more (writes sent to both during the transfer).
        let newer = Sibling {
            dot: Dot::new(ActorId(2), 1),
            ..local.siblings()[0].clone()
        };
        let mut more = local.clone();
        more.add(newer);
        assert!(holds(Some(&more), &local));
        // A deletion the receiver has seen covers the local version.
        let deleted = Object::from_parts(vec![], VersionVector::from_pairs([(ActorId(1), 1)]));
        assert!(holds(Some(&deleted), &local));
    }
}
