//! [`AaePeers`]: what an exchange asks of the other replica, and its gRPC implementation.
//!
//! The trait keeps the exchange and reaping code independent of the transport: production
//! speaks the `AntiEntropy` gRPC service through [`Channels`]; tests can answer in memory by
//! calling the peer's [`Aae`](super::Aae) handlers directly.

use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;

use super::exchange::RowDigest;
use super::tree::TreeShape;
use crate::cluster::channels::Channels;
use crate::cluster::pb;
use crate::cluster::pb::anti_entropy_client::AntiEntropyClient;
use crate::error::KvError;
use crate::model::{HashRange, Object, decode_object};
use crate::storage::RangeSummary;

/// Most partitions one [`RootsQuery`] may name.
pub const MAX_ROOTS_PER_QUERY: usize = 4096;

/// The roots of some partitions' trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootsQuery {
    /// Partitions in the ring.
    pub partition_count: u32,
    /// The asker's tree shape (must match).
    pub shape: TreeShape,
    /// The partitions, answered in order (at most [`MAX_ROOTS_PER_QUERY`]).
    pub partitions: Vec<u32>,
}

/// Some nodes of one level of a partition's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeQuery {
    /// Partitions in the ring.
    pub partition_count: u32,
    /// The partition.
    pub partition: u32,
    /// The asker's tree shape (must match).
    pub shape: TreeShape,
    /// The level (0: root; asking for it refreshes the answerer's tree first).
    pub level: u32,
    /// Node indexes, answered in order.
    pub nodes: Vec<u64>,
}

/// A page of rows of a hash range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowsQuery {
    /// The inclusive hash range.
    pub range: HashRange,
    /// Resume strictly after this (hash, key).
    pub after: Option<(u64, Bytes)>,
    /// Most rows (1 to 1000).
    pub limit: usize,
    /// Send objects too, not only digests.
    pub include_objects: bool,
}

/// One row of a [`RowsPage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRow {
    /// Position, key and digest.
    pub digest: RowDigest,
    /// The object, when asked for.
    pub object: Option<Object>,
}

/// An answer to a [`RowsQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowsPage {
    /// Rows ordered by (hash, key).
    pub rows: Vec<RemoteRow>,
    /// The page is full: ask again after its last row.
    pub more: bool,
}

/// The anti-entropy calls a node makes to another.
#[async_trait::async_trait]
pub trait AaePeers: Send + Sync + 'static {
    /// The root summary of each partition of `q` on `to` (refreshed first), in order; `None`
    /// for a partition `to` does not replicate.
    ///
    /// # Errors
    /// Unreachable peer, timeout, or the peer refused (other ring or shape).
    async fn tree_roots(
        &self,
        to: &NodeId,
        q: RootsQuery,
    ) -> Result<Vec<Option<RangeSummary>>, KvError>;

    /// Tree node summaries of `to`.
    ///
    /// # Errors
    /// Unreachable peer, timeout, or the peer refused (other ring or shape).
    async fn tree_nodes(&self, to: &NodeId, q: TreeQuery) -> Result<Vec<RangeSummary>, KvError>;

    /// A page of `to`'s rows.
    ///
    /// # Errors
    /// Unreachable peer, timeout, malformed answer.
    async fn rows(&self, to: &NodeId, q: RowsQuery) -> Result<RowsPage, KvError>;

    /// Reaps tombstones on `to` (each only if unchanged); returns how many went.
    ///
    /// # Errors
    /// Unreachable peer, timeout.
    async fn reap(&self, to: &NodeId, items: Vec<(Bytes, u64)>) -> Result<usize, KvError>;

    /// The nodes `to` holds hints for.
    ///
    /// # Errors
    /// Unreachable peer, timeout.
    async fn hint_targets(&self, to: &NodeId) -> Result<Vec<String>, KvError>;
}

/// [`AaePeers`] over the `AntiEntropy` gRPC service.
#[derive(Clone, Debug)]
pub struct GrpcAaePeers {
    /// Connections to members.
    channels: Channels,
    /// Deadline of one call.
    timeout: Duration,
}

impl GrpcAaePeers {
    /// Peers reached through `channels`, each call bounded by `timeout`.
    pub fn new(channels: Channels, timeout: Duration) -> Self {
        Self { channels, timeout }
    }

