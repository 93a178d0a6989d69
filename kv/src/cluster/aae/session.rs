//! One exchange, the async shell around [`TreeDescent`] and [`diff_rows`]: refresh the local
//! tree, walk it against the peer's, list the rows of the differing leaves on both sides, and
//! repair every differing key so that both replicas end with the merged object (merged locally
//! with `WriteOp::Merge`, pushed with [`ReplicaPeers::merge`]).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use ringkit_hashring::NodeId;

use super::exchange::{DescentStep, RowDiff, RowDigest, TreeDescent, coalesce, diff_rows};
use super::node::Aae;
use super::remote::{AaePeers, RowsQuery, TreeQuery};
use crate::cluster::peers::ReplicaPeers;
use crate::error::KvError;
use crate::model::{HashRange, Object, encode_object, key_hash, row_digest};
use crate::storage::{Applied, Storage, WriteOp};

/// What one exchange did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExchangeReport {
    /// Leaves whose summaries differed.
    pub differing_leaves: usize,
    /// Keys on which the replicas disagreed (each repaired).
    pub keys_differing: u64,
    /// Keys whose local state changed by merging the peer's.
    pub merged_locally: u64,
    /// Keys pushed to the peer.
    pub pushed: u64,
    /// Rows listed (both sides).
    pub rows_listed: u64,
}

/// Most adjacent leaves listed as one range (bounds the rows one listing holds).
const LEAVES_PER_LISTING: usize = 64;

/// The local objects of keys only this side holds.
type LocalRows = HashMap<Bytes, Object>;

impl<S: Storage> Aae<S> {
    /// Compares partition `partition` with `peer` and repairs what differs.
    ///
    /// # Errors
    /// The partition is not replicated here, the peer failed or refused, or storage failed. A
    /// failed exchange repairs nothing it had not finished; the next one starts over.
    pub async fn exchange(
        &self,
        remote: &dyn AaePeers,
        peers: &dyn ReplicaPeers,
        peer: &NodeId,
        partition: u32,
    ) -> Result<ExchangeReport, KvError> {
        let (count, mine) = self.sync()?;
        if !mine.contains(&partition) {
            return Err(KvError::InvalidArgument(format!(
                "this node does not replicate partition {partition}"
            )));
        }
        self.trees()
            .refresh_paced(self.node().storage(), partition, self.budget())
            .await?;
        let leaves = self.descend(remote, peer, count, partition).await?;
        let mut report = ExchangeReport {
            differing_leaves: leaves.len(),
            ..ExchangeReport::default()
        };
        let mut diff = RowDiff::default();
        let mut local = LocalRows::new();
        let mut remote_digests = HashMap::new();
        let leaf_ranges: Vec<HashRange> = self
            .trees()
            .with_tree(count, partition, |t| {
                leaves.iter().filter_map(|&l| t.leaf_range(l)).collect()
            })
            .unwrap_or_default();
        for range in coalesce(&leaf_ranges, LEAVES_PER_LISTING) {
            if report.rows_listed >= self.config().max_rows_per_exchange {
                break;
            }
            let (ours, theirs) = self.list_range(remote, peer, range).await?;
            report.rows_listed += (ours.len() + theirs.len()) as u64;
            let ours_digests: Vec<RowDigest> = ours.iter().map(|(d, _)| d.clone()).collect();
            let d = diff_rows(&ours_digests, &theirs);
            // Keep only what the repair needs: objects to push, digests of keys to fetch.
            let push: HashSet<&Bytes> = d.only_local.iter().collect();
            local.extend(
                ours.into_iter()
                    .filter(|(row, _)| push.contains(&row.key))
                    .map(|(row, object)| (row.key, object)),
            );
            let fetch: HashSet<&Bytes> = d.only_remote.iter().chain(&d.different).collect();
            remote_digests.extend(
                theirs
                    .into_iter()
                    .filter(|row| fetch.contains(&row.key))
                    .map(|row| (row.key, row.digest)),
            );
            diff.only_local.extend(d.only_local);
            diff.only_remote.extend(d.only_remote);
            diff.different.extend(d.different);
        }
        report.keys_differing = diff.len() as u64;
        self.repair(peers, peer, &diff, &local, &remote_digests, &mut report)
            .await?;
        Ok(report)
    }

