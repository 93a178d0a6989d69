//! `ringkit.ratelimit.v1.ClusterPeer`: the owner side of forwarding. Runs a batch of resolved
//! operations on this node's store, in order, at one instant.

use tonic::{Request, Response, Status};

use super::convert::{from_pb_op, to_pb_decision};
use super::pb::ringkit::ratelimit::v1 as pb;
use crate::counter::LocalCounter;
use crate::error::Error;

/// Largest batch accepted, to bound the work of one call.
pub const MAX_BATCH: usize = 4096;

/// The peer service of a node.
#[derive(Debug, Clone)]
pub struct PeerService {
    /// This node's store.
    local: LocalCounter,
}

impl PeerService {
    /// Serves `local`.
    pub fn new(local: LocalCounter) -> Self {
        PeerService { local }
    }

    /// Wraps it for tonic's router.
    pub fn into_server(self) -> pb::cluster_peer_server::ClusterPeerServer<Self> {
        pb::cluster_peer_server::ClusterPeerServer::new(self)
    }
}

#[tonic::async_trait]
impl pb::cluster_peer_server::ClusterPeer for PeerService {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let req = request.into_inner();
        if req.ops.len() > MAX_BATCH {
            return Err(Error::Config(format!(
                "batch of {} ops is above the maximum {MAX_BATCH}",
                req.ops.len()
            ))
            .into());
        }
        let ops = req
            .ops
            .iter()
            .map(from_pb_op)
            .collect::<Result<Vec<_>, _>>()?;
        let results = self
            .local
            .apply(&ops)
            .iter()
            .map(|r| pb::OpResult {
                decision: r.decision.as_ref().map(to_pb_decision),
                existed: r.existed,
            })
            .collect();
        Ok(Response::new(pb::ApplyResponse { results }))
    }
}
