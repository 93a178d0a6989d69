//! Many kv nodes as one Dynamo-style cluster: placement, replication with N/R/W quorums, sloppy
//! quorum with hinted handoff, read repair, anti-entropy and membership.
//!
//! Every decision is a sans-IO state machine (pure structs, time passed in) with unit tests; thin
//! tokio shells run them. The network is reached only through two seams, so the turmoil
//! simulation runs the real code: [`channels::Channels`] (gRPC channels built by a pluggable
//! [`channels::Connector`]) and gossip's datagram socket.
//!
//! # Layout
//! - [`topology`]: [`ClusterMap`](topology::ClusterMap) (ring, member addresses, transfers in
//!   progress), [`ReplicaSet`](topology::ReplicaSet), [`LiveSet`](topology::LiveSet).
//! - [`channels`]: one lazily connected gRPC channel per member.
//! - [`peers`]: the [`ReplicaPeers`](peers::ReplicaPeers) trait (merge and read objects on other
//!   nodes) and its gRPC implementation.
//! - [`plan`]: sans-IO: which nodes a read or write involves (sloppy stand-ins, forwarding).
//! - [`write_quorum`], [`read_quorum`]: sans-IO: counting acknowledgements; merging answers and
//!   choosing the replicas to repair.
//! - [`scan`]: sans-IO: merging per-node scan pages into one cluster page.
//! - [`coordinator`]: the async coordinator (local apply, parallel replication at W, reads at
//!   R with merge and read repair); [`batching`]: coalescing concurrent calls per peer.
//! - [`replica_service`]: the internal `Replica` gRPC service; [`kv_service`]: the client API
//!   in cluster mode (routing, forwarding, batches, scatter scan).
//! - [`config`], [`node`], [`assemble`]: [`ClusterNode`](node::ClusterNode), one member wired
//!   and served; [`ClusterNode::start`](node::ClusterNode::start) assembles a complete one.
//! - [`gossip`]: SWIM liveness over UDP; [`admin`] and [`transfer`]: the map authority
//!   (join, leave, remove) and partition streaming.
//! - [`hints`]: hinted handoff: durable hints for unreachable replicas and the task that hands
//!   them back.
//! - [`aae`]: active anti-entropy: Merkle trees per partition, exchanges, repair, reaping.
//! - [`pb`]: generated code of the internal `ringkit.kv.cluster.v1` protocols.

pub mod aae;
pub mod admin;
pub mod assemble;
pub mod batching;
pub mod channels;
pub mod config;
pub mod coordinator;
mod fanout;
pub mod gossip;
pub mod hints;
pub mod kv_service;
pub mod node;
pub mod peers;
pub mod plan;
pub mod read_quorum;
pub mod replica_service;
pub mod scan;
pub mod topology;
pub mod transfer;
pub mod write_quorum;

/// Largest internal message (a merge batch, a read answer): room for a batch of large objects.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Generated protobuf and tonic code for the internal `ringkit.kv.cluster.v1` services.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("ringkit.kv.cluster.v1");

    /// The encoded descriptor set of every kv proto (client API and internal services), served
    /// by gRPC reflection on cluster nodes.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/kv_cluster_descriptor.bin"));
}
