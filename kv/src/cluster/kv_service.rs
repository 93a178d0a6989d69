//! The client API `ringkit.kv.v1.Kv` in cluster mode: the same proto as a single node, served
//! by the [`Coordinator`] instead of the local [`KvNode`](crate::node::KvNode).
//!
//! Each request is routed first: when this node is not a live replica of the key, the request is
//! forwarded unchanged to one that is (through `Replica.Forward*`), otherwise it is coordinated
//! here. Batches run their keys independently and in parallel; Scan asks every live node and
//! merges the pages by key (docs/adr/0411-kv-cluster-scan-and-batches.md).

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::channels::Channels;
use super::coordinator::Coordinator;
use super::pb::replica_client::ReplicaClient;
use super::plan::Route;
use super::scan::merge_pages;
use crate::error::KvError;
use crate::grpc::{convert, pb};
use crate::model::{decode_object, key_hash};
use crate::node::encode_cursor;
use crate::storage::Storage;

/// A forwarded call's failure as the client sees it: a deadline that passed is UNAVAILABLE
/// (retry), naming the node; anything else is the receiver's own answer.
fn forward_error(to: &ringkit_hashring::NodeId, status: Status) -> Status {
    if status.code() == tonic::Code::Cancelled {
        return Status::unavailable(format!(
            "forwarded to {to}, which did not answer in time: {}",
            status.message()
        ));
    }
    status
}

/// Keys of one batch coordinated at once (the rest wait their turn, in order), so one large
/// batch cannot flood the replication queues to the peers.
const BATCH_CONCURRENCY: usize = 256;

/// The cluster-mode `Kv` service of one node. Holds only handles (`Arc`s inside).
#[derive(Debug)]
pub struct ClusterKvService<S> {
    /// Coordinates requests for keys this node replicates.
    coordinator: Coordinator<S>,
    /// Reaches the other nodes for forwarding and scans.
    channels: Channels,
}

impl<S> Clone for ClusterKvService<S> {
    fn clone(&self) -> Self {
        Self {
            coordinator: self.coordinator.clone(),
            channels: self.channels.clone(),
        }
    }
}

impl<S: Storage> ClusterKvService<S> {
    /// The service of the node `coordinator` runs on.
    pub fn new(coordinator: Coordinator<S>, channels: Channels) -> Self {
        Self {
            coordinator,
            channels,
        }
    }

    /// A client of another node's `Replica` service, bounded by the replica timeout.
    fn peer(&self, to: &ringkit_hashring::NodeId) -> Result<ReplicaClient<Channel>, KvError> {
        Ok(ReplicaClient::new(self.channels.get(to)?)
            .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(super::MAX_MESSAGE_BYTES))
    }