    /// Walks the local tree against `peer`'s; returns the differing leaves.
    async fn descend(
        &self,
        remote: &dyn AaePeers,
        peer: &NodeId,
        count: u32,
        partition: u32,
    ) -> Result<Vec<u64>, KvError> {
        let shape = self.config().shape;
        let (mut walk, mut step) = TreeDescent::start(self.config().max_leaves_per_exchange);
        loop {
            match step {
                DescentStep::Done { leaves } => return Ok(leaves),
                DescentStep::Fetch { level, nodes } => {
                    let q = TreeQuery {
                        partition_count: count,
                        partition,
                        shape,
                        level,
                        nodes,
                    };
                    let reply = remote.tree_nodes(peer, q).await?;
                    step = self
                        .trees()
                        .with_tree(count, partition, |t| walk.on_reply(t, &reply))
                        .ok_or_else(|| {
                            KvError::Unavailable(format!(
                                "partition {partition} left this node during the exchange"
                            ))
                        })?
                        .map_err(KvError::Internal)?;
                }
            }
        }
    }

    /// Every row of `range` on both sides: ours with objects, theirs as digests.
    async fn list_range(
        &self,
        remote: &dyn AaePeers,
        peer: &NodeId,
        range: HashRange,
    ) -> Result<(Vec<(RowDigest, Object)>, Vec<RowDigest>), KvError> {
        let page = self.config().page_rows;
        let mut ours = Vec::new();
        let mut after: Option<(u64, Bytes)> = None;
        loop {
            self.budget().ready().await;
            let rows = self.local_rows(range.clone(), after.clone(), page).await?;
            let full = rows.len() == page;
            after = rows.last().map(|r| (r.hash, r.key.clone()));
            ours.extend(rows.into_iter().map(|r| (RowDigest::from(&r), r.object)));
            if !full {
                break;
            }
        }
        let mut theirs = Vec::new();
        let mut after: Option<(u64, Bytes)> = None;
        loop {
            self.budget().ready().await;
            let q = RowsQuery {
                range: range.clone(),
                after: after.clone(),
                limit: page,
                include_objects: false,
            };
            let got = remote.rows(peer, q).await?;
            self.budget().charge(got.rows.len() as u64);
            if let Some(bad) = got.rows.iter().find(|r| {
                !range.contains(&r.digest.hash) || key_hash(&r.digest.key) != r.digest.hash
            }) {
                return Err(KvError::Internal(format!(
                    "peer {peer} listed a row outside {range:?} or with a wrong hash (hash {})",
                    bad.digest.hash
                )));
            }
            let next = got
                .rows
                .last()
                .map(|r| (r.digest.hash, r.digest.key.clone()));
            let progressed = next.is_some() && next != after;
            theirs.extend(got.rows.into_iter().map(|r| r.digest));
            if !got.more || !progressed {
                break;
            }
            after = next;
        }
        Ok((ours, theirs))
    }

    /// Merges the peer's state of the differing keys here and pushes the result there.
    async fn repair(
        &self,
        peers: &dyn ReplicaPeers,
        peer: &NodeId,
        diff: &RowDiff,
        local: &LocalRows,
        remote_digests: &HashMap<Bytes, u64>,
        report: &mut ExchangeReport,
    ) -> Result<(), KvError> {
        let batch = self.config().repair_batch;
        let mut push: Vec<(Bytes, Object)> = diff
            .only_local
            .iter()
            .filter_map(|k| local.get(k).map(|o| (k.clone(), o.clone())))
            .collect();
        for keys in diff.remote_keys().chunks(batch) {
            let objects = peers.read(peer, keys.to_vec()).await?;
            let ops: Vec<WriteOp> = keys
                .iter()
                .zip(objects)
                .filter_map(|(key, o)| {
                    o.map(|object| WriteOp::Merge {
                        key: key.clone(),
                        object,
                    })
                })
                .collect();
            let merged_keys: Vec<Bytes> = ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Merge { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect();
            let node = self.node();
            let results = node.submit(node.now(), ops).await?;
            for (key, result) in merged_keys.into_iter().zip(results) {
                let Applied::Merged { object, changed } = result? else {
                    continue;
                };
                report.merged_locally += u64::from(changed);
                let digest = row_digest(&key, &encode_object(&object));
                if remote_digests.get(&key) != Some(&digest) {
                    push.push((key, object));
                }
            }
        }
        for items in push.chunks(batch) {
            peers.merge(peer, items.to_vec(), None).await?;
            report.pushed += items.len() as u64;
        }
        Ok(())
    }
}
