//! `kv-server`: one ringkit KV node.
//!
//! Settings come from (highest first) flags, `KV_*` environment variables, a TOML file given with
//! `--config`, and built-in defaults: data in `./data/kv`, gRPC on `127.0.0.1:50071`, Prometheus
//! metrics on `127.0.0.1:9471`, FULL durability. Stops gracefully on SIGINT or SIGTERM: in-flight
//! requests finish and the writer drains and syncs before exit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::grpc::serve_listener;
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{Durability, SqliteConfig, SqliteStorage};
use serde::Deserialize;

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
    /// Seconds a tombstone is kept before reaping; 0 keeps them forever.
    tombstone_grace_secs: Option<u64>,
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
    node_config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(listen, metrics_listen, storage_config, node_config))
}

async fn run(
    listen: SocketAddr,
    metrics_listen: String,
    storage: SqliteConfig,
    node: NodeConfig,
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
    let node = KvNode::new(store, node, Arc::new(SystemClock))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    // Scripts and tests wait for this line (and read the port when listening on :0).
    println!("kv-server listening on {local}");
    serve_listener(node, listener, shutdown_signal()).await?;
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
