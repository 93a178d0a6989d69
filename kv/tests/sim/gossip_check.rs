//! The gossip plumbing under simulation: TOPOLOGY's real SWIM driver over [`SimUdp`] on three
//! simulated hosts. A crashed node must leave every other node's live set within the 2 s the
//! design promises (simulated time, so the bound is exact and deterministic), and come back
//! after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ringkit_kv::cluster::gossip::{GossipConfig, spawn};

use super::clock::epoch;
use super::udp::{GOSSIP_PORT, SimUdp, gossip_addr};

/// What each node last saw: node -> live set.
type Views = Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// One node's software: gossip, publishing its live set into `views`.
async fn gossip_node(name: &'static str, seed: u64, views: Views) -> turmoil::Result {
    let socket = SimUdp::bind(GOSSIP_PORT).await?;
    let seeds = NODES
        .iter()
        .filter(|n| **n != name)
        .map(|n| gossip_addr(n))
        .collect();
    let mut config = GossipConfig::new(name, format!("{name}:7000"), seeds);
    config.advertise = Some(gossip_addr(name));
    // A later life must have a larger incarnation: simulated wall-clock milliseconds.
    config.incarnation = turmoil::since_epoch().map_or(1, |d| d.as_millis() as u64);
    config.rng_seed = seed;
    config.assume_live = NODES.iter().map(|n| (*n).into()).collect();
    let handle = spawn(config, socket)?;
    let mut live = handle.live();
    loop {
        let set: BTreeSet<String> = live
            .borrow_and_update()
            .iter()
            .map(|n| n.as_str().to_owned())
            .collect();
        views
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), set);
        if live.changed().await.is_err() {
            return Ok(());
        }
    }
}

fn sees(views: &Views, node: &str, target: &str) -> bool {
    views
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(node)
        .is_some_and(|s| s.contains(target))
}

/// Steps until `done` holds, at most `limit` of simulated time; returns the time it took.
fn step_until(sim: &mut turmoil::Sim<'_>, limit: Duration, done: impl Fn() -> bool) -> Duration {
    let start = sim.elapsed();
    while !done() && sim.elapsed() - start < limit {
        sim.step()
            .unwrap_or_else(|e| panic!("simulated host failed: {e}"));
    }
    sim.elapsed() - start
}

#[test]
fn gossip_over_simulated_udp_detects_a_crash_within_two_seconds() {
    for seed in 0..5u64 {
        let views: Views = Arc::default();
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .epoch(epoch())
            .tick_duration(Duration::from_millis(5))
            .max_message_latency(Duration::from_millis(20))
            .simulation_duration(Duration::from_secs(600))
            .build();
        for (i, name) in NODES.iter().enumerate() {
            let views = Arc::clone(&views);
            sim.host(*name, move || {
                gossip_node(name, seed * 10 + i as u64, Arc::clone(&views))
            });
        }
        // Let gossip connect and the assumed-live grace run out.
        step_until(&mut sim, Duration::from_secs(4), || false);
        for a in NODES {
            for b in NODES {
                assert!(sees(&views, a, b), "seed {seed}: {a} does not see {b}");
            }
        }
        sim.crash("n3");
        let took = step_until(&mut sim, Duration::from_secs(10), || {
            !sees(&views, "n1", "n3") && !sees(&views, "n2", "n3")
        });
        assert!(
            took <= Duration::from_secs(2),
            "seed {seed}: crash of n3 detected after {took:?}"
        );
        eprintln!("seed {seed}: crash detected after {took:?}");
        sim.bounce("n3");
        let took = step_until(&mut sim, Duration::from_secs(10), || {
            sees(&views, "n1", "n3") && sees(&views, "n2", "n3")
        });
        assert!(
            sees(&views, "n1", "n3") && sees(&views, "n2", "n3"),
            "seed {seed}: restarted n3 not live again after {took:?}"
        );
        eprintln!("seed {seed}: restart seen after {took:?}");
    }
}

#[test]
fn gossip_over_simulated_udp_sees_a_partitioned_node_again_after_heal() {
    for seed in 0..5u64 {
        let views: Views = Arc::default();
        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .epoch(epoch())
            .tick_duration(Duration::from_millis(5))
            .max_message_latency(Duration::from_millis(20))
            .simulation_duration(Duration::from_secs(600))
            .build();
        for (i, name) in NODES.iter().enumerate() {
            let views = Arc::clone(&views);
            sim.host(*name, move || {
                gossip_node(name, seed * 10 + i as u64, Arc::clone(&views))
            });
        }
        step_until(&mut sim, Duration::from_secs(4), || false);
        for other in ["n1", "n2"] {
            sim.partition("n3", other);
        }
        let took = step_until(&mut sim, Duration::from_secs(10), || {
            !sees(&views, "n1", "n3") && !sees(&views, "n2", "n3")
        });
        eprintln!("seed {seed}: partitioned n3 declared down after {took:?}");
        // A long partition: everyone has declared the other side down.
        step_until(&mut sim, Duration::from_secs(5), || false);
        for other in ["n1", "n2"] {
            sim.repair("n3", other);
        }
        let took = step_until(&mut sim, Duration::from_secs(30), || {
            NODES
                .iter()
                .all(|a| NODES.iter().all(|b| sees(&views, a, b)))
        });
        let seen = views.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert!(
            NODES
                .iter()
                .all(|a| NODES.iter().all(|b| sees(&views, a, b))),
            "seed {seed}: 30 s after the partition healed the nodes still do not all see each other: {seen:?}"
        );
        eprintln!("seed {seed}: everyone live again {took:?} after the heal");
    }
}
