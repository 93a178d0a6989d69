//! The reaping pass over one partition, the async shell around [`TombstoneWatch`],
//! [`reap_gate`] and [`same_tombstones`] (the rule is in `reap.rs` and ADR 0430).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, PartitionId};

use super::node::Aae;
use super::reap::{Tombstone, TombstoneWatch, reap_gate, same_tombstones};
use super::remote::AaePeers;
use crate::cluster::peers::ReplicaPeers;
use crate::error::KvError;
use crate::storage::Storage;

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
        if let Err(reason) = reap_gate(&members, &live, &owners, &hints) {
            self.board().reap_blocked(Some(reason));
            return Ok(0);
        }
        self.board().reap_blocked(None);
        let mut reaped = 0;
        for batch in ready.chunks(self.config().repair_batch) {
            reaped += self.reap_batch(remote, peers, &owners, batch).await?;
        }
        Ok(reaped)
    }

    /// Reaps one batch of candidates that every other owner holds identically.
    async fn reap_batch(
        &self,
        remote: &dyn AaePeers,
        peers: &dyn ReplicaPeers,
        owners: &[NodeId],
        batch: &[Tombstone],
    ) -> Result<usize, KvError> {
        let mut agreed: Vec<Tombstone> = batch.to_vec();
        for owner in owners.iter().filter(|o| *o != self.local()) {
            let keys: Vec<Bytes> = agreed.iter().map(|(k, _)| k.clone()).collect();
            let answer = peers.read(owner, keys).await?;
            agreed = same_tombstones(&agreed, &answer);
            if agreed.is_empty() {
                return Ok(0);
            }
        }
        for owner in owners.iter().filter(|o| *o != self.local()) {
            remote.reap(owner, agreed.clone()).await?;
        }
        self.reap(agreed).await
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