    /// A forwarded request with a deadline: the receiver may itself wait up to one replica
    /// timeout for its quorum (and a stand-in's), so allow three before giving up on it (a
    /// frozen receiver must not hold the client forever).
    fn forwarded<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        req.set_timeout(self.coordinator.config().replica_timeout * 3);
        req
    }

    /// A put, coordinated here or forwarded.
    async fn put_pb(&self, r: pb::PutRequest) -> Result<pb::PutResponse, Status> {
        let q = convert::quorum(r.quorum)?;
        match self.coordinator.route_write(&r.key, q)? {
            Route::Local => {
                let o = self.coordinator.put(convert::put(r)?).await?;
                Ok(convert::put_response(o))
            }
            Route::Forward(to) => {
                metrics::counter!("kv_forwarded_total", "op" => "put").increment(1);
                Ok(self
                    .peer(&to)?
                    .forward_put(self.forwarded(r))
                    .await?
                    .into_inner())
            }
        }
    }

    /// A get, coordinated here or forwarded.
    async fn get_pb(&self, r: pb::GetRequest) -> Result<pb::GetResponse, Status> {
        let q = convert::quorum(r.quorum)?;
        match self.coordinator.route_read(&r.key, q)? {
            Route::Local => {
                let v = self.coordinator.get(r.key, q).await?;
                Ok(convert::get_response(v))
            }
            Route::Forward(to) => {
                metrics::counter!("kv_forwarded_total", "op" => "get").increment(1);
                Ok(self
                    .peer(&to)?
                    .forward_get(self.forwarded(r))
                    .await?
                    .into_inner())
            }
        }
    }

    /// One node's scan page as stored objects: this node's directly, others over the network.
    async fn node_page(
        &self,
        node: &ringkit_hashring::NodeId,
        r: &pb::ScanRequest,
    ) -> Result<(Vec<(bytes::Bytes, crate::model::Object)>, bool), KvError> {
        if node == self.coordinator.local() {
            return self
                .coordinator
                .node()
                .scan_objects(convert::scan(r.clone())?)
                .await;
        }
        let mut req = Request::new(r.clone());
        req.set_timeout(self.coordinator.config().replica_timeout);
        let resp = self
            .peer(node)?
            .scan_objects(req)
            .await
            .map_err(|s| KvError::Peer {
                node: node.to_string(),
                status: s.code(),
                message: s.message().to_string(),
            })?
            .into_inner();
        let rows = resp
            .items
            .into_iter()
            .map(|item| {
                decode_object(&item.object)
                    .map(|o| (item.key, o))
                    .map_err(|reason| KvError::Corrupt {
                        what: format!("scan page from {node}"),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, resp.more))
    }
}

#[tonic::async_trait]
impl<S: Storage> pb::kv_server::Kv for ClusterKvService<S> {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        Ok(Response::new(self.get_pb(request.into_inner()).await?))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        Ok(Response::new(self.put_pb(request.into_inner()).await?))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = request.into_inner();
        let q = convert::quorum(r.quorum)?;
        match self.coordinator.route_write(&r.key, q)? {
            Route::Local => {
                let o = self.coordinator.delete(r.key, r.context, q).await?;
                Ok(Response::new(convert::delete_response(o)))
            }
            Route::Forward(to) => {
                metrics::counter!("kv_forwarded_total", "op" => "delete").increment(1);
                Ok(self
                    .peer(&to)?
                    .forward_delete(self.forwarded(r))
                    .await
                    .map_err(|s| forward_error(&to, s))?)
            }
        }
    }

    async fn batch_get(
        &self,
        request: Request<pb::BatchGetRequest>,
    ) -> Result<Response<pb::BatchGetResponse>, Status> {
        let r = request.into_inner();
        let node = self.coordinator.node();
        node.config()
            .limits
            .check_batch(r.keys.len())
            .map_err(KvError::from)?;
        let gets = r.keys.into_iter().map(|key| {
            self.get_pb(pb::GetRequest {
                key,
                quorum: r.quorum,
            })
        });
        let results = stream::iter(gets)
            .buffered(BATCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(pb::BatchGetResponse { results }))
    }

    async fn batch_put(
        &self,
        request: Request<pb::BatchPutRequest>,
    ) -> Result<Response<pb::BatchPutResponse>, Status> {
        let r = request.into_inner();
        let node = self.coordinator.node();
        node.config()
            .limits
            .check_batch(r.items.len())
            .map_err(KvError::from)?;
        convert::quorum(r.quorum)?;
        let puts = r.items.into_iter().map(|item| {
            self.put_pb(pb::PutRequest {
                key: item.key,
                value: item.value,
                context: item.context,
                ttl_ms: item.ttl_ms,
                mode: item.mode,
                quorum: r.quorum,
                return_body: false,
            })
        });
        let results = stream::iter(puts)
            .buffered(BATCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .map(|res| pb::BatchPutResult {
                outcome: Some(match res {
                    Ok(ok) => pb::batch_put_result::Outcome::Ok(ok),
                    Err(s) => pb::batch_put_result::Outcome::Error(pb::ItemError {
                        code: s.code() as i32,
                        message: s.message().to_string(),
                    }),
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchPutResponse { results }))
    }

    async fn scan(
        &self,
        request: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let r = request.into_inner();
        let scan = convert::scan(r.clone())?;
        let node = self.coordinator.node();
        node.config()
            .limits
            .check_page_size(scan.page_size)
            .map_err(KvError::from)?;
        let live = self.coordinator.live();
        let map = self.coordinator.map();
        let nodes: Vec<_> = map
            .members()
            .map(|m| m.id.clone())
            .filter(|id| live.contains(id))
            .collect();
        let n = node.config().quorum.n as usize;
        let (r, map) = (&r, &map);
        let pages = join_all(nodes.iter().map(|id| async move {
            let (rows, more) = self.node_page(id, r).await?;
            let last = rows.last().map(|(k, _)| k.clone()).filter(|_| more);
            // Only a replica's copy counts: a node that held a partition before a ring change
            // may keep old rows that no repair looks at any more.
            let rows = rows
                .into_iter()
                .filter(|(k, _)| map.replica_set(key_hash(k), n).read.contains(id))
                .collect();
            Ok::<_, KvError>((rows, last))
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, KvError>>()?;
        let merged = merge_pages(pages, scan.page_size);
        let next_cursor = match (merged.more, merged.rows.last()) {
            (true, Some((last, _))) => encode_cursor(&scan.range, last),
            _ => bytes::Bytes::new(),
        };
        let entries = merged
            .rows
            .into_iter()
            .map(|(k, o)| node.versioned(k, Some(&o), scan.keys_only))
            .filter(|v| scan.keys_only || v.found())
            .collect();
        Ok(Response::new(convert::scan_response(
            crate::node::ScanPage {
                entries,
                next_cursor,
            },
        )))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let s = self.coordinator.node().stats().await?;
        Ok(Response::new(convert::stats_response(s)))
    }
}
