//! Shared test harness: nodes served on 127.0.0.1:0, stopped at the end of each test.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use ringkit_ratelimit::RateLimiter;
use ringkit_ratelimit::clock::MonotonicClock;
use ringkit_ratelimit::cluster::{Cluster, ClusterConfig, Peer};
use ringkit_ratelimit::counter::{Counter, LocalCounter};
use ringkit_ratelimit::grpc::{ServeOptions, serve};
use ringkit_ratelimit::policy::{Policies, parse_policy};
use ringkit_ratelimit::store::KeyedStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A policy used by most tests: long windows so that wall-clock time never matters.
pub const POLICY: &str = r#"
[[domain]]
name = "test"

[[domain.descriptor]]
key = "user"
requests = 5
window = "1h"
algorithm = "fixed_window"

[[domain.descriptor]]
key = "user"
value = "vip"
unlimited = true

[[domain.descriptor]]
key = "shadowed"
requests = 1
window = "1h"
shadow = true

[[domain.descriptor]]
key = "bucket"
requests = 1
window = "1h"
algorithm = "token_bucket"
burst = 10
"#;

/// A running node.
pub struct TestNode {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its limiter (to reach policies and store directly).
    pub limiter: RateLimiter,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestNode {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds 127.0.0.1:0.
pub async fn bind() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A local limiter over `policy`.
pub fn local_limiter(policy: &str) -> RateLimiter {
    let policies = Arc::new(Policies::new(parse_policy(policy, "test.toml").unwrap()));
    RateLimiter::local(
        policies,
        Arc::new(KeyedStore::default()),
        Arc::new(MonotonicClock::new()),
    )
}

/// Serves `limiter` on `listener`.
pub fn start_with(listener: TcpListener, limiter: RateLimiter) -> TestNode {
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let l = limiter.clone();
    let task = tokio::spawn(async move {
        serve(
            l,
            ServeOptions::default(),
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    TestNode {
        addr,
        limiter,
        stop: Some(stop),
        task: Some(task),
    }
}

/// A single node over `policy`.
pub async fn start(policy: &str) -> TestNode {
    let (listener, _) = bind().await;
    start_with(listener, local_limiter(policy))
}

/// `n` clustered nodes over `policy`, ids `n0`, `n1`, ...
pub async fn start_cluster(n: usize, policy: &str) -> Vec<TestNode> {
    let mut bound = Vec::new();
    for _ in 0..n {
        bound.push(bind().await);
    }
    let ids: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let mut nodes = Vec::new();
    for (i, (listener, _)) in bound.into_iter().enumerate() {
        let peers = (0..n)
            .filter(|&j| j != i)
            .map(|j| Peer {
                id: ids[j].clone(),
                addr: String::new(),
            })
            .collect::<Vec<_>>();
        nodes.push((listener, peers));
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|(l, _)| l.local_addr().unwrap()).collect();
    let mut out = Vec::new();
    for (i, (listener, mut peers)) in nodes.into_iter().enumerate() {
        for p in &mut peers {
            let j: usize = p.id[1..].parse().unwrap();
            p.addr = format!("http://{}", addrs[j]);
        }
        let config = ClusterConfig {
            node_id: ids[i].clone(),
            peers,
            ..ClusterConfig::default()
        };
        let policies = Arc::new(Policies::new(parse_policy(policy, "test.toml").unwrap()));
        let local = LocalCounter::new(
            Arc::new(KeyedStore::default()),
            Arc::new(MonotonicClock::new()),
        );
        let cluster = Cluster::start(config, local).unwrap();
        let limiter = RateLimiter::new(policies, Counter::Cluster(Arc::new(cluster)));
        out.push(start_with(listener, limiter));
    }
    out
}
