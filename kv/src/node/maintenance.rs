//! Background maintenance: purge expired keys, reap old tombstones.
//!
//! Expired keys are invisible at once (reads filter by time); this only reclaims their space.
//! Each pass deletes in bounded batches so a purge never holds the writer for long, and it goes
//! through the same group-commit queue as client writes.

use std::future::Future;

use super::kv_node::KvNode;
use crate::error::KvError;
use crate::storage::{Applied, Storage, WriteOp};

/// What one maintenance pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Rows whose every sibling had expired.
    pub expired: usize,
    /// Tombstones older than the grace period.
    pub reaped: usize,
}

/// Most batches one pass runs before yielding to the next tick.
const MAX_ROUNDS: usize = 16;

impl<S: Storage> KvNode<S> {
    /// Runs one maintenance pass now.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn maintain_once(&self) -> Result<MaintenanceReport, KvError> {
        let cfg = self.config().maintenance.clone();
        let mut report = MaintenanceReport::default();
        for _ in 0..MAX_ROUNDS {
            let now = self.now();
            let mut ops = vec![WriteOp::PurgeExpired { limit: cfg.batch }];
            if let Some(grace) = cfg.tombstone_grace {
                ops.push(WriteOp::ReapTombstones {
                    deleted_before: now.saturating_sub(grace),
                    limit: cfg.batch,
                });
            }
            let results = self.submit(now, ops).await?;
            let removed: Vec<usize> = results
                .into_iter()
                .map(|r| match r {
                    Ok(Applied::Removed { rows }) => Ok(rows),
                    Ok(_) => Ok(0),
                    Err(e) => Err(e),
                })
                .collect::<Result<_, _>>()?;
            let expired = removed.first().copied().unwrap_or(0);
            let reaped = removed.get(1).copied().unwrap_or(0);
            report.expired += expired;
            report.reaped += reaped;
            if expired < cfg.batch && reaped < cfg.batch {
                break;
            }
        }
        if report.expired > 0 || report.reaped > 0 {
            metrics::counter!("kv_expired_purged_total").increment(report.expired as u64);
            metrics::counter!("kv_tombstones_reaped_total").increment(report.reaped as u64);
            tracing::debug!(
                expired = report.expired,
                reaped = report.reaped,
                "maintenance pass"
            );
        }
        Ok(report)
    }

    /// Runs maintenance every `interval` until `shutdown` completes.
    pub async fn run_maintenance(&self, shutdown: impl Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.config().maintenance.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = tick.tick() => {
                    if let Err(e) = self.maintain_once().await {
                        tracing::warn!(error = %e, "maintenance pass failed; retrying next tick");
                    }
                }
            }
        }
    }
}
