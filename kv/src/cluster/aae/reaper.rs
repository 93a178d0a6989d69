//! The reaping pass over one partition, the async shell around [`TombstoneWatch`],
//! [`reap_gate`] and [`same_tombstones`] (the rule is in `reap.rs` and ADR 0430).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, PartitionId};

use super::node::Aae;
use super::reap::{Tombstone, TombstoneWatch, bystander_split, reap_gate, same_tombstones};
use super::remote::AaePeers;
use crate::cluster::peers::ReplicaPeers;
use crate::error::KvError;
use crate::storage::{Storage, StorageExt};

impl<S: Storage> Aae<S> {
    /// Scans partition `partition` for tombstones, and reaps on every replica those that the
    /// rule allows. `now` is the watch's clock (time since any fixed origin). Returns the
    /// tombstones reaped here.
    ///
    /// # Errors
    /// Storage failures, or a peer failing mid-way (a partial reap is safe: a replica that kept
    /// the tombstone hands it back by the next exchange, and a tombstone never revives a value).
    pub async fn reap_partition(
        &self,
        remote: &dyn AaePeers,
        peers: &dyn ReplicaPeers,
        watch: &mut TombstoneWatch,
        partition: u32,
        now: Duration,
    ) -> Result<usize, KvError> {
        if self.config().tombstone_grace.is_none() {
            return Ok(0);
        }
        let map = self.map();
        let live = self.live();
        let range = map.ring().partition_range(PartitionId(partition));
        let owners = map.replica_set(*range.start(), self.config().n).write;
        if !owners.contains(self.local()) {
            watch.forget(partition);
            return Ok(0);
        }
        if let Some(down) = map.members().find(|m| !live.contains(&m.id)) {
            let reason = format!("member {} is not live: reaping waits", down.id);
            self.board().reap_blocked(Some(reason));
            return Ok(0);
        }
        let scan = self.local_tombstones(range).await?;
        let ready = watch.observe(partition, scan, now);
        if ready.is_empty() {
            return Ok(0);
        }
        let mut hints = BTreeMap::new();
        for m in map.members() {
            let targets = if m.id == *self.local() {
                self.hint_targets().await
            } else {
                remote.hint_targets(&m.id).await
            };
            match targets {
                Ok(t) => {
                    hints.insert(m.id.clone(), t);
                }
                Err(e) => tracing::debug!(member = %m.id, error = %e, "no hint report"),
            }
        }
        let members: Vec<NodeId> = map.members().map(|m| m.id.clone()).collect();
        // Any hint blocks, not only those for this partition's replicas: a key written with a
        // larger per-request N has replicas beyond this write set, and a hint for a removed
        // node goes to the key's current replicas.
        if let Err(reason) = reap_gate(&members, &live, &hints) {
            self.board().reap_blocked(Some(reason));
            return Ok(0);
        }
        self.board().reap_blocked(None);
        let mut reaped = 0;
        for batch in ready.chunks(self.config().repair_batch) {
            reaped += self
                .reap_batch(remote, peers, &members, &owners, batch)
                .await?;
        }
        Ok(reaped)
    }

    /// Reaps one batch of candidates that every other owner holds identically and every other
    /// member holds identically or not at all; members holding a stale state of a candidate get
    /// this node's tombstone merged (that candidate waits for a later pass).
    async fn reap_batch(
        &self,
        remote: &dyn AaePeers,
        peers: &dyn ReplicaPeers,
        members: &[NodeId],
        owners: &[NodeId],
        batch: &[Tombstone],
    ) -> Result<usize, KvError> {
        let mut agreed: Vec<Tombstone> = batch.to_vec();
        for m in members.iter().filter(|m| *m != self.local()) {
            let keys: Vec<Bytes> = agreed.iter().map(|(k, _)| k.clone()).collect();
            let answer = peers.read(m, keys).await?;
            if owners.contains(m) {
                agreed = same_tombstones(&agreed, &answer);
            } else {
                let (keep, stale) = bystander_split(&agreed, &answer);
                agreed = keep;
                if !stale.is_empty() {
                    self.give_tombstones(peers, m, stale).await?;
                }
            }
            if agreed.is_empty() {
                return Ok(0);
            }
        }
        for m in members.iter().filter(|m| *m != self.local()) {
            remote.reap(m, agreed.clone()).await?;
        }
        self.reap(agreed).await
    }

    /// Merges this node's state of `keys` (tombstones) into `to`: a stale copy there is then
    /// covered by the delete, never the other way round.
    async fn give_tombstones(
        &self,
        peers: &dyn ReplicaPeers,
        to: &NodeId,
        keys: Vec<Bytes>,
    ) -> Result<(), KvError> {
        let objects = self
            .node()
            .storage()
            .read(move |v| {
                keys.into_iter()
                    .map(|k| Ok(v.get(&k)?.map(|o| (k, o))))
                    .collect::<Result<Vec<_>, KvError>>()
            })
            .await?;
        let items: Vec<(Bytes, crate::model::Object)> = objects.into_iter().flatten().collect();
        if items.is_empty() {
            return Ok(());
        }
        peers.merge(to, items, None).await
    }

    /// Every tombstone of `range` here, as (key, digest), read page by page within the budget.
    async fn local_tombstones(
        &self,
        range: crate::model::HashRange,
    ) -> Result<Vec<Tombstone>, KvError> {
        let page = self.config().page_rows;
        let mut out = Vec::new();
        let mut after: Option<(u64, Bytes)> = None;
        loop {
            self.budget().ready().await;
            let rows = self.local_rows(range.clone(), after.clone(), page).await?;
            let full = rows.len() == page;
            after = rows.last().map(|r| (r.hash, r.key.clone()));
            out.extend(
                rows.into_iter()
                    .filter(|r| r.object.is_tombstone())
                    .map(|r| (r.key, r.digest)),
            );
            if !full {
                return Ok(out);
            }
        }
    }
}
