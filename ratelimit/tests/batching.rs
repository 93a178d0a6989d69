//! Forwards to an owner leave in batches: a recording peer on 127.0.0.1:0 counts the `Apply`
//! calls it receives for many operations issued at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkit_ratelimit::algorithm::{Algorithm, Limit};
use ringkit_ratelimit::check::{Op, OpKind};
use ringkit_ratelimit::clock::MonotonicClock;
use ringkit_ratelimit::cluster::{Cluster, ClusterConfig, Peer, Routing};
use ringkit_ratelimit::counter::LocalCounter;
use ringkit_ratelimit::grpc::PeerService;
use ringkit_ratelimit::grpc::pb::ringkit::ratelimit::v1 as pb;
use ringkit_ratelimit::store::KeyedStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// A peer that records the size of every batch, then applies it to a real store.
#[derive(Clone)]
struct Recording {
    /// Ops per `Apply` call.
    batches: Arc<Mutex<Vec<usize>>>,
    /// The real work.
    inner: PeerService,
}

#[tonic::async_trait]
impl pb::cluster_peer_server::ClusterPeer for Recording {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        self.batches
            .lock()
            .unwrap()
            .push(request.get_ref().ops.len());
        pb::cluster_peer_server::ClusterPeer::apply(&self.inner, request).await
    }
}

fn local() -> LocalCounter {
    LocalCounter::new(
        Arc::new(KeyedStore::default()),
        Arc::new(MonotonicClock::new()),
    )
}

#[tokio::test]
async fn many_forwards_share_few_rpcs() {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let peer = Recording {
        batches: batches.clone(),
        inner: PeerService::new(local()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::cluster_peer_server::ClusterPeerServer::new(peer))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );

    let config = ClusterConfig {
        node_id: "me".into(),
        peers: vec![Peer {
            id: "them".into(),
            addr: format!("http://{addr}"),
        }],
        forward_timeout: Duration::from_secs(10),
        ..ClusterConfig::default()
    };
    let cluster = Cluster::start(config, local()).unwrap();
    let routing = Routing::new("me", ["me", "them"].map(String::from)).unwrap();
    let limit = Limit::new(Algorithm::FixedWindow, 3, Duration::from_secs(3600), None).unwrap();
    // 200 checks on keys owned by the peer, issued at once (e.g. by concurrent requests).
    let keys: Vec<Vec<u8>> = (0u32..)
        .map(|i| format!("key-{i}").into_bytes())
        .filter(|k| routing.owner(k).map(|n| n.as_str()) == Some("them"))
        .take(50)
        .collect();
    let ops: Vec<Op> = (0..4)
        .flat_map(|_| {
            keys.iter().map(|k| Op {
                kind: OpKind::Check,
                key: k.clone(),
                limit,
                cost: 1,
            })
        })
        .collect();
    let results = cluster.apply(&ops).await.unwrap();
    let admitted = results
        .iter()
        .filter(|r| r.decision.is_some_and(|d| d.allowed))
        .count();
    assert_eq!(
        admitted, 150,
        "3 of 4 hits per key pass, counted on the owner"
    );

    let batches = batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 200);
    assert!(
        batches.len() <= 4,
        "200 forwards took {} RPCs: {batches:?}",
        batches.len()
    );
    assert!(
        cluster.local().store.is_empty(),
        "nothing counted on the non-owner"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
