//! The `KvAdmin` service called directly (no network): views, changes on the claimant, and bad
//! input answered with INVALID_ARGUMENT or FAILED_PRECONDITION and a message that says why.

use std::collections::BTreeSet;
use std::sync::Arc;

use ringkit_hashring::{NodeId, RingConfig};
use tokio::sync::watch;
use tonic::{Code, Request};

use super::{KvAdminService, Topology, TopologyConfig, convert};
use crate::cluster::channels::{Channels, TcpConnector};
use crate::cluster::pb;
use crate::cluster::pb::kv_admin_server::KvAdmin;
use crate::cluster::topology::{ClusterMap, LiveSet, Member};

fn service(live: &[&str]) -> (KvAdminService, watch::Sender<Arc<ClusterMap>>) {
    let members: Vec<Member> = ["a", "b", "c"]
        .iter()
        .map(|n| Member::new(*n, format!("{n}:50071")))
        .collect();
    let map = ClusterMap::bootstrap(RingConfig::for_cluster_size(8), members.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    let (map_tx, map_rx) = watch::channel(Arc::new(map));
    let live: LiveSet = Arc::new(
        live.iter()
            .map(|n| NodeId::from(*n))
            .collect::<BTreeSet<_>>(),
    );
    let (_live_tx, live_rx) = watch::channel(live);
    let channels = Channels::new(Arc::new(TcpConnector::default()), map_rx);
    // "a" is the claimant (smallest id), so every change is decided here, without a network.
    let topology = Topology::new(
        members[0].clone(),
        map_tx.clone(),
        live_rx,
        channels,
        None,
        TopologyConfig::default(),
    );
    (KvAdminService::new(topology), map_tx)
}

fn join(id: &str, grpc: &str, gossip: &str) -> Request<pb::JoinRequest> {
    Request::new(pb::JoinRequest {
        node_id: id.into(),
        grpc_addr: grpc.into(),
        gossip_addr: gossip.into(),
        zone: String::new(),
        stored_rows: 0,
    })
}

#[tokio::test]
async fn views_describe_the_ring() {
    let (svc, _map) = service(&["a", "b", "c"]);
    let ring = svc
        .ring(Request::new(pb::RingRequest {}))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert_eq!(
        (ring.claimant.as_str(), ring.nodes.len(), ring.replicas),
        ("a", 3, 3)
    );
    assert_eq!(
        ring.nodes.iter().map(|n| n.owned).sum::<u32>(),
        ring.partitions
    );
    let owners = svc
        .partition_owners(Request::new(pb::PartitionOwnersRequest {
            key: b"user:42".to_vec().into(),
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert_eq!(owners.partitions.len(), 1);
    assert_eq!(owners.partitions[0].replicas.len(), 3);
    let members = svc
        .members(Request::new(pb::MembersRequest {}))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert_eq!(
        members.members.len(),
        3,
        "ring members are listed even without gossip"
    );
    let wire = svc
        .get_cluster_map(Request::new(pb::GetClusterMapRequest {}))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert_eq!(
        convert::map_from_message(&wire).map(|m| m.epoch()).ok(),
        Some(ring.epoch)
    );
    let aae = svc
        .aae_status(Request::new(pb::AaeStatusRequest {}))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert!(!aae.enabled);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_with_a_reason() {
    let (svc, _map) = service(&["a", "b", "c"]);
    let cases: Vec<(
        Result<tonic::Response<pb::ChangeResponse>, tonic::Status>,
        &str,
    )> = vec![
        (
            svc.join(join("", "d:1", "")).await,
            "node_id must be 1 to 255 bytes",
        ),
        (svc.join(join("d", " ", "")).await, "grpc_addr is empty"),
        (
            svc.join(join("d", "d:1", "not-an-address")).await,
            "not an ip:port",
        ),
        (
            svc.join(join("b", "elsewhere:1", "")).await,
            "already a member",
        ),
        (
            svc.leave(Request::new(pb::LeaveRequest {
                node_id: "zz".into(),
            }))
            .await,
            "not a member",
        ),
        (
            svc.complete_transfer(Request::new(pb::CompleteTransferRequest {
                transfers: vec![pb::Transfer {
                    partition: 1 << 30,
                    from: "a".into(),
                    to: "b".into(),
                    since: 0,
                }],
            }))
            .await,
            "does not exist",
        ),
    ];
    for (result, needle) in cases {
        let status = result.err().unwrap_or_else(|| panic!("{needle}: accepted"));
        assert_eq!(status.code(), Code::InvalidArgument, "{needle}: {status:?}");
        assert!(
            status.message().contains(needle),
            "{needle}: {}",
            status.message()
        );
    }
    let owners = svc
        .partition_owners(Request::new(pb::PartitionOwnersRequest {
            partition: 1 << 30,
            has_partition: true,
            ..Default::default()
        }))
        .await;
    assert_eq!(owners.err().map(|s| s.code()), Some(Code::InvalidArgument));
}

#[tokio::test]
async fn changes_are_decided_here_one_at_a_time() {
    let (svc, map) = service(&["a", "b"]);
    let before = map.borrow().epoch();
    // c is down according to gossip: remove is allowed; b is alive: remove is refused.
    let refused = svc
        .remove(Request::new(pb::RemoveRequest {
            node_id: "b".into(),
        }))
        .await;
    let status = refused
        .err()
        .unwrap_or_else(|| panic!("remove of a live node accepted"));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("use `leave`"),
        "{}",
        status.message()
    );
    let joined = svc
        .join(join("d", "d:50071", "127.0.0.1:7104"))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert!(joined.changed);
    assert_eq!(
        map.borrow().epoch(),
        before + 1,
        "the claimant published the new map"
    );
    assert!(!map.borrow().pending().is_empty());
    let again = svc
        .join(join("d", "d:50071", "127.0.0.1:7104"))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert!(!again.changed, "a retried join changes nothing");
    let busy = svc
        .leave(Request::new(pb::LeaveRequest {
            node_id: "b".into(),
        }))
        .await;
    let status = busy
        .err()
        .unwrap_or_else(|| panic!("a second change during transfers accepted"));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("in progress"),
        "{}",
        status.message()
    );
    let removed = svc
        .remove(Request::new(pb::RemoveRequest {
            node_id: "c".into(),
        }))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert!(
        removed.changed,
        "remove of a dead node is accepted even during transfers"
    );
    assert!(map.borrow().member(&NodeId::from("c")).is_none());
}

#[tokio::test]
async fn the_saved_map_is_restored_and_kept_current() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("cluster-map.json");
    let (svc, map) = service(&["a", "b", "c"]);
    drop(svc);
    // A map two changes ahead of the bootstrap one, saved by an earlier life.
    let base = map.borrow().clone();
    let ahead = ClusterMap::new(
        base.ring()
            .with_members(base.ring().nodes().iter().cloned())
            .and_then(|r| r.with_members(r.nodes().iter().cloned()))
            .unwrap_or_else(|e| panic!("{e}")),
        base.members().cloned().collect(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    super::persist::save(&path, &ahead).unwrap_or_else(|e| panic!("{e}"));
    let (map_tx, map_rx) = watch::channel(Arc::clone(&base));
    let (_live_tx, live_rx) = watch::channel(LiveSet::default());
    let channels = Channels::new(Arc::new(TcpConnector::default()), map_rx);
    let config = TopologyConfig {
        state_file: Some(path.clone()),
        ..TopologyConfig::default()
    };
    let local = base
        .member(&NodeId::from("a"))
        .cloned()
        .unwrap_or_else(|| panic!("a"));
    let topology = Topology::new(local, map_tx, live_rx, channels, None, config);
    assert_eq!(topology.map().epoch(), ahead.epoch(), "restored at start");
    // A change is saved.
    let svc = KvAdminService::new(topology.clone());
    svc.join(join("d", "d:50071", ""))
        .await
        .unwrap_or_else(|s| panic!("{s}"));
    let want = topology.map().epoch();
    for _ in 0..200 {
        if super::persist::load(&path)
            .ok()
            .flatten()
            .is_some_and(|m| m.epoch() == want)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the change was not saved to {}", path.display());
}

#[tokio::test]
async fn a_newcomer_with_data_is_refused() {
    let (svc, map) = service(&["a", "b", "c"]);
    let mut request = join("d", "d:50071", "");
    request.get_mut().stored_rows = 12;
    let status = svc
        .join(request)
        .await
        .err()
        .unwrap_or_else(|| panic!("a non-empty newcomer joined"));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("empty data directory"),
        "{}",
        status.message()
    );
    assert!(map.borrow().member(&NodeId::from("d")).is_none());
    // A member retrying its own join (it already holds its share) is not refused.
    let mut retry = join("b", "b:50071", "");
    retry.get_mut().stored_rows = 12;
    let reply = svc
        .join(retry)
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner();
    assert!(!reply.changed);
}
