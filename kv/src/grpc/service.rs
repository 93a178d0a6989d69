//! The `ringkit.kv.v1.Kv` gRPC service: decode, call the node, encode.

use tonic::{Request, Response, Status};

use super::convert;
use super::pb;
use crate::node::KvNode;
use crate::storage::Storage;

/// The gRPC face of a [`KvNode`]. Holds only the node handle (an `Arc`).
#[derive(Debug)]
pub struct KvService<S> {
    /// The node that does the work.
    node: KvNode<S>,
}

impl<S> Clone for KvService<S> {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
        }
    }
}

impl<S: Storage> KvService<S> {
    /// Serves `node`.
    pub fn new(node: KvNode<S>) -> Self {
        Self { node }
    }

    /// The node.
    pub fn node(&self) -> &KvNode<S> {
        &self.node
    }
}

#[tonic::async_trait]
impl<S: Storage> pb::kv_server::Kv for KvService<S> {
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let r = request.into_inner();
        let v = self.node.get(r.key, convert::quorum(r.quorum)?).await?;
        Ok(Response::new(convert::get_response(v)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let put = convert::put(request.into_inner())?;
        let o = self.node.put(put).await?;
        Ok(Response::new(convert::put_response(o)))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let r = request.into_inner();
        let o = self
            .node
            .delete(r.key, r.context, convert::quorum(r.quorum)?)
            .await?;
        Ok(Response::new(convert::delete_response(o)))
    }

    async fn batch_get(
        &self,
        request: Request<pb::BatchGetRequest>,
    ) -> Result<Response<pb::BatchGetResponse>, Status> {
        let r = request.into_inner();
        let results = self
            .node
            .batch_get(r.keys, convert::quorum(r.quorum)?)
            .await?;
        Ok(Response::new(pb::BatchGetResponse {
            results: results.into_iter().map(convert::get_response).collect(),
        }))
    }

    async fn batch_put(
        &self,
        request: Request<pb::BatchPutRequest>,
    ) -> Result<Response<pb::BatchPutResponse>, Status> {
        let r = request.into_inner();
        let quorum = convert::quorum(r.quorum)?;
        let puts = r
            .items
            .into_iter()
            .map(convert::batch_item)
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.node.batch_put(puts, quorum).await?;
        Ok(Response::new(pb::BatchPutResponse {
            results: results.into_iter().map(convert::batch_result).collect(),
        }))
    }

    async fn scan(
        &self,
        request: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let scan = convert::scan(request.into_inner())?;
        let page = self.node.scan(scan).await?;
        Ok(Response::new(convert::scan_response(page)))
    }

    async fn stats(
        &self,
        _request: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsResponse>, Status> {
        let s = self.node.stats().await?;
        Ok(Response::new(convert::stats_response(s)))
    }
}
