//! `ratelimit-server`: the rate-limit service (ringkit.ratelimit.v1, admin, Envoy RLS v3, health,
//! reflection) with Prometheus metrics, policy hot reload and optional cluster mode.
//!
//! Configuration, highest precedence first: flags, `RATELIMIT_*` environment variables, the TOML
//! file given with `--config`, built-in defaults. With no configuration at all it listens on
//! 127.0.0.1:50061 with the built-in policy (domains `default` and `envoy`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;

use ringkit_ratelimit::RateLimiter;
use ringkit_ratelimit::clock::{Clock, MonotonicClock};
use ringkit_ratelimit::cluster::{Cluster, ClusterConfig, Peer};
use ringkit_ratelimit::counter::{Counter, LocalCounter};
use ringkit_ratelimit::grpc::{ServeOptions, serve};
use ringkit_ratelimit::maintenance::{MaintenanceConfig, spawn_maintenance};
use ringkit_ratelimit::policy::{DEFAULT_POLICY, Policies, parse_policy};
use ringkit_ratelimit::store::{KeyedStore, StoreConfig};

/// Command line; every flag also reads a `RATELIMIT_*` environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "ratelimit-server",
    version,
    about = "ringkit rate-limit service (gRPC + Envoy RLS)"
)]
struct Args {
    /// TOML file with any of the settings below (flags and env win over it).
    #[arg(long, env = "RATELIMIT_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50061].
    #[arg(long, env = "RATELIMIT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Policy file (TOML), reloaded when it changes [default: the built-in policy].
    #[arg(long, env = "RATELIMIT_POLICY")]
    policy: Option<PathBuf>,
    /// Prometheus scrape address; "off" disables [default: 127.0.0.1:9061].
    #[arg(long, env = "RATELIMIT_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Most keys held [default: 1000000].
    #[arg(long, env = "RATELIMIT_MAX_KEYS")]
    max_keys: Option<usize>,
    /// Store shards, a power of two [default: 64].
    #[arg(long, env = "RATELIMIT_SHARDS")]
    shards: Option<usize>,
    /// This node's id in a cluster [default: node-1].
    #[arg(long, env = "RATELIMIT_NODE_ID")]
    node_id: Option<String>,
    /// A cluster peer as `id=http://host:port`; repeat for each (comma-separated in env).
    #[arg(long = "peer", env = "RATELIMIT_PEERS", value_delimiter = ',')]
    peers: Vec<String>,
    /// Extra wait to fill a forward batch, in microseconds [default: 0, adaptive].
    #[arg(long, env = "RATELIMIT_BATCH_WINDOW_US")]
    batch_window_us: Option<u64>,
    /// Seconds between policy-file checks [default: 2].
    #[arg(long, env = "RATELIMIT_RELOAD_SECS")]
    reload_secs: Option<u64>,
    /// Runtime worker threads [default: one per core].
    #[arg(long, env = "RATELIMIT_WORKER_THREADS")]
    worker_threads: Option<usize>,
    /// Do not serve the admin API.
    #[arg(long, env = "RATELIMIT_NO_ADMIN")]
    no_admin: bool,
    /// Log filter (tracing-subscriber syntax) [default: info].
    #[arg(long, env = "RUST_LOG")]
    log: Option<String>,
}

/// The `--config` file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    /// See `--listen`.
    listen: Option<SocketAddr>,
    /// See `--policy`.
    policy: Option<PathBuf>,
    /// See `--metrics-listen`.
    metrics_listen: Option<String>,
    /// See `--max-keys`.
    max_keys: Option<usize>,
    /// See `--shards`.
    shards: Option<usize>,
    /// See `--node-id`.
    node_id: Option<String>,
    /// See `--peer`.
    #[serde(default)]
    peers: Vec<String>,
    /// See `--batch-window-us`.
    batch_window_us: Option<u64>,
    /// See `--reload-secs`.
    reload_secs: Option<u64>,
    /// See `--worker-threads`.
    worker_threads: Option<usize>,
    /// See `--no-admin`.
    #[serde(default)]
    no_admin: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            args.log.as_deref().unwrap_or("info"),
        ))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("config {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.worker_threads.or(file.worker_threads) {
        runtime.worker_threads(n.max(1));
    }
    runtime.enable_all().build()?.block_on(run(args, file))
}

/// Builds the node from the settings and serves until a shutdown signal.
async fn run(args: Args, file: FileConfig) -> anyhow::Result<()> {
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 50061)));
    let metrics_listen = args
        .metrics_listen
        .or(file.metrics_listen)
        .unwrap_or_else(|| "127.0.0.1:9061".into());
    if metrics_listen != "off" {
        let addr: SocketAddr = metrics_listen
            .parse()
            .with_context(|| format!("metrics address `{metrics_listen}`"))?;
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .context("starting the Prometheus exporter")?;
        tracing::info!(%addr, "Prometheus metrics at /metrics");
    }

    let policies = match args.policy.or(file.policy) {
        Some(path) => Policies::from_file(&path)
            .with_context(|| format!("loading policy {}", path.display()))?,
        None => Policies::new(parse_policy(DEFAULT_POLICY, "built-in")?),
    };
    let policies = Arc::new(policies);
    let store_config = StoreConfig {
        max_keys: args.max_keys.or(file.max_keys).unwrap_or(1_000_000),
        shards: args.shards.or(file.shards).unwrap_or(64),
        ..StoreConfig::default()
    };
    let store = Arc::new(KeyedStore::new(store_config)?);
    let clock: Arc<dyn Clock> = Arc::new(MonotonicClock::new());
    let local = LocalCounter::new(store, clock);

    let peers: Vec<String> = if args.peers.is_empty() {
        file.peers
    } else {
        args.peers
    };
    let counter = if peers.is_empty() {
        Counter::Local(local)
    } else {
        let config = ClusterConfig {
            node_id: args
                .node_id
                .or(file.node_id)
                .unwrap_or_else(|| "node-1".into()),
            peers: peers
                .iter()
                .map(|p| Peer::parse(p))
                .collect::<Result<_, _>>()?,
            batch_window: Duration::from_micros(
                args.batch_window_us.or(file.batch_window_us).unwrap_or(0),
            ),
            ..ClusterConfig::default()
        };
        tracing::info!(node = %config.node_id, peers = config.peers.len(), "cluster mode");
        Counter::Cluster(Arc::new(Cluster::start(config, local)?))
    };
    let limiter = RateLimiter::new(policies, counter);

    let reload_secs = args.reload_secs.or(file.reload_secs).unwrap_or(2);
    let maintenance = spawn_maintenance(
        limiter.clone(),
        MaintenanceConfig {
            reload_interval: (reload_secs > 0).then(|| Duration::from_secs(reload_secs)),
            ..MaintenanceConfig::default()
        },
    );

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "ratelimit-server listening");
    let options = ServeOptions {
        admin: !(args.no_admin || file.no_admin),
        ..ServeOptions::default()
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    serve(limiter, options, incoming, shutdown_signal()).await?;
    maintenance.shutdown().await;
    tracing::info!("ratelimit-server stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM: the server then stops accepting and drains in-flight calls.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
