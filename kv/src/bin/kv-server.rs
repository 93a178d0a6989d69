//! `kv-server`: one ringkit KV node, standalone or as a member of a cluster.
//!
//! Settings come from (highest first) flags, `KV_*` environment variables, a TOML file given with
//! `--config`, and built-in defaults: data in `./data/kv`, gRPC on `127.0.0.1:50071`, Prometheus
//! metrics on `127.0.0.1:9471`, FULL durability. Stops gracefully on SIGINT or SIGTERM: in-flight
//! requests finish (clients get `ringkit_kv::grpc::DRAIN_GRACE`, 5 s, to go) and the writer drains
//! and syncs before exit.
//!
//! Cluster mode starts when a member list is given (`--cluster-members` or `[cluster] members`
//! in the TOML): every node gets the same list, including itself under its `--node-id`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use ringkit_hashring::{NodeId, RingConfig};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::aae::AaeConfig;
use ringkit_kv::cluster::assemble::ClusterNodeConfig;
use ringkit_kv::cluster::channels::TcpConnector;
use ringkit_kv::cluster::config::ClusterConfig;
use ringkit_kv::cluster::node::ClusterNode;
use ringkit_kv::cluster::topology::Member;
use ringkit_kv::grpc::serve_listener;
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{Durability, SqliteConfig, SqliteStorage, StorageExt};
use serde::Deserialize;

/// How long a joining node keeps retrying a seed that cannot decide yet.
const JOIN_PATIENCE: Duration = Duration::from_secs(60);

/// Command line; every flag also reads a `KV_*` variable.
#[derive(Debug, Parser)]
#[command(
    name = "kv-server",
    version,
    about = "A ringkit KV node (gRPC ringkit.kv.v1)"
)]
struct Args {
    /// TOML file with any of the settings below (snake_case keys).
    #[arg(long, env = "KV_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50071].
    #[arg(long, env = "KV_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory [default: ./data/kv].
    #[arg(long, env = "KV_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// This node's name; the data directory remembers it [default: node-1].
    #[arg(long, env = "KV_NODE_ID")]
    node_id: Option<String>,
    /// `full` (survives power loss) or `normal` (survives process crashes) [default: full].
    #[arg(long, env = "KV_DURABILITY")]
    durability: Option<DurabilityArg>,
    /// Prometheus listen address, or `off` [default: 127.0.0.1:9471].
    #[arg(long, env = "KV_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// SQLite reader threads [default: 2].
    #[arg(long, env = "KV_READERS")]
    readers: Option<usize>,
    /// Memory-mapped I/O per SQLite connection, MiB [default: 0, off]. Helps read-only stores
    /// only: any write makes every reader drop its map at its next read (see docs/kv.md).
    #[arg(long, env = "KV_MMAP_MIB")]
    mmap_mib: Option<u64>,
    /// Cluster members, comma-separated `id=grpc_addr[/gossip_addr]` (this node included);
    /// turns cluster mode on. Example: `n1=127.0.0.1:50071/127.0.0.1:7101,n2=...`.
    #[arg(long, env = "KV_CLUSTER_MEMBERS")]
    cluster_members: Option<String>,
    /// UDP address gossip binds [default: this node's gossip address in the member list].
    #[arg(long, env = "KV_GOSSIP_LISTEN")]
    gossip_listen: Option<SocketAddr>,
    /// Join a running cluster through this member's gRPC address (the member list then names
    /// only this node); the new node takes its share of partitions by transfer.
    #[arg(long, env = "KV_JOIN")]
    join: Option<String>,
    /// Extra gossip addresses to contact at start, comma-separated (a joining node lists some
    /// of the cluster's).
    #[arg(long, env = "KV_GOSSIP_SEEDS")]
    gossip_seeds: Option<String>,
}

/// `[cluster]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    /// Every member, this node included (same list on every node).
    #[serde(default)]
    members: Vec<MemberEntry>,
    /// As `--gossip-listen`.
    gossip_listen: Option<SocketAddr>,
    /// Per-replica timeout in milliseconds [default: 1000].
    replica_timeout_ms: Option<u64>,
    /// Ring partitions (a power of two, same on every node) [default: 64 per node, >= 64].
    partitions: Option<u32>,
    /// Seconds after a partition left this node (handed off to a new owner) before the rows
    /// it still holds of it are handed to the owners and dropped here; 0 keeps them
    /// [default: 600].
    leftover_grace_secs: Option<u64>,
}

/// One member in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberEntry {
    /// Its node id.
    id: String,
    /// Its gRPC address.
    grpc: String,
    /// Its gossip (UDP) address.
    gossip: Option<String>,
    /// Its failure zone.
    zone: Option<String>,
}

impl From<MemberEntry> for Member {
    fn from(e: MemberEntry) -> Self {
        Member {
            id: NodeId::from(e.id),
            grpc_addr: e.grpc,
            gossip_addr: e.gossip,
            zone: e.zone,
        }
    }
}

