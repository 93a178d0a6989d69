//! `ringctl kv admin ...`: the kv cluster's `KvAdmin` API from a shell.

use anyhow::{Result, bail};
use clap::Subcommand;
use ringkit_clients::pb::kv::cluster::v1 as admin;
use tonic::transport::Channel;

/// Cluster administration (any member answers; changes go to the claimant).
#[derive(Subcommand)]
pub(crate) enum KvAdminCommand {
    /// Members as gossip sees them (alive, suspect, down).
    Members,
    /// The ring: epoch, claimant, partitions per node, transfers in progress.
    Ring,
    /// Replicas of every partition, or of the one holding `--key`, or of `--partition`.
    Owners {
        /// The partition holding this key.
        #[arg(long, conflicts_with = "partition")]
        key: Option<String>,
        /// This partition number.
        #[arg(long)]
        partition: Option<u32>,
    },
    /// Hinted-handoff backlog held on the node asked, per target.
    Handoffs,
    /// Anti-entropy status of the node asked.
    Aae,
    /// Add a node to the ring (normally the node does this itself with `kv-server --join`).
    Join {
        /// The new node's id.
        node_id: String,
        /// Its gRPC address (host:port).
        #[arg(long)]
        grpc: String,
        /// Its gossip address (ip:port).
        #[arg(long, default_value = "")]
        gossip: String,
        /// Its failure zone.
        #[arg(long, default_value = "")]
        zone: String,
    },
    /// Hand a live node's partitions to the others, then take it off the ring.
    Leave {
        /// The node leaving.
        node_id: String,
    },
    /// Evict a dead node (its partitions are rebuilt from the surviving replicas).
    Remove {
        /// The dead node.
        node_id: String,
    },
}

/// Runs one admin command against the node at `channel`.
pub(crate) async fn run(channel: Channel, cmd: KvAdminCommand) -> Result<()> {
    let mut client = admin::kv_admin_client::KvAdminClient::new(channel);
    match cmd {
        KvAdminCommand::Members => {
            let r = client.members(admin::MembersRequest {}).await?.into_inner();
            println!("as seen by {}", r.node_id);
            println!(
                "{:<16} {:<8} {:<6} {:<22} {:<22} incarnation",
                "node", "state", "ring", "grpc", "gossip"
            );
            for m in r.members {
                let state = match admin::MemberState::try_from(m.state) {
                    Ok(admin::MemberState::Alive) => "alive",
                    Ok(admin::MemberState::Suspect) => "suspect",
                    Ok(admin::MemberState::Down) => "down",
                    _ => "unknown",
                };
                let ring = if m.on_ring { "yes" } else { "no" };
                println!(
                    "{:<16} {state:<8} {ring:<6} {:<22} {:<22} {}",
                    m.node_id, m.grpc_addr, m.gossip_addr, m.incarnation
                );
            }
        }
        KvAdminCommand::Ring => {
            let r = client.ring(admin::RingRequest {}).await?.into_inner();
            println!(
                "epoch {}  claimant {}  partitions {}  replicas {}",
                r.epoch, r.claimant, r.partitions, r.replicas
            );
            println!("{:<16} {:>6} {:>9}  grpc", "node", "owned", "replicas");
            for n in &r.nodes {
                println!(
                    "{:<16} {:>6} {:>9}  {}",
                    n.node_id, n.owned, n.replicas, n.grpc_addr
                );
            }
            for d in &r.departing {
                println!("{d:<16} (departing: streaming its partitions away)");
            }
            print_transfers(&r.pending);
        }
        KvAdminCommand::Owners { key, partition } => {
            let request = admin::PartitionOwnersRequest {
                key: key.map(String::into_bytes).unwrap_or_default(),
                partition: partition.unwrap_or(0),
                has_partition: partition.is_some(),
            };
            let r = client.partition_owners(request).await?.into_inner();
            println!("epoch {}", r.epoch);
            for p in r.partitions {
                println!(
                    "p{:<5} {:016x}..={:016x}  {}",
                    p.partition,
                    p.hash_start,
                    p.hash_end,
                    p.replicas.join(", ")
                );
                print_transfers(&p.pending);
            }
        }
        KvAdminCommand::Handoffs => {
            let r = client
                .handoffs(admin::HandoffsRequest {})
                .await?
                .into_inner();
            println!("hints held on {}", r.node_id);
            if r.targets.is_empty() {
                println!("(none)");
            }
            for t in r.targets {
                println!(
                    "{:<16} {:>8} hints {:>12} bytes",
                    t.target, t.hints, t.bytes
                );
            }
        }
        KvAdminCommand::Aae => {
            let r = client
                .aae_status(admin::AaeStatusRequest {})
                .await?
                .into_inner();
            if !r.enabled {
                println!("anti-entropy is not running on {}", r.node_id);
                return Ok(());
            }
            println!(
                "node {}: {} trees, {} dirty leaves, budget {} rows/s",
                r.node_id, r.trees, r.dirty_leaves, r.rows_per_sec
            );
            println!(
                "exchanges {} (failed {}), keys repaired {}, tombstones reaped {}, \
                 leftover rows dropped {}",
                r.exchanges,
                r.failed_exchanges,
                r.keys_repaired,
                r.tombstones_reaped,
                r.leftover_rows_dropped
            );
            if !r.reap_blocked.is_empty() {
                println!("reaping held back: {}", r.reap_blocked);
            }
            for p in r.partitions {
                let detail = if p.error.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", p.error)
                };
                println!(
                    "p{:<5} with {:<16} {}{} keys {} at {} ms",
                    p.partition, p.peer, p.outcome, detail, p.keys_repaired, p.at_ms
                );
            }
        }
        KvAdminCommand::Join {
            node_id,
            grpc,
            gossip,
            zone,
        } => {
            let request = admin::JoinRequest {
                node_id,
                grpc_addr: grpc,
                gossip_addr: gossip,
                zone,
                // Unknown from here; `kv-server --join` reports its store's size.
                stored_rows: 0,
            };
            print_change(client.join(request).await?.into_inner())?;
        }
        KvAdminCommand::Leave { node_id } => {
            print_change(
                client
                    .leave(admin::LeaveRequest { node_id })
                    .await?
                    .into_inner(),
            )?;
        }
        KvAdminCommand::Remove { node_id } => {
            print_change(
                client
                    .remove(admin::RemoveRequest { node_id })
                    .await?
                    .into_inner(),
            )?;
        }
    }
    Ok(())
}

fn print_transfers(pending: &[admin::Transfer]) {
    for t in pending {
        println!(
            "  transfer p{}: {} -> {} (since epoch {})",
            t.partition, t.from, t.to, t.since
        );
    }
}

fn print_change(r: admin::ChangeResponse) -> Result<()> {
    let Some(map) = r.map else {
        bail!("the server answered without a cluster map");
    };
    if r.changed {
        println!(
            "ring epoch is now {}; partitions move in the background (see `ringctl kv admin ring`)",
            map.epoch
        );
    } else {
        println!("nothing to change (already done); ring epoch {}", map.epoch);
    }
    Ok(())
}
