//! The in-process cluster harness shared by the cluster test files: nodes built with
//! `ClusterNode::new` (no gossip: tests set the live set themselves) over `MemStorage`, on
//! 127.0.0.1:0, and request helpers.

// Each test file compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::topology::{ClusterMap, LiveSet, Member};
use ringkit_kv::error::KvError;
use ringkit_kv::grpc::pb::{self, kv_client::KvClient};
use ringkit_kv::model::{ActorId, key_hash};
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::MemStorage;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Upper bound on any one test.
pub(crate) const TEST_BOUND: Duration = Duration::from_secs(60);

/// One running member.
pub(crate) struct Running {
    pub(crate) id: NodeId,
    pub(crate) addr: String,
    pub(crate) kv: KvNode<MemStorage>,
    pub(crate) live: watch::Sender<LiveSet>,
    pub(crate) stop: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<JoinHandle<Result<(), KvError>>>,
}

/// A cluster of in-process nodes.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<Running>,
    pub(crate) members: Vec<Member>,
}

impl Cluster {
    /// Binds every listener first, then builds the member list from the bound addresses.
    pub(crate) async fn start(size: usize) -> Cluster {
        let mut listeners = Vec::new();
        for _ in 0..size {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("bind: {e}"));
            listeners.push(l);
        }
        let members: Vec<Member> = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let addr = l.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
                Member::new(format!("n{i}"), addr.to_string())
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let id = NodeId::from(format!("n{i}"));
            let mut config = NodeConfig::new(id.as_str());
            config.maintenance.tombstone_grace = None;
            let kv = KvNode::new(
                MemStorage::new(ActorId(100 + i as u64)),
                config,
                Arc::new(SystemClock),
            )
            .unwrap_or_else(|e| panic!("node: {e}"));
            let mut cluster = ClusterConfig::new(id.clone(), members.clone());
            cluster.coordinator.replica_timeout = Duration::from_millis(500);
            let node = ClusterNode::new(kv.clone(), cluster, Arc::new(TcpConnector::default()))
                .unwrap_or_else(|e| panic!("cluster node: {e}"));
            let live = node.live_sender().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(node.serve_listener(listener, async {
                let _ = stopped.await;
            }));
            nodes.push(Running {
                id,
                addr: members[i].grpc_addr.clone(),
                kv,
                live,
                stop: Some(stop),
                task: Some(task),
            });
        }
        Cluster { nodes, members }
    }

    /// The key's write set (N=3) in this cluster's map.
    pub(crate) fn write_set(&self, key: &str) -> Vec<NodeId> {
        let map = ClusterMap::bootstrap(
            RingConfig::for_cluster_size(self.members.len()),
            self.members.clone(),
        )
        .unwrap_or_else(|e| panic!("map: {e}"));
        map.replica_set(key_hash(key.as_bytes()), 3).write
    }

    pub(crate) async fn channel(&self, i: usize) -> Channel {
        Channel::from_shared(format!("http://{}", self.nodes[i].addr))
            .unwrap_or_else(|e| panic!("uri: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    pub(crate) async fn client(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(i).await)
    }

    /// Stops node `i` and waits until it has drained.
    pub(crate) async fn stop(&mut self, i: usize) {
        if let Some(tx) = self.nodes[i].stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.nodes[i].task.take() {
            match t.await {
                Ok(Ok(())) => {}
                other => panic!("node {i} stopped badly: {other:?}"),
            }
        }
    }

    pub(crate) async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// Every node's live set: every member but `down`.
    pub(crate) fn set_down(&self, down: &[usize]) {
        let live: BTreeSet<NodeId> = (0..self.nodes.len())
            .filter(|i| !down.contains(i))
            .map(|i| self.nodes[i].id.clone())
            .collect();
        for n in &self.nodes {
            n.live.send_replace(Arc::new(live.clone()));
        }
    }
}

pub(crate) fn quorum(n: u32, r: u32, w: u32) -> Option<pb::Quorum> {
    Some(pb::Quorum { n, r, w, mode: 0 })
}

pub(crate) fn put(key: &str, value: &str, q: Option<pb::Quorum>) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::from(key.to_owned()),
        value: Bytes::from(value.to_owned()),
        quorum: q,
        ..Default::default()
    }
}

pub(crate) fn get(key: &str, q: Option<pb::Quorum>) -> pb::GetRequest {
    pb::GetRequest {
        key: Bytes::from(key.to_owned()),
        quorum: q,
    }
}

pub(crate) fn values(r: &pb::GetResponse) -> Vec<Bytes> {
    let mut v: Vec<Bytes> = r.siblings.iter().map(|s| s.value.clone()).collect();
    v.sort();
    v
}

/// Polls `f` every 20 ms until it holds, for at most 10 s.
pub(crate) async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

pub(crate) async fn stored(kv: &KvNode<MemStorage>, key: &str) -> bool {
    kv.read_objects(vec![Bytes::from(key.to_owned())])
        .await
        .map(|v| v.first().is_some_and(Option::is_some))
        .unwrap_or(false)
}
