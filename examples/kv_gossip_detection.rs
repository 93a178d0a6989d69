//! Measures how long SWIM gossip (default settings) takes to declare a crashed node down.
//!
//! Starts `--nodes` gossip members on loopback UDP, waits until all see each other, then stops
//! one without a farewell (as a crash) and times until every survivor has dropped it from its
//! live set. Repeats `--rounds` times and prints the median, 90th percentile and maximum.
//!
//! ```sh
//! cargo run --release -p ringkit-examples --example kv_gossip_detection -- --nodes 3 --rounds 20
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ringkit_hashring::NodeId;
use ringkit_kv::cluster::gossip::{GossipConfig, GossipHandle, spawn};
use tokio::net::UdpSocket;
use tokio::time::Instant;

#[derive(Parser)]
struct Args {
    /// Cluster sizes to measure (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "3,5")]
    nodes: Vec<usize>,
    /// Crashes measured per cluster size.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
}

async fn cluster(n: usize, round: usize) -> anyhow::Result<Vec<GossipHandle>> {
    let mut handles: Vec<GossipHandle> = Vec::new();
    for i in 0..n {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let seeds = handles
            .first()
            .map(|h| vec![h.identity().gossip_addr])
            .unwrap_or_default();
        let mut config =
            GossipConfig::new(format!("n{i}"), format!("127.0.0.1:{}", 50_000 + i), seeds);
        config.rng_seed = (round * 100 + i) as u64;
        handles.push(spawn(config, socket)?);
    }
    let all: BTreeSet<NodeId> = (0..n).map(|i| NodeId::from(format!("n{i}"))).collect();
    for h in &handles {
        let mut live = h.live();
        tokio::time::timeout(Duration::from_secs(20), live.wait_for(|l| **l == all))
            .await
            .context("cluster did not converge in 20 s")??;
    }
    Ok(handles)
}

async fn detection(n: usize, round: usize) -> anyhow::Result<Duration> {
    let mut handles = cluster(n, round).await?;
    // Let a few probe rounds pass so the crash lands at a random point of the probe cycle.
    tokio::time::sleep(Duration::from_millis(500 + (round as u64 * 37) % 250)).await;
    let victim = handles.pop().context("no node")?;
    let gone = victim.identity().node.clone();
    let crashed_at = Instant::now();
    victim.shutdown().await;
    for h in &handles {
        let mut live = h.live();
        tokio::time::timeout(
            Duration::from_secs(20),
            live.wait_for(|l| !l.contains(&gone)),
        )
        .await
        .context("crash not detected in 20 s")??;
    }
    let took = crashed_at.elapsed();
    for h in handles {
        h.shutdown().await;
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!("| nodes | rounds | median | p90 | max |");
    println!("|---|---|---|---|---|");
    for &n in &args.nodes {
        anyhow::ensure!(n >= 2, "--nodes: a crash needs at least 2 nodes to be seen");
        let mut times = Vec::with_capacity(args.rounds);
        for round in 0..args.rounds {
            times.push(detection(n, round).await?);
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "| {n} | {} | {:.2} s | {:.2} s | {:.2} s |",
            times.len(),
            at(0.5).as_secs_f64(),
            at(0.9).as_secs_f64(),
            at(1.0).as_secs_f64()
        );
    }
    Ok(())
}