    /// Runs one call on a client for `to`, mapping failures to [`KvError`].
    async fn call<T, F, Fut>(&self, to: &NodeId, f: F) -> Result<T, KvError>
    where
        F: FnOnce(AntiEntropyClient<tonic::transport::Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = AntiEntropyClient::new(self.channels.get(to)?)
            .max_decoding_message_size(crate::cluster::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::cluster::MAX_MESSAGE_BYTES);
        match tokio::time::timeout(self.timeout, f(client)).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(KvError::Peer {
                node: to.to_string(),
                status: status.code(),
                message: status.message().to_string(),
            }),
            Err(_) => Err(KvError::Timeout {
                node: to.to_string(),
            }),
        }
    }

    /// A request carrying the deadline.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.timeout);
        req
    }
}

#[async_trait::async_trait]
impl AaePeers for GrpcAaePeers {
    async fn tree_roots(
        &self,
        to: &NodeId,
        q: RootsQuery,
    ) -> Result<Vec<Option<RangeSummary>>, KvError> {
        let q_partitions = q.partitions.clone();
        let wanted = q_partitions.len();
        let req = self.request(pb::AaeRootsRequest {
            partition_count: q.partition_count,
            fan_out: q.shape.fan_out,
            depth: q.shape.depth,
            partitions: q.partitions,
        });
        let reply = self
            .call(to, |mut c| async move { c.tree_roots(req).await })
            .await?;
        if reply.roots.len() != wanted {
            return Err(KvError::Internal(format!(
                "peer {to} sent {} tree roots for {wanted}",
                reply.roots.len()
            )));
        }
        reply
            .roots
            .into_iter()
            .zip(&q_partitions)
            .map(|(r, p)| match (r.replicated, r.node) {
                (true, Some(n)) => Ok(Some(RangeSummary {
                    rows: n.rows,
                    digest: n.digest,
                })),
                (true, None) => Err(KvError::Internal(format!(
                    "peer {to} replicates partition {p} but sent no root"
                ))),
                (false, _) => Ok(None),
            })
            .collect()
    }

    async fn tree_nodes(&self, to: &NodeId, q: TreeQuery) -> Result<Vec<RangeSummary>, KvError> {
        let wanted = q.nodes.len();
        let req = self.request(pb::AaeTreeRequest {
            partition_count: q.partition_count,
            partition: q.partition,
            fan_out: q.shape.fan_out,
            depth: q.shape.depth,
            level: q.level,
            nodes: q.nodes,
        });
        let reply = self
            .call(to, |mut c| async move { c.tree_nodes(req).await })
            .await?;
        if reply.nodes.len() != wanted {
            return Err(KvError::Internal(format!(
                "peer {to} sent {} tree nodes for {wanted}",
                reply.nodes.len()
            )));
        }
        Ok(reply
            .nodes
            .into_iter()
            .map(|n| RangeSummary {
                rows: n.rows,
                digest: n.digest,
            })
            .collect())
    }

    async fn rows(&self, to: &NodeId, q: RowsQuery) -> Result<RowsPage, KvError> {
        let req = self.request(pb::AaeRowsRequest {
            start: *q.range.start(),
            end: *q.range.end(),
            after: q.after.map(|(hash, key)| pb::AaeCursor { hash, key }),
            limit: u32::try_from(q.limit).unwrap_or(u32::MAX),
            include_objects: q.include_objects,
        });
        let reply = self
            .call(to, |mut c| async move { c.rows(req).await })
            .await?;
        let rows = reply
            .rows
            .into_iter()
            .map(|r| {
                let object = if q.include_objects {
                    Some(decode_object(&r.object).map_err(|reason| KvError::Corrupt {
                        what: format!("row object from peer {to}"),
                        reason,
                    })?)
                } else {
                    None
                };
                Ok(RemoteRow {
                    digest: RowDigest {
                        hash: r.hash,
                        key: r.key,
                        digest: r.digest,
                    },
                    object,
                })
            })
            .collect::<Result<Vec<_>, KvError>>()?;
        Ok(RowsPage {
            rows,
            more: reply.more,
        })
    }

    async fn reap(&self, to: &NodeId, items: Vec<(Bytes, u64)>) -> Result<usize, KvError> {
        let req = self.request(pb::AaeReapRequest {
            items: items
                .into_iter()
                .map(|(key, digest)| pb::AaeReapItem { key, digest })
                .collect(),
        });
        let reply = self
            .call(to, |mut c| async move { c.reap(req).await })
            .await?;
        Ok(reply.reaped as usize)
    }

    async fn hint_targets(&self, to: &NodeId) -> Result<Vec<String>, KvError> {
        let req = self.request(pb::AaeHintTargetsRequest {});
        let reply = self
            .call(to, |mut c| async move { c.hint_targets(req).await })
            .await?;
        Ok(reply.targets)
    }
}
