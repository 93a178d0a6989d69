//! The `KvAdmin` gRPC service: cluster state for operators, and join/leave/remove.

use std::sync::Arc;

use futures::future::BoxFuture;
use tonic::{Request, Response, Status};

use super::claim::{RingChange, TransferDone, claimant};
use super::convert;
use super::topology::{FORWARDED, Topology};
use crate::cluster::pb;
use crate::cluster::pb::kv_admin_server::{KvAdmin, KvAdminServer};
use crate::error::KvError;
use crate::storage::HintBacklog;

/// Where the hinted-handoff backlog comes from (the node's store: `ReadView::hint_summary`).
pub type HandoffSource =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Vec<HintBacklog>, KvError>> + Send + Sync>;

/// Where the anti-entropy status comes from (`None`: anti-entropy does not run here).
pub type AaeSource = Arc<dyn Fn() -> Option<pb::AaeStatusResponse> + Send + Sync>;

/// The `KvAdmin` service of one node.
#[derive(Clone)]
pub struct KvAdminService {
    /// The map authority: views of the ring, and where changes are decided or forwarded.
    topology: Topology,
    /// The node's hint backlog, when handoff runs.
    handoffs: Option<HandoffSource>,
    /// The node's anti-entropy status, when it runs.
    aae: Option<AaeSource>,
}

impl std::fmt::Debug for KvAdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvAdminService")
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

impl KvAdminService {
    /// The service over this node's map authority; handoff and AAE views are empty until
    /// their sources are given.
    pub fn new(topology: Topology) -> Self {
        Self {
            topology,
            handoffs: None,
            aae: None,
        }
    }

    /// Reports the hint backlog from `source`.
    #[must_use]
    pub fn with_handoffs(mut self, source: HandoffSource) -> Self {
        self.handoffs = Some(source);
        self
    }

    /// Reports anti-entropy status from `source`.
    #[must_use]
    pub fn with_aae(mut self, source: AaeSource) -> Self {
        self.aae = Some(source);
        self
    }

    /// The tonic server to add to the node's routes.
    pub fn into_server(self) -> KvAdminServer<Self> {
        KvAdminServer::new(self)
    }

    async fn change<T>(
        &self,
        request: &Request<T>,
        change: RingChange,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let forwarded = request.metadata().get(FORWARDED).is_some();
        let (map, changed) = self.topology.submit(change, forwarded).await?;
        Ok(Response::new(pb::ChangeResponse {
            map: Some(convert::map_to_message(&map)?),
            changed,
        }))
    }
}

#[tonic::async_trait]
impl KvAdmin for KvAdminService {
    async fn members(
        &self,
        _: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let gossip = self
            .topology
            .gossip()
            .map(|g| g.members())
            .unwrap_or_default();
        Ok(Response::new(pb::MembersResponse {
            node_id: self.topology.local().id.to_string(),
            members: convert::members(&self.topology.map(), &gossip),
        }))
    }

    async fn ring(
        &self,
        _: Request<pb::RingRequest>,
    ) -> Result<Response<pb::RingResponse>, Status> {
        let map = self.topology.map();
        Ok(Response::new(convert::ring(&map, claimant(&map))))
    }

    async fn partition_owners(
        &self,
        request: Request<pb::PartitionOwnersRequest>,
    ) -> Result<Response<pb::PartitionOwnersResponse>, Status> {
        Ok(Response::new(convert::partitions(
            &self.topology.map(),
            request.get_ref(),
        )?))
    }

    async fn handoffs(
        &self,
        _: Request<pb::HandoffsRequest>,
    ) -> Result<Response<pb::HandoffsResponse>, Status> {
        let backlog = match &self.handoffs {
            Some(source) => source().await?,
            None => Vec::new(),
        };
        Ok(Response::new(convert::handoffs(
            &self.topology.local().id,
            backlog,
        )))
    }

    async fn aae_status(
        &self,
        _: Request<pb::AaeStatusRequest>,
    ) -> Result<Response<pb::AaeStatusResponse>, Status> {
        let status = self
            .aae
            .as_ref()
            .and_then(|source| source())
            .unwrap_or_default();
        Ok(Response::new(pb::AaeStatusResponse {
            node_id: self.topology.local().id.to_string(),
            ..status
        }))
    }

    async fn join(
        &self,
        request: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let member = convert::member_from_join(request.get_ref())?;
        let rows = request.get_ref().stored_rows;
        let known = self
            .topology
            .map()
            .member(&member.id)
            .is_some_and(|m| m.grpc_addr == member.grpc_addr);
        if rows > 0 && !known {
            return Err(KvError::RingChange(format!(
                "{} already stores {rows} rows (an earlier life of a node?): a joining node must start \
                 with an empty data directory, or keys deleted since could come back",
                member.id
            ))
            .into());
        }
        self.change(&request, RingChange::Join(member)).await
    }

    async fn leave(
        &self,
        request: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let id = convert::node_id(&request.get_ref().node_id, "node_id")?;
        self.change(&request, RingChange::Leave(id)).await
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let id = convert::node_id(&request.get_ref().node_id, "node_id")?;
        self.change(&request, RingChange::Remove(id)).await
    }

    async fn complete_transfer(
        &self,
        request: Request<pb::CompleteTransferRequest>,
    ) -> Result<Response<pb::ChangeResponse>, Status> {
        let map = self.topology.map();
        let transfers = &request.get_ref().transfers;
        if transfers.is_empty() {
            return Err(
                KvError::InvalidArgument("CompleteTransfer names no transfer".into()).into(),
            );
        }
        let mut done = Vec::with_capacity(transfers.len());
        for t in transfers {
            done.push(TransferDone {
                partition: map
                    .ring()
                    .partition_id(t.partition)
                    .map_err(|e| KvError::InvalidArgument(e.to_string()))?,
                from: convert::node_id(&t.from, "from")?,
                to: convert::node_id(&t.to, "to")?,
                since: t.since,
            });
        }
        let change = RingChange::Complete(done);
        self.change(&request, change).await
    }

    async fn get_cluster_map(
        &self,
        _: Request<pb::GetClusterMapRequest>,
    ) -> Result<Response<pb::ClusterMapMessage>, Status> {
        Ok(Response::new(self.topology.map_message()?))
    }
}
