//! What the bench drives: kv-servers over gRPC, a node embedded in this process, or (with the
//! `etcd-bench` feature) an etcd cluster, the peer the issue compares against.

use bytes::Bytes;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::grpc::pb::{
    self, BatchPutItem, BatchPutRequest, GetRequest, PutRequest, StatsRequest,
};
use ringkit_kv::model::WriteMode;
use ringkit_kv::node::{KvNode, Put, Quorum};
use ringkit_kv::storage::SqliteStorage;
use tonic::transport::Channel;

/// Group-commit counters read from the target after a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct CommitStats {
    /// Transactions committed.
    pub(crate) commits: u64,
    /// Requests committed.
    pub(crate) requests: u64,
    /// Mean requests per commit.
    pub(crate) mean_batch: f64,
    /// Largest commit.
    pub(crate) max_batch: u64,
    /// Mean group commit time, microseconds.
    pub(crate) mean_commit_us: f64,
    /// Mean time of the COMMIT statement (WAL write and sync), microseconds.
    pub(crate) mean_sync_us: f64,
    /// Commits by size bucket (1, 2, 3-4, 5-8, ...).
    pub(crate) histogram: Vec<u64>,
    /// The target's durability.
    pub(crate) durability: String,
}

impl CommitStats {
    /// The counters accumulated between `before` and `self`.
    pub(crate) fn since(&self, before: &CommitStats) -> CommitStats {
        let commits = self.commits.saturating_sub(before.commits);
        let requests = self.requests.saturating_sub(before.requests);
        let total_us = self.mean_commit_us * self.commits as f64
            - before.mean_commit_us * before.commits as f64;
        let sync_us =
            self.mean_sync_us * self.commits as f64 - before.mean_sync_us * before.commits as f64;
        CommitStats {
            commits,
            requests,
            mean_batch: if commits == 0 {
                0.0
            } else {
                requests as f64 / commits as f64
            },
            max_batch: self.max_batch,
            mean_commit_us: if commits == 0 {
                0.0
            } else {
                total_us / commits as f64
            },
            mean_sync_us: if commits == 0 {
                0.0
            } else {
                sync_us / commits as f64
            },
            histogram: self
                .histogram
                .iter()
                .zip(before.histogram.iter().chain(std::iter::repeat(&0)))
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            durability: self.durability.clone(),
        }
    }
}

/// One worker's connection to the target.
#[derive(Clone)]
pub(crate) enum Client {
    /// A gRPC stub on one of the shared channels.
    Grpc(KvClient<Channel>),
    /// The embedded node.
    Embedded(KvNode<SqliteStorage>),
    /// An etcd cluster through the `etcd-client` crate (linearizable reads, the default).
    #[cfg(feature = "etcd-bench")]
    Etcd(Box<etcd_client::KvClient>),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Client::Grpc(_) => "Client::Grpc",
            Client::Embedded(_) => "Client::Embedded",
            #[cfg(feature = "etcd-bench")]
            Client::Etcd(_) => "Client::Etcd",
        })
    }
}

/// `mode` as the wire enum.
fn wire_mode(lww: bool) -> i32 {
    if lww {
        pb::WriteMode::LastWriteWins as i32
    } else {
        pb::WriteMode::Causal as i32
    }
}

impl Client {
    /// Reads a key; returns its context.
    pub(crate) async fn read(&mut self, key: Bytes) -> Result<Bytes, String> {
        match self {
            Client::Grpc(c) => c
                .get(GetRequest { key, quorum: None })
                .await
                .map(|r| r.into_inner().context)
                .map_err(|e| e.to_string()),
            Client::Embedded(n) => n
                .get(key, Quorum::default())
                .await
                .map(|v| v.context)
                .map_err(|e| e.to_string()),
            // etcd has no causal context: a read-modify-write is a plain get then put.
            #[cfg(feature = "etcd-bench")]
            Client::Etcd(c) => c
                .get(key.to_vec(), None)
                .await
                .map(|_| Bytes::new())
                .map_err(|e| e.to_string()),
        }
    }

    /// Writes a key blind (last-write-wins unless `lww` is false).
    pub(crate) async fn update(
        &mut self,
        key: Bytes,
        value: Bytes,
        lww: bool,
    ) -> Result<(), String> {
        self.put(key, value, Bytes::new(), lww).await
    }

