//! The `AntiEntropy` gRPC service: protobuf in, [`Aae`] handlers, protobuf out.
//!
//! Decoding and bounds checks happen here and in the handlers; bad input is INVALID_ARGUMENT
//! with a message that says what to fix.

use bytes::Bytes;
use tonic::{Request, Response, Status};

use super::node::Aae;
use super::remote::{RootsQuery, RowsQuery, TreeQuery};
use super::tree::TreeShape;
use crate::cluster::pb;
use crate::cluster::pb::anti_entropy_server::{AntiEntropy, AntiEntropyServer};
use crate::error::KvError;
use crate::model::encode_object;
use crate::storage::Storage;

/// Most tombstones one `Reap` call may carry.
pub const MAX_REAP_ITEMS: usize = 10_000;

/// The `AntiEntropy` service of one node.
#[derive(Debug)]
pub struct AntiEntropyService<S> {
    /// The node's anti-entropy.
    aae: Aae<S>,
}

/// The tonic service to add to the node's gRPC server (internal: only cluster members call it).
pub fn service<S: Storage>(aae: Aae<S>) -> AntiEntropyServer<AntiEntropyService<S>> {
    AntiEntropyServer::new(AntiEntropyService { aae })
        .max_decoding_message_size(crate::cluster::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::cluster::MAX_MESSAGE_BYTES)
}

#[tonic::async_trait]
impl<S: Storage> AntiEntropy for AntiEntropyService<S> {
    async fn tree_roots(
        &self,
        request: Request<pb::AaeRootsRequest>,
    ) -> Result<Response<pb::AaeRootsResponse>, Status> {
        let r = request.into_inner();
        let q = RootsQuery {
            partition_count: r.partition_count,
            shape: TreeShape {
                fan_out: r.fan_out,
                depth: r.depth,
            },
            partitions: r.partitions,
        };
        let roots = self.aae.tree_roots(q).await?;
        Ok(Response::new(pb::AaeRootsResponse {
            roots: roots
                .into_iter()
                .map(|root| pb::AaeRoot {
                    replicated: root.is_some(),
                    node: root.map(|s| pb::AaeNode {
                        rows: s.rows,
                        digest: s.digest,
                    }),
                })
                .collect(),
        }))
    }

    async fn tree_nodes(
        &self,
        request: Request<pb::AaeTreeRequest>,
    ) -> Result<Response<pb::AaeTreeResponse>, Status> {
        let r = request.into_inner();
        let q = TreeQuery {
            partition_count: r.partition_count,
            partition: r.partition,
            shape: TreeShape {
                fan_out: r.fan_out,
                depth: r.depth,
            },
            level: r.level,
            nodes: r.nodes,
        };
        let nodes = self.aae.tree_nodes(q).await?;
        Ok(Response::new(pb::AaeTreeResponse {
            nodes: nodes
                .into_iter()
                .map(|s| pb::AaeNode {
                    rows: s.rows,
                    digest: s.digest,
                })
                .collect(),
        }))
    }

    async fn rows(
        &self,
        request: Request<pb::AaeRowsRequest>,
    ) -> Result<Response<pb::AaeRowsResponse>, Status> {
        let r = request.into_inner();
        let q = RowsQuery {
            range: r.start..=r.end,
            after: r.after.map(|c| (c.hash, c.key)),
            limit: r.limit as usize,
            include_objects: r.include_objects,
        };
        let page = self.aae.rows(q).await?;
        Ok(Response::new(pb::AaeRowsResponse {
            rows: page
                .rows
                .into_iter()
                .map(|row| pb::AaeRow {
                    hash: row.digest.hash,
                    key: row.digest.key,
                    digest: row.digest.digest,
                    object: row
                        .object
                        .map(|o| Bytes::from(encode_object(&o)))
                        .unwrap_or_default(),
                })
                .collect(),
            more: page.more,
        }))
    }

    async fn reap(
        &self,
        request: Request<pb::AaeReapRequest>,
    ) -> Result<Response<pb::AaeReapResponse>, Status> {
        let items = request.into_inner().items;
        if items.len() > MAX_REAP_ITEMS {
            return Err(KvError::InvalidArgument(format!(
                "{} tombstones in one reap; send at most {MAX_REAP_ITEMS}",
                items.len()
            ))
            .into());
        }
        let reaped = self
            .aae
            .reap(items.into_iter().map(|i| (i.key, i.digest)).collect())
            .await?;
        Ok(Response::new(pb::AaeReapResponse {
            reaped: u32::try_from(reaped).unwrap_or(u32::MAX),
        }))
    }

    async fn hint_targets(
        &self,
        _request: Request<pb::AaeHintTargetsRequest>,
    ) -> Result<Response<pb::AaeHintTargetsResponse>, Status> {
        let targets = self.aae.hint_targets().await?;
        Ok(Response::new(pb::AaeHintTargetsResponse { targets }))
    }
}
