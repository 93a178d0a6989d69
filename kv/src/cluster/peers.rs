//! [`ReplicaPeers`]: how a node moves objects to and from other replicas.
//!
//! The coordinator, read repair, hinted handoff, anti-entropy and partition transfer all speak
//! this one small trait. The production implementation, [`GrpcPeers`], calls the `Replica` gRPC
//! service through [`Channels`]; tests can implement it in memory.

use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::NodeId;

use super::channels::Channels;
use super::pb;
use super::pb::replica_client::ReplicaClient;
use crate::error::KvError;
use crate::model::{Object, decode_object, encode_object};

/// Moving objects between replicas.
#[async_trait::async_trait]
pub trait ReplicaPeers: Send + Sync + 'static {
    /// Merges `items` into `to`'s store; with `hint_for`, `to` keeps them as durable hints for
    /// that node. Returns once `to` has applied them durably.
    ///
    /// # Errors
    /// The peer is unreachable, timed out, or refused the items.
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError>;

    /// `to`'s stored objects for `keys` (tombstones included), in order.
    ///
    /// # Errors
    /// The peer is unreachable, timed out, or sent a malformed answer.
    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError>;
}

/// [`ReplicaPeers`] over the `Replica` gRPC service.
#[derive(Clone, Debug)]
pub struct GrpcPeers {
    /// Connections to members.
    channels: Channels,
    /// This node's id, sent as `from` so receivers can log who wrote.
    local: NodeId,
    /// Deadline of one call: a slow replica must not hold a quorum hostage.
    timeout: Duration,
}

impl GrpcPeers {
    /// Peers reached through `channels`, each call bounded by `timeout`.
    pub fn new(channels: Channels, local: NodeId, timeout: Duration) -> Self {
        Self {
            channels,
            local,
            timeout,
        }
    }

    /// A client for `to`.
    fn client(&self, to: &NodeId) -> Result<ReplicaClient<tonic::transport::Channel>, KvError> {
        Ok(ReplicaClient::new(self.channels.get(to)?)
            .max_decoding_message_size(crate::cluster::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::cluster::MAX_MESSAGE_BYTES))
    }

    /// A request carrying the per-call deadline.
    fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(self.timeout);
        req
    }
}

#[async_trait::async_trait]
impl ReplicaPeers for GrpcPeers {
    async fn merge(
        &self,
        to: &NodeId,
        items: Vec<(Bytes, Object)>,
        hint_for: Option<&NodeId>,
    ) -> Result<(), KvError> {
        let msg = pb::MergeRequest {
            items: items
                .iter()
                .map(|(key, object)| pb::Item {
                    key: key.clone(),
                    object: Bytes::from(encode_object(object)),
                })
                .collect(),
            hint_for: hint_for.map(|h| h.to_string()).unwrap_or_default(),
            from: self.local.to_string(),
        };
        let mut client = self.client(to)?;
        let call = client.merge(self.request(msg));
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(_)) => Ok(()),
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

    async fn read(&self, to: &NodeId, keys: Vec<Bytes>) -> Result<Vec<Option<Object>>, KvError> {
        let wanted = keys.len();
        let mut client = self.client(to)?;
        let call = client.read(self.request(pb::ReadRequest { keys }));
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(r)) => r.into_inner(),
            Ok(Err(status)) => {
                return Err(KvError::Peer {
                    node: to.to_string(),
                    status: status.code(),
                    message: status.message().to_string(),
                });
            }
            Err(_) => {
                return Err(KvError::Timeout {
                    node: to.to_string(),
                });
            }
        };
        if reply.objects.len() != wanted {
            return Err(KvError::Internal(format!(
                "peer {to} answered {} objects for {wanted} keys",
                reply.objects.len()
            )));
        }
        reply
            .objects
            .into_iter()
            .map(|o| {
                if !o.found {
                    return Ok(None);
                }
                decode_object(&o.object)
                    .map(Some)
                    .map_err(|reason| KvError::Corrupt {
                        what: format!("object from peer {to}"),
                        reason,
                    })
            })
            .collect()
    }
}