    /// Reads a key and writes it back with the context read (causal).
    pub(crate) async fn read_modify_write(
        &mut self,
        key: Bytes,
        value: Bytes,
    ) -> Result<(), String> {
        let context = self.read(key.clone()).await?;
        self.put(key, value, context, false).await
    }

    async fn put(
        &mut self,
        key: Bytes,
        value: Bytes,
        context: Bytes,
        lww: bool,
    ) -> Result<(), String> {
        match self {
            Client::Grpc(c) => {
                let req = PutRequest {
                    key,
                    value,
                    context,
                    mode: wire_mode(lww),
                    ..Default::default()
                };
                c.put(req).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Client::Embedded(n) => {
                let mode = if lww {
                    WriteMode::LastWriteWins
                } else {
                    WriteMode::Causal
                };
                let put = Put::new(key, value).with_context(context).with_mode(mode);
                n.put(put).await.map(|_| ()).map_err(|e| e.to_string())
            }
            #[cfg(feature = "etcd-bench")]
            Client::Etcd(c) => c
                .put(key.to_vec(), value.to_vec(), None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }

    /// Writes many keys (the load phase), last-write-wins so reloading never makes siblings.
    pub(crate) async fn load(&mut self, items: Vec<(Bytes, Bytes)>) -> Result<(), String> {
        match self {
            Client::Grpc(c) => {
                let items = items
                    .into_iter()
                    .map(|(key, value)| BatchPutItem {
                        key,
                        value,
                        mode: wire_mode(true),
                        ..Default::default()
                    })
                    .collect();
                let r = c
                    .batch_put(BatchPutRequest {
                        items,
                        quorum: None,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                match r
                    .into_inner()
                    .results
                    .iter()
                    .find_map(|r| match &r.outcome {
                        Some(pb::batch_put_result::Outcome::Error(e)) => Some(e.message.clone()),
                        _ => None,
                    }) {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
            Client::Embedded(n) => {
                let puts = items
                    .into_iter()
                    .map(|(k, v)| Put::new(k, v).with_mode(WriteMode::LastWriteWins))
                    .collect();
                let results = n
                    .batch_put(puts, Quorum::default())
                    .await
                    .map_err(|e| e.to_string())?;
                results
                    .into_iter()
                    .try_for_each(|r| r.map(|_| ()).map_err(|e| e.to_string()))
            }
            // One transaction per batch: etcd's own way to write many keys in one request.
            #[cfg(feature = "etcd-bench")]
            Client::Etcd(c) => {
                let ops: Vec<etcd_client::TxnOp> = items
                    .into_iter()
                    .map(|(k, v)| etcd_client::TxnOp::put(k.to_vec(), v.to_vec(), None))
                    .collect();
                // etcd refuses more than 128 operations per transaction by default.
                for chunk in ops.chunks(128) {
                    c.txn(etcd_client::Txn::new().and_then(chunk.to_vec()))
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        }
    }

    /// The target's group-commit counters.
    pub(crate) async fn commit_stats(&mut self) -> Result<CommitStats, String> {
        match self {
            Client::Grpc(c) => {
                let s = c
                    .stats(StatsRequest {})
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                let w = s.writer.unwrap_or_default();
                Ok(CommitStats {
                    commits: w.commits,
                    requests: w.requests,
                    mean_batch: w.mean_batch,
                    max_batch: w.max_batch,
                    mean_commit_us: w.mean_commit_us,
                    mean_sync_us: w.mean_sync_us,
                    histogram: w.batch_histogram,
                    durability: s.durability,
                })
            }
            Client::Embedded(n) => {
                let s = n.stats().await.map_err(|e| e.to_string())?;
                let w = s.writer;
                Ok(CommitStats {
                    commits: w.commits,
                    requests: w.requests,
                    mean_batch: w.mean_batch(),
                    max_batch: w.max_batch,
                    mean_commit_us: if w.commits == 0 {
                        0.0
                    } else {
                        w.commit_micros as f64 / w.commits as f64
                    },
                    mean_sync_us: if w.commits == 0 {
                        0.0
                    } else {
                        w.sync_micros as f64 / w.commits as f64
                    },
                    histogram: w.batch_histogram.to_vec(),
                    durability: s.durability.to_owned(),
                })
            }
            #[cfg(feature = "etcd-bench")]
            Client::Etcd(_) => Err("etcd reports no group-commit counters".to_owned()),
        }
    }
}
