//! Ownership changes under load, in one process on 127.0.0.1:0 with real gRPC and real UDP
//! gossip: a fourth node joins a three-node cluster while a writer keeps writing and its
//! partitions stream to it, then a node leaves and hands its partitions off; a crashed node is
//! removed and its partitions rebuilt from the survivors. Every acknowledged write must still be
//! readable at the end, and every owner must hold its keys. Bounded in time; every node, task and
//! socket is stopped.

mod harness;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{
    Running, TEST_BOUND, bind, channel, lost, owners_hold_their_keys, settled, start, writer,
};
use ringkit_hashring::NodeId;
use ringkit_kv::cluster::pb;
use ringkit_kv::cluster::pb::kv_admin_client::KvAdminClient;
use ringkit_kv::cluster::topology::{ClusterMap, Member};
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_leaves_under_load_without_losing_a_write() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut sockets = Vec::new();
        for name in ["n0", "n1", "n2", "n3"] {
            sockets.push(bind(name).await);
        }
        let founders: Vec<Member> = sockets[..3].iter().map(|s| s.0.clone()).collect();
        let seed: SocketAddr = founders[0]
            .gossip_addr
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("seed"));
        let mut sockets = sockets.into_iter();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let s = sockets.next().unwrap_or_else(|| panic!("sockets"));
            nodes.push(start(i, s, founders.clone(), vec![seed]).await);
        }
        let epoch0 = nodes[0].topology.map().epoch();

        let addrs: Vec<String> = founders.iter().map(|m| m.grpc_addr.clone()).collect();
        let (stop_writer, stopped) = oneshot::channel();
        let load = writer(addrs.clone(), stopped);
        // Past the claimant's start-up grace (two re-announce periods) so it decides at once.
        tokio::time::sleep(Duration::from_millis(1200)).await;

        // n3 joins through n1 (not the claimant: the request is forwarded).
        let s3 = sockets.next().unwrap_or_else(|| panic!("sockets"));
        let solo = vec![s3.0.clone()];
        // No gossip seed: the claimant introduces itself when it installs the map with n3.
        nodes.push(start(3, s3, solo, vec![]).await);
        let joined = nodes[3]
            .topology
            .join_through(&founders[1].grpc_addr)
            .await
            .unwrap_or_else(|e| panic!("join: {e}"));
        assert!(joined.epoch() > epoch0);
        assert!(
            !joined.pending().is_empty(),
            "the join streams partitions to n3"
        );
        let join_transfers: usize = joined.pending().values().map(Vec::len).sum();
        let all: Vec<&Running> = nodes.iter().collect();
        let after_join = settled(&all, joined.epoch() + 1).await;
        assert!(after_join.ring().node(&NodeId::from("n3")).is_some());
        assert!(after_join.ring().slots_of(&NodeId::from("n3")).count() > 0);

        // n2 leaves, asked through the admin API of n3 (forwarded to the claimant n0).
        let mut admin = KvAdminClient::new(channel(&nodes[3].member.grpc_addr).await);
        let change = admin
            .leave(pb::LeaveRequest {
                node_id: "n2".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("leave: {s}"))
            .into_inner();
        assert!(change.changed);
        let leave_transfers = change
            .map
            .as_ref()
            .and_then(|m| serde_json::from_slice::<ClusterMap>(&m.json).ok())
            .map_or(0, |m| m.pending().values().map(Vec::len).sum::<usize>());
        assert!(leave_transfers > 0, "n2's partitions must be handed off");
        let rest: Vec<&Running> = [0, 1, 3].iter().map(|&i| &nodes[i]).collect();
        let after_leave = settled(&rest, change.map.as_ref().map_or(0, |m| m.epoch) + 1).await;
        assert!(
            after_leave.member(&NodeId::from("n2")).is_none(),
            "n2 is off the map once handed off"
        );

        let _ = stop_writer.send(());
        let acked = load.await.unwrap_or_else(|e| panic!("writer: {e}"));
        assert!(
            acked.len() > 50,
            "the writer made progress: {} writes",
            acked.len()
        );
        nodes[2].stop().await;

        // Every acknowledged write is readable from the remaining three nodes.
        let rest: Vec<&Running> = [0, 1, 3].iter().map(|&i| &nodes[i]).collect();
        let missing = lost(&rest, &acked).await;
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost: {missing:?}",
            missing.len(),
            acked.len()
        );
        owners_hold_their_keys(&rest, &after_leave, &acked).await;
        println!(
            "{} acknowledged writes, all readable; join moved {join_transfers} partition slots \
             in {} completion epochs, leave {leave_transfers}",
            acked.len(),
            after_join.epoch() - joined.epoch()
        );
        for i in [0, 1, 3] {
            nodes[i].stop().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_removed_and_its_partitions_rebuilt_from_the_survivors() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut sockets = Vec::new();
        for name in ["n0", "n1", "n2", "n3"] {
            sockets.push(bind(name).await);
        }
        let members: Vec<Member> = sockets.iter().map(|s| s.0.clone()).collect();
        let seed: SocketAddr = members[0]
            .gossip_addr
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("seed"));
        let mut nodes = Vec::new();
        for (i, s) in sockets.into_iter().enumerate() {
            nodes.push(start(i as u64, s, members.clone(), vec![seed]).await);
        }
        let addrs: Vec<String> = members[..3].iter().map(|m| m.grpc_addr.clone()).collect();
        let (stop_writer, stopped) = oneshot::channel();
        let load = writer(addrs, stopped);
        tokio::time::sleep(Duration::from_millis(1200)).await;

        // n3 crashes: gossip notices, the ring does not change by itself.
        let epoch = nodes[0].topology.map().epoch();
        nodes[3].stop().await;
        let gone = NodeId::from("n3");
        let noticed = async {
            while nodes[..3].iter().any(|n| n.topology.live().contains(&gone)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), noticed)
            .await
            .unwrap_or_else(|_| panic!("n3's crash went unnoticed"));
        assert_eq!(
            nodes[0].topology.map().epoch(),
            epoch,
            "a crash is not a departure"
        );
        assert!(nodes[0].topology.map().member(&gone).is_some());

        let mut admin = KvAdminClient::new(channel(&nodes[2].member.grpc_addr).await);
        let change = admin
            .remove(pb::RemoveRequest {
                node_id: "n3".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("remove: {s}"))
            .into_inner();
        assert!(change.changed);
        let survivors: Vec<&Running> = nodes[..3].iter().collect();
        let after = settled(&survivors, change.map.as_ref().map_or(0, |m| m.epoch) + 1).await;
        assert!(after.member(&gone).is_none());

        let _ = stop_writer.send(());
        let acked = load.await.unwrap_or_else(|e| panic!("writer: {e}"));
        assert!(
            acked.len() > 50,
            "the writer made progress: {} writes",
            acked.len()
        );
        let missing = lost(&survivors, &acked).await;
        assert!(
            missing.is_empty(),
            "{} of {} acknowledged writes lost: {missing:?}",
            missing.len(),
            acked.len()
        );
        owners_hold_their_keys(&survivors, &after, &acked).await;
        println!(
            "n3 removed after its crash; {} acknowledged writes, all readable and fully replicated",
            acked.len()
        );
        for node in &mut nodes[..3] {
            node.stop().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
}
