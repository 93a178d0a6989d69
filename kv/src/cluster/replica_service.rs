//! The internal `ringkit.kv.cluster.v1.Replica` gRPC service: what other nodes of the cluster
//! call on this one.
//!
//! Peers are trusted to be cluster members, not to be bug-free: every field is checked (key
//! limits, item counts, object encodings) and bad input is INVALID_ARGUMENT, never a panic.

use bytes::Bytes;
use tonic::{Request, Response, Status};

use ringkit_hashring::NodeId;

use super::coordinator::Coordinator;
use super::hints::store_hints;
use super::pb;
use crate::error::KvError;
use crate::grpc::{convert, pb as kv};
use crate::model::{Object, decode_object, encode_object};
use crate::storage::Storage;

/// Most items one Merge or Read call may carry (hint and repair batches are far smaller).
pub const MAX_ITEMS_PER_CALL: usize = 4096;

/// The `Replica` service of one node. Holds only the coordinator handle (an `Arc`).
#[derive(Debug)]
pub struct ReplicaService<S> {
    /// Coordinates forwarded requests and reaches the local store.
    coordinator: Coordinator<S>,
}

impl<S> Clone for ReplicaService<S> {
    fn clone(&self) -> Self {
        Self {
            coordinator: self.coordinator.clone(),
        }
    }
}

impl<S: Storage> ReplicaService<S> {
    /// The service of the node `coordinator` runs on.
    pub fn new(coordinator: Coordinator<S>) -> Self {
        Self { coordinator }
    }

    /// Checks the number of items in a call.
    fn check_count(what: &str, n: usize) -> Result<(), KvError> {
        if n > MAX_ITEMS_PER_CALL {
            return Err(KvError::InvalidArgument(format!(
                "{what} carries {n} items; the limit is {MAX_ITEMS_PER_CALL} per call"
            )));
        }
        Ok(())
    }

    /// Decodes and checks a peer's items.
    fn items(&self, items: Vec<pb::Item>) -> Result<Vec<(Bytes, Object)>, KvError> {
        Self::check_count("merge", items.len())?;
        let limits = &self.coordinator.node().config().limits;
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                limits.check_key(&item.key)?;
                let object = decode_object(&item.object).map_err(|e| {
                    KvError::InvalidArgument(format!("item {i}: malformed object encoding: {e}"))
                })?;
                for sibling in object.siblings() {
                    limits.check_value(&sibling.value)?;
                }
                Ok((item.key, object))
            })
            .collect()
    }
}

#[tonic::async_trait]
impl<S: Storage> pb::replica_server::Replica for ReplicaService<S> {
    async fn forward_put(
        &self,
        request: Request<kv::PutRequest>,
    ) -> Result<Response<kv::PutResponse>, Status> {
        let put = convert::put(request.into_inner())?;
        let o = self.coordinator.put(put).await?;
        Ok(Response::new(convert::put_response(o)))
    }

    async fn forward_delete(
        &self,
        request: Request<kv::DeleteRequest>,
    ) -> Result<Response<kv::DeleteResponse>, Status> {
        let r = request.into_inner();
        let o = self
            .coordinator
            .delete(r.key, r.context, convert::quorum(r.quorum)?)
            .await?;
        Ok(Response::new(convert::delete_response(o)))
    }

    async fn forward_get(
        &self,
        request: Request<kv::GetRequest>,
    ) -> Result<Response<kv::GetResponse>, Status> {
        let r = request.into_inner();
        let v = self
            .coordinator
            .get(r.key, convert::quorum(r.quorum)?)
            .await?;
        Ok(Response::new(convert::get_response(v)))
    }

    async fn merge(
        &self,
        request: Request<pb::MergeRequest>,
    ) -> Result<Response<pb::MergeResponse>, Status> {
        let r = request.into_inner();
        let items = self.items(r.items)?;
        let node = self.coordinator.node();
        let changed = if r.hint_for.is_empty() {
            node.merge_objects(items).await?
        } else {
            // A stand-in for `hint_for` (or, if that is this node, its own data).
            let n = items.len();
            store_hints(node, &NodeId::new(r.hint_for), items).await?;
            n
        };
        Ok(Response::new(pb::MergeResponse {
            changed: u32::try_from(changed).unwrap_or(u32::MAX),
        }))
    }

    async fn read(
        &self,
        request: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let keys = request.into_inner().keys;
        Self::check_count("read", keys.len())?;
        let node = self.coordinator.node();
        for k in &keys {
            node.config().limits.check_key(k).map_err(KvError::from)?;
        }
        let objects = node
            .read_objects(keys)
            .await?
            .into_iter()
            .map(|o| match o {
                Some(o) => pb::StoredObject {
                    found: true,
                    object: Bytes::from(encode_object(&o)),
                },
                None => pb::StoredObject::default(),
            })
            .collect();
        Ok(Response::new(pb::ReadResponse { objects }))
    }

    async fn scan_objects(
        &self,
        request: Request<kv::ScanRequest>,
    ) -> Result<Response<pb::ScanObjectsResponse>, Status> {
        let scan = convert::scan(request.into_inner())?;
        let (rows, more) = self.coordinator.node().scan_objects(scan).await?;
        let items = rows
            .into_iter()
            .map(|(key, o)| pb::Item {
                key,
                object: Bytes::from(encode_object(&o)),
            })
            .collect();
        Ok(Response::new(pb::ScanObjectsResponse { items, more }))
    }
}