/// Parses `--cluster-members`.
fn parse_members(list: &str) -> anyhow::Result<Vec<Member>> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let (id, addrs) = entry.trim().split_once('=').with_context(|| {
                format!("cluster member {entry:?}: expected id=grpc_addr[/gossip_addr]")
            })?;
            let (grpc, gossip) = match addrs.split_once('/') {
                Some((g, u)) => (g, Some(u.to_owned())),
                None => (addrs, None),
            };
            anyhow::ensure!(
                !id.is_empty() && !grpc.is_empty(),
                "cluster member {entry:?}: id and grpc address must not be empty"
            );
            Ok(Member {
                id: NodeId::from(id),
                grpc_addr: grpc.to_owned(),
                gossip_addr: gossip,
                zone: None,
            })
        })
        .collect()
}

/// The TOML file: the same settings plus limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// As `--listen`.
    listen: Option<SocketAddr>,
    /// As `--data-dir`.
    data_dir: Option<PathBuf>,
    /// As `--node-id`.
    node_id: Option<String>,
    /// As `--durability`.
    durability: Option<Durability>,
    /// As `--metrics-listen`.
    metrics_listen: Option<String>,
    /// As `--readers`.
    readers: Option<usize>,
    /// As `--mmap-mib`.
    mmap_mib: Option<u64>,
    /// Longest key in bytes.
    max_key_bytes: Option<usize>,
    /// Largest value in bytes.
    max_value_bytes: Option<usize>,
    /// Siblings from which a write logs a warning.
    warn_siblings: Option<usize>,
    /// Siblings above which a put is refused.
    max_siblings: Option<usize>,
    /// Key prefixes written last-write-wins by default (lossy).
    lww_prefixes: Option<Vec<String>>,
    /// Seconds a tombstone is kept before reaping; 0 keeps them forever. Standalone only: in a
    /// cluster, anti-entropy reaps tombstones once every replica has them.
    tombstone_grace_secs: Option<u64>,
    /// Cluster mode.
    cluster: Option<ClusterSection>,
}

/// What `run` starts.
enum Mode {
    /// One node on its own.
    Standalone,
    /// A cluster member.
    Cluster {
        /// Identity, members, coordination.
        config: ClusterConfig,
        /// Where gossip binds, if the member list has gossip addresses.
        gossip_listen: Option<SocketAddr>,
        /// Gossip addresses to contact besides the members'.
        gossip_seeds: Vec<SocketAddr>,
        /// A member's gRPC address to join through.
        join: Option<String>,
        /// Anti-entropy settings (boxed: the largest field, and read once).
        aae: Box<AaeConfig>,
    },
}

impl std::str::FromStr for DurabilityArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(DurabilityArg(Durability::Full)),
            "normal" => Ok(DurabilityArg(Durability::Normal)),
            other => Err(format!("durability must be full or normal, not {other:?}")),
        }
    }
}

/// Clap needs `FromStr`; the library type stays free of CLI concerns.
#[derive(Clone, Debug)]
struct DurabilityArg(Durability);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => FileConfig::default(),
    };

    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50071)));
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("./data/kv"));
    let node_id = args
        .node_id
        .or(file.node_id)
        .unwrap_or_else(|| "node-1".to_owned());
    let metrics_listen = args
        .metrics_listen
        .or(file.metrics_listen)
        .unwrap_or_else(|| "127.0.0.1:9471".to_owned());

    let mut storage_config = SqliteConfig::new(&data_dir, &node_id);
    storage_config.durability = args
        .durability
        .map(|d| d.0)
        .or(file.durability)
        .unwrap_or_default();
    if let Some(r) = args.readers.or(file.readers) {
        storage_config.readers = r;
    }
    if let Some(mib) = args.mmap_mib.or(file.mmap_mib) {
        storage_config.mmap_bytes = mib.saturating_mul(1024 * 1024);
    }
    let mut node_config = NodeConfig::new(&node_id);
    let limits = &mut node_config.limits;
    limits.max_key_bytes = file.max_key_bytes.unwrap_or(limits.max_key_bytes);
    limits.max_value_bytes = file.max_value_bytes.unwrap_or(limits.max_value_bytes);
    limits.siblings.warn = file.warn_siblings.unwrap_or(limits.siblings.warn);
    limits.siblings.max = file.max_siblings.unwrap_or(limits.siblings.max);
    node_config.lww_prefixes = file
        .lww_prefixes
        .unwrap_or_default()
        .into_iter()
        .map(Bytes::from)
        .collect();
    if let Some(secs) = file.tombstone_grace_secs {
        node_config.maintenance.tombstone_grace = (secs > 0).then(|| Duration::from_secs(secs));
    }
    let section = file.cluster.unwrap_or_default();
    let members = match &args.cluster_members {
        Some(list) => parse_members(list)?,
        None => section.members.into_iter().map(Member::from).collect(),
    };
    let mode = if members.is_empty() {
        Mode::Standalone
    } else {
        anyhow::ensure!(
            file.tombstone_grace_secs.is_none(),
            "tombstone_grace_secs is standalone-only: in cluster mode anti-entropy reaps \
             tombstones once every replica has them (remove the setting)"
        );
        node_config.maintenance.tombstone_grace = None;
        let gossip_listen = args.gossip_listen.or(section.gossip_listen);
        let mut config = ClusterConfig::new(node_id.as_str(), members);
        if let Some(ms) = section.replica_timeout_ms {
            config.coordinator.replica_timeout = Duration::from_millis(ms);
        }
        if let Some(p) = section.partitions {
            config.ring = Some(RingConfig {
                partitions: p,
                ..config.ring_config()
            });
        }
        config.bootstrap_map()?;
        let gossip_seeds = args
            .gossip_seeds
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .with_context(|| format!("gossip seed {s:?}"))
            })
            .collect::<anyhow::Result<Vec<SocketAddr>>>()?;
        let mut aae = AaeConfig::default();
        if let Some(secs) = section.leftover_grace_secs {
            aae.leftover_grace = (secs > 0).then(|| Duration::from_secs(secs));
        }
        Mode::Cluster {
            config,
            gossip_listen,
            gossip_seeds,
            join: args.join,
            aae: Box::new(aae),
        }
    };
    node_config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(
        listen,
        metrics_listen,
        storage_config,
        node_config,
        mode,
    ))
}

