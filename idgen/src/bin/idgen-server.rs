//! `idgen-server`: the `ringkit.idgen.v1` gRPC service as a process.
//!
//! Configuration comes from a TOML file (`--config`), environment variables (`IDGEN_*`) and flags,
//! in increasing precedence. SIGINT or SIGTERM drains in-flight calls, seals the generator and
//! persists the exact high-water mark before exiting.
//!
//! ```sh
//! cargo run --release -p ringkit-idgen --bin idgen-server
//! # gRPC on 127.0.0.1:50051, Prometheus on 127.0.0.1:50052/metrics, mark in ./data/idgen
//! ```

use std::{net::SocketAddr, path::PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use ringkit_idgen::{
    Layout, ServerConfig, SqliteMarkStore, SystemClock, WorkerConfig,
    grpc::{IdGenService, serve_listener},
    metrics, start,
    worker::resolve_worker_id,
};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Command line; every flag also reads an `IDGEN_*` variable and overrides the TOML file.
#[derive(Debug, Parser)]
#[command(
    name = "idgen-server",
    version,
    about = "Snowflake ID service (ringkit.idgen.v1)"
)]
struct Args {
    /// TOML configuration file (see `ServerConfig`).
    #[arg(long, env = "IDGEN_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:50051].
    #[arg(long, env = "IDGEN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Prometheus listen address, or `off` [default: 127.0.0.1:50052].
    #[arg(long, env = "IDGEN_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Directory of the high-water mark database [default: ./data/idgen].
    #[arg(long, env = "IDGEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Layout preset: classic, sonyflake or discord [default: classic].
    #[arg(long, env = "IDGEN_LAYOUT")]
    layout: Option<String>,
    /// Explicit worker id.
    #[arg(long, env = "IDGEN_WORKER_ID", conflicts_with = "worker_ordinal")]
    worker_id: Option<u64>,
    /// StatefulSet pod name whose trailing ordinal is the worker id (e.g. `$(HOSTNAME)`).
    #[arg(long, env = "IDGEN_WORKER_ORDINAL")]
    worker_ordinal: Option<String>,
    /// Added to the ordinal.
    #[arg(long, env = "IDGEN_WORKER_OFFSET")]
    worker_offset: Option<u64>,
    /// Largest backward clock step absorbed, in ms [default: 10].
    #[arg(long, env = "IDGEN_BACKWARD_TOLERANCE_MS")]
    backward_tolerance_ms: Option<u64>,
    /// How far ahead the high-water mark is reserved, in ms [default: 3000].
    #[arg(long, env = "IDGEN_LEASE_MS")]
    lease_ms: Option<u64>,
}

impl Args {
    /// The file's configuration (or the defaults) with flags and environment applied on top.
    fn into_config(self) -> anyhow::Result<ServerConfig> {
        let mut cfg = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                ServerConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?
            }
            None => ServerConfig::default(),
        };
        if let Some(listen) = self.listen {
            cfg.listen = listen;
        }
        match self.metrics_listen.as_deref() {
            None => {}
            Some("off" | "") => cfg.metrics_listen = None,
            Some(addr) => {
                cfg.metrics_listen = Some(
                    addr.parse()
                        .with_context(|| format!("--metrics-listen {addr:?}"))?,
                );
            }
        }
        if let Some(dir) = self.data_dir {
            cfg.data_dir = dir;
        }
        if let Some(name) = &self.layout {
            cfg.generator.layout = Layout::preset(name)?;
        }
        if let Some(id) = self.worker_id {
            cfg.worker = WorkerConfig {
                id: Some(id),
                ordinal: None,
                offset: 0,
            };
        }
        if let Some(name) = self.worker_ordinal {
            cfg.worker = WorkerConfig {
                id: None,
                ordinal: Some(name),
                offset: self.worker_offset.unwrap_or(cfg.worker.offset),
            };
        } else if let Some(offset) = self.worker_offset {
            if cfg.worker.ordinal.is_none() {
                bail!("--worker-offset needs --worker-ordinal (or `ordinal` in the file)");
            }
            cfg.worker.offset = offset;
        }
        if let Some(ms) = self.backward_tolerance_ms {
            cfg.generator.backward_tolerance_ms = ms;
        }
        if let Some(ms) = self.lease_ms {
            cfg.generator.lease_ms = ms;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        // Colour only on a terminal: log collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cfg = Args::parse().into_config()?;

    if let Some(addr) = cfg.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("starting the Prometheus endpoint on {addr}"))?;
        metrics::describe();
        tracing::info!(%addr, "Prometheus metrics at http://{addr}/metrics");
    }

    let layout = &cfg.generator.layout;
    let worker = resolve_worker_id(cfg.worker.source().as_ref(), layout).await?;
    let data_dir = cfg.data_dir.clone();
    let generator_cfg = cfg.generator.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let store = SqliteMarkStore::open_dir(&data_dir)
            .with_context(|| format!("opening the mark store in {}", data_dir.display()))?;
        anyhow::Ok(start(generator_cfg, worker, SystemClock, store)?)
    })
    .await??;

    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, worker, layout = %layout.name, "idgen-server listening");
    let service = IdGenService::new(handle.generator());
    // Spawned, so the accept loop runs on the worker threads rather than on `main`'s thread.
    let served = tokio::spawn(serve_listener(service, listener, shutdown_signal()))
        .await
        .context("the server task panicked")?;

    let mark = handle.shutdown_async().await?;
    tracing::info!(mark_ms = mark, "stopped; final high-water mark persisted");
    served?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (Kubernetes' stop signal).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> anyhow::Result<ServerConfig> {
        let mut argv = vec!["idgen-server"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv)?.into_config()
    }

    #[test]
    fn defaults_are_loopback_with_a_local_data_dir() {
        let cfg = config(&[]).unwrap();
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(
            cfg.metrics_listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:50052")
        );
        assert_eq!(cfg.data_dir, PathBuf::from("./data/idgen"));
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("idgen.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:7000\"\n[worker]\nordinal = \"idgen-2\"\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let cfg = config(&[
            "--config",
            file,
            "--worker-offset",
            "10",
            "--layout",
            "sonyflake",
        ])
        .unwrap();
        assert_eq!(cfg.listen.port(), 7000);
        assert_eq!(cfg.worker.ordinal.as_deref(), Some("idgen-2"));
        assert_eq!(cfg.worker.offset, 10);
        assert_eq!(cfg.generator.layout, Layout::sonyflake());
        let cfg = config(&[
            "--config",
            file,
            "--worker-id",
            "4",
            "--metrics-listen",
            "off",
        ])
        .unwrap();
        assert_eq!((cfg.worker.id, cfg.worker.ordinal), (Some(4), None));
        assert_eq!(cfg.metrics_listen, None);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        assert!(config(&["--worker-id", "1", "--worker-ordinal", "idgen-1"]).is_err());
        assert!(
            config(&["--worker-offset", "3"])
                .unwrap_err()
                .to_string()
                .contains("--worker-ordinal")
        );
        assert!(
            config(&["--layout", "leaf"])
                .unwrap_err()
                .to_string()
                .contains("unknown preset")
        );
        assert!(
            config(&["--metrics-listen", "nowhere"])
                .unwrap_err()
                .to_string()
                .contains("--metrics-listen")
        );
        assert!(
            config(&["--lease-ms", "5"])
                .unwrap_err()
                .to_string()
                .contains("lease_ms")
        );
    }
}
