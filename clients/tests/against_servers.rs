//! The client-only stubs of this crate against the real servers, on 127.0.0.1:0: proves the
//! protos compiled here and in the service crates are the same wire.

use std::sync::Arc;

use ringkit_clients::pb::{idgen::v1 as idgen, kv::v1 as kv};
use ringkit_clients::{RingRouter, connect};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Starts `serve` on a fresh loopback port; returns its address and the stop switch.
async fn spawn_on_loopback<F, Fut>(
    serve: F,
) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>)
where
    F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(serve(listener, stopped));
    (addr, stop, task)
}

#[tokio::test]
async fn idgen_stubs_talk_to_the_idgen_server() {
    let handle = ringkit_idgen::start(
        ringkit_idgen::GeneratorConfig::default(),
        7,
        ringkit_idgen::SystemClock,
        ringkit_idgen::MemoryMarkStore::new(),
    )
    .unwrap();
    let service = ringkit_idgen::grpc::IdGenService::new(handle.generator());
    let (addr, stop, task) = spawn_on_loopback(|listener, stopped| async move {
        ringkit_idgen::grpc::serve_listener(service, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    })
    .await;

    let mut client = idgen::id_gen_client::IdGenClient::new(connect(&addr).await.unwrap());
    let ids = client
        .next_ids(idgen::NextIdsRequest { count: 100 })
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(ids.len(), 100);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
    let decoded = client
        .decode(idgen::DecodeRequest {
            id: ids[0].to_string(),
            encoding: idgen::Encoding::Decimal.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decoded.worker, 7);

    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn kv_stubs_and_the_router_reach_a_kv_node() {
    let dir = tempfile::tempdir().unwrap();
    let store = ringkit_kv::storage::SqliteStorage::open(ringkit_kv::storage::SqliteConfig::new(
        dir.path(),
        "clients-test",
    ))
    .unwrap();
    let node = ringkit_kv::node::KvNode::new(
        store,
        ringkit_kv::node::NodeConfig::new("node-1"),
        Arc::new(ringkit_kv::clock::SystemClock),
    )
    .unwrap();
    let (addr, stop, task) = spawn_on_loopback(|listener, stopped| async move {
        ringkit_kv::grpc::serve_listener(node, listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    })
    .await;

    // A one-member ring: the router must hand back that member's channel for every key.
    let router = RingRouter::static_members([("node-1", addr.as_str())]).unwrap();
    let (owner, channel) = router.owner(b"greeting").unwrap();
    assert_eq!(owner.as_str(), "node-1");
    let mut client = kv::kv_client::KvClient::new(channel);
    client
        .put(kv::PutRequest {
            key: "greeting".into(),
            value: "hello".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = client
        .get(kv::GetRequest {
            key: "greeting".into(),
            quorum: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(got.found);
    assert_eq!(got.siblings.len(), 1);
    assert_eq!(&got.siblings[0].value[..], b"hello");

    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn kv_admin_stubs_talk_to_a_cluster_node() {
    use ringkit_clients::pb::kv::cluster::v1 as admin;
    use ringkit_kv::cluster::assemble::ClusterNodeConfig;
    use ringkit_kv::cluster::channels::TcpConnector;
    use ringkit_kv::cluster::config::ClusterConfig;
    use ringkit_kv::cluster::node::ClusterNode;
    use ringkit_kv::cluster::topology::Member;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = ClusterNodeConfig::new(ClusterConfig::new(
        "n1",
        vec![Member::new("n1", addr.clone())],
    ));
    config.node.maintenance.tombstone_grace = None;
    let node = ClusterNode::start(
        config,
        ringkit_kv::storage::MemStorage::new(ringkit_kv::model::ActorId(1)),
        Arc::new(ringkit_kv::clock::SystemClock),
        Arc::new(TcpConnector::default()),
        None::<tokio::net::UdpSocket>,
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.serve_listener(listener, async {
        let _ = stopped.await;
    }));

    let mut client = admin::kv_admin_client::KvAdminClient::new(connect(&addr).await.unwrap());
    let ring = client
        .ring(admin::RingRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ring.claimant.as_str(), ring.nodes.len()), ("n1", 1));
    assert_eq!(ring.nodes[0].owned, ring.partitions);
    let members = client
        .members(admin::MembersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    let owners = client
        .partition_owners(admin::PartitionOwnersRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(owners.partitions[0].replicas, vec!["n1".to_string()]);
    // Bad requests are INVALID_ARGUMENT with a reason.
    let last = client
        .leave(admin::LeaveRequest {
            node_id: "n1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(last.code(), tonic::Code::InvalidArgument);
    assert!(last.message().contains("last member"), "{}", last.message());
    let unknown = client
        .remove(admin::RemoveRequest {
            node_id: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