async fn run(
    listen: SocketAddr,
    metrics_listen: String,
    storage: SqliteConfig,
    node: NodeConfig,
    mode: Mode,
) -> anyhow::Result<()> {
    if metrics_listen != "off" && !metrics_listen.is_empty() {
        let addr: SocketAddr = metrics_listen
            .parse()
            .with_context(|| format!("metrics address {metrics_listen:?}"))?;
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_owned()),
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    1.0,
                ],
            )?
            .set_buckets_for_metric(
                Matcher::Full("kv_group_commit_requests".to_owned()),
                &[
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ],
            )?
            .install()
            .context("starting the Prometheus exporter")?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }

    let data_dir = storage.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || SqliteStorage::open(storage))
        .await?
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    match mode {
        Mode::Standalone => {
            let node = KvNode::new(store, node, Arc::new(SystemClock))?;
            // Scripts and tests wait for this line (and read the port when listening on :0).
            println!("kv-server listening on {local}");
            serve_listener(node, listener, shutdown_signal()).await?;
        }
        Mode::Cluster {
            config,
            gossip_listen,
            gossip_seeds,
            join,
            aae,
        } => {
            let gossip_addr = gossip_listen.or_else(|| {
                config
                    .members
                    .iter()
                    .find(|m| m.id == config.node_id)
                    .and_then(|m| m.gossip_addr.as_deref())
                    .and_then(|a| a.parse().ok())
            });
            let socket = match gossip_addr {
                Some(addr) => Some(
                    tokio::net::UdpSocket::bind(addr)
                        .await
                        .with_context(|| format!("binding gossip on {addr}"))?,
                ),
                None => None,
            };
            let gossip_local = socket.as_ref().map(|s| s.local_addr()).transpose()?;
            let mut full = ClusterNodeConfig::new(config);
            full.node = node;
            full.aae = *aae;
            // The installed ring survives restarts (a restarted node must not plan by its
            // bootstrap list after joins, leaves or removes).
            full.topology.state_file = Some(data_dir.join("cluster-map.json"));
            if socket.is_some() {
                let mut gossip = full.default_gossip()?;
                gossip.seeds.extend(gossip_seeds);
                full.gossip = Some(gossip);
            }
            let members = full.cluster.members.len();
            // A joining newcomer tells the cluster what it already stores: one that is not
            // empty is refused (rows from an earlier life could bring deleted keys back).
            let stored_rows = if join.is_some() {
                store.read(|view| view.stats()).await?.rows
            } else {
                0
            };
            let cluster = ClusterNode::start(
                full,
                store,
                Arc::new(SystemClock),
                Arc::new(TcpConnector::default()),
                socket,
            )?;
            let topology = cluster.topology().cloned();
            println!("kv-server listening on {local}");
            tracing::info!(%local, gossip = ?gossip_local, members, "cluster mode");
            let serving = tokio::spawn(cluster.serve_listener(listener, shutdown_signal()));
            if let (Some(seed), Some(topology)) = (join, topology) {
                // The node serves first: the claimant and the transfers call it back. A seed
                // that cannot decide yet (just started, claimant unreachable) says UNAVAILABLE:
                // retry for a while.
                let deadline = tokio::time::Instant::now() + JOIN_PATIENCE;
                let map = loop {
                    match topology.join_through_holding(&seed, stored_rows).await {
                        Ok(map) => break map,
                        Err(e)
                            if e.code() == tonic::Code::Unavailable
                                && tokio::time::Instant::now() < deadline =>
                        {
                            tracing::warn!(error = %e, "join not possible yet; retrying in 2 s");
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        Err(e) => {
                            return Err(
                                anyhow::Error::new(e).context(format!("joining through {seed}"))
                            );
                        }
                    }
                };
                tracing::info!(
                    epoch = map.epoch(),
                    members = map.size(),
                    "joined the cluster"
                );
            }
            serving.await??;
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining");
}
