//! Real UDP on loopback: members find each other, notice a crash and a departure.

use std::collections::BTreeSet;
use std::time::Duration;

use ringkit_hashring::NodeId;
use ringkit_hashring::membership::MemberState;
use tokio::net::UdpSocket;

use super::*;

/// Bound for every wait: far above the 2 s detection, so only a real failure trips it.
const PATIENCE: Duration = Duration::from_secs(20);

async fn start(name: &str, seeds: Vec<std::net::SocketAddr>) -> GossipHandle {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = GossipConfig::new(name, format!("{name}:50071"), seeds);
    config.rng_seed = name.len() as u64;
    spawn(config, socket).unwrap()
}

async fn wait_live(h: &GossipHandle, want: &[&str]) {
    let want: BTreeSet<NodeId> = want.iter().map(|&n| NodeId::from(n)).collect();
    let mut rx = h.live();
    tokio::time::timeout(PATIENCE, rx.wait_for(|live| **live == want))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "{} never saw {want:?}; members {:?}",
                h.identity(),
                h.members()
            )
        })
        .unwrap();
}

#[tokio::test]
async fn three_members_see_a_crash_and_a_departure() {
    let a = start("a", vec![]).await;
    let seed = a.identity().gossip_addr;
    let b = start("b", vec![seed]).await;
    let c = start("c", vec![seed]).await;
    let d = start("d", vec![seed]).await;
    for h in [&a, &b, &c, &d] {
        wait_live(h, &["a", "b", "c", "d"]).await;
    }
    // d crashes: no farewell; SWIM must detect it.
    d.shutdown().await;
    for h in [&a, &b, &c] {
        wait_live(h, &["a", "b", "c"]).await;
    }
    let seen = a.members();
    let d_state = seen
        .iter()
        .find(|m| m.identity.node.as_str() == "d")
        .map(|m| m.state);
    assert_eq!(d_state, Some(MemberState::Down));
    // c leaves gracefully.
    c.leave().await;
    for h in [&a, &b] {
        wait_live(h, &["a", "b"]).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn configured_members_are_assumed_live_until_gossip_knows() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut config = GossipConfig::new("solo", "solo:1", vec![]);
    config.assume_live = vec![NodeId::from("x"), NodeId::from("y")];
    config.assume_live_for = Duration::from_millis(200);
    let h = spawn(config, socket).unwrap();
    assert_eq!(h.live().borrow().len(), 3);
    // Nobody answers: after the grace only the node itself is live.
    wait_live(&h, &["solo"]).await;
    h.shutdown().await;
}
