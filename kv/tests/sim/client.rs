//! A simulated client's view of the cluster: one lazily connected gRPC channel per node, and
//! the three calls the workload makes, each bounded by a deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use ringkit_kv::grpc::pb;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use tonic::transport::Channel;

use super::net::channel;

/// Simulated milliseconds since the run started (0 outside a host).
pub(crate) fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A successful read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Read {
    /// The visible values, as UTF-8 (the workload writes only text).
    pub(crate) values: Vec<String>,
    /// The context to write back with.
    pub(crate) context: Bytes,
}

/// gRPC clients for every node, keyed by node host name.
#[derive(Clone, Debug)]
pub(crate) struct Clients {
    /// One client per node.
    by_node: BTreeMap<String, KvClient<Channel>>,
}

/// A failed call, rendered for the history ("Unavailable: got 1 of 2 ...").
fn failure(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl Clients {
    /// Clients for `nodes`, each request bounded by `deadline` of simulated time.
    pub(crate) fn new(nodes: &[String], deadline: Duration) -> Self {
        let by_node = nodes
            .iter()
            .map(|n| (n.clone(), KvClient::new(channel(n, deadline))))
            .collect();
        Self { by_node }
    }

    fn client(&self, node: &str) -> Result<KvClient<Channel>, String> {
        self.by_node
            .get(node)
            .cloned()
            .ok_or_else(|| format!("no such node {node}"))
    }

    /// Puts `value` under `key` through `node`, returning the new context.
    ///
    /// # Errors
    /// The call failed: the outcome is unknown.
    pub(crate) async fn put(
        &self,
        node: &str,
        key: &str,
        value: &str,
        context: Bytes,
    ) -> Result<Bytes, String> {
        let request = pb::PutRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            context,
            ..Default::default()
        };
        let reply = self.client(node)?.put(request).await;
        reply
            .map(|r| r.into_inner().context)
            .map_err(|s| failure(&s))
    }

    /// Deletes what `context` covers of `key` through `node`.
    ///
    /// # Errors
    /// The call failed: the outcome is unknown.
    pub(crate) async fn delete(&self, node: &str, key: &str, context: Bytes) -> Result<(), String> {
        let request = pb::DeleteRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            context,
            quorum: None,
        };
        let reply = self.client(node)?.delete(request).await;
        reply.map(|_| ()).map_err(|s| failure(&s))
    }

    /// Reads `key` through `node` (default R).
    ///
    /// # Errors
    /// The call failed.
    pub(crate) async fn get(&self, node: &str, key: &str) -> Result<Read, String> {
        let request = pb::GetRequest {
            key: Bytes::copy_from_slice(key.as_bytes()),
            quorum: None,
        };
        let reply = self
            .client(node)?
            .get(request)
            .await
            .map_err(|s| failure(&s))?
            .into_inner();
        let mut values: Vec<String> = reply
            .siblings
            .iter()
            .map(|s| String::from_utf8_lossy(&s.value).into_owned())
            .collect();
        values.sort();
        Ok(Read {
            values,
            context: reply.context,
        })
    }
}
