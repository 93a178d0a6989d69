//! `idgen-bench`: a load generator for `ringkit.idgen.v1`.
//!
//! Drives a server with N concurrent calls for D seconds per mode, shows a progress bar, and prints
//! an HDR latency summary (p50/p99/p99.9/max) and throughput for unary `NextId`, batched `NextIds`
//! and `StreamIds`.
//!
//! ```sh
//! cargo run --release -p ringkit-idgen --bin idgen-server &
//! cargo run --release -p ringkit-idgen --bin idgen-bench -- --concurrency 64 --duration 10
//! # or, server in the same process on 127.0.0.1:0 (its own runtime and threads):
//! cargo run --release -p ringkit-idgen --bin idgen-bench -- --in-process
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use ringkit_idgen::{
    GeneratorConfig, MemoryMarkStore, SystemClock,
    grpc::{IdGenService, pb, serve_listener},
    start,
};
use tonic::transport::{Channel, Endpoint};

type Client = pb::id_gen_client::IdGenClient<Channel>;

/// Which RPC to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Unary `NextId`, one ID per call.
    Unary,
    /// `NextIds` with `--batch` IDs per call.
    Batch,
    /// `StreamIds`, unbounded streams of `--chunk`-ID chunks.
    Stream,
    /// All three, one after the other.
    All,
}

#[derive(Debug, Parser)]
#[command(name = "idgen-bench", about = "Load generator for ringkit.idgen.v1")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    addr: String,
    /// Start a server in this process on 127.0.0.1:0 (own runtime, 1 worker thread) instead.
    #[arg(long)]
    in_process: bool,
    /// Which RPC to drive.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// Concurrent calls (unary, batch) or streams (stream) in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over (each is one task on the server side).
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Seconds per mode.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// IDs per `NextIds` call.
    #[arg(long, default_value_t = 10_000)]
    batch: u32,
    /// IDs per `StreamIds` chunk.
    #[arg(long, default_value_t = 4_096)]
    chunk: u32,
    /// Streams in flight for the stream mode.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Client runtime worker threads. One leaves the second core of a 2-core machine to the
    /// server; raise it when the client, not the server, is the bottleneck.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
}

/// What one mode measured.
struct Report {
    mode: &'static str,
    calls: u64,
    ids: u64,
    elapsed: Duration,
    latency_us: Histogram<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let _server = if args.in_process {
        Some(InProcess::start()?)
    } else {
        None
    };
    let addr = match &_server {
        Some(s) => format!("http://{}", s.addr),
        None => args.addr.clone(),
    };
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = Endpoint::from_shared(addr.clone())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        clients.push(Client::new(channel));
    }
    let duration = Duration::from_secs(args.duration);
    let modes = match args.mode {
        Mode::All => vec![Mode::Unary, Mode::Batch, Mode::Stream],
        m => vec![m],
    };
    let mut reports = Vec::new();
    for mode in modes {
        reports.push(run(mode, &args, &clients, duration).await?);
    }
    println!();
    println!(
        "{:<8} {:>5} {:>10} {:>12} {:>14} {:>9} {:>9} {:>9} {:>9}",
        "mode", "conc", "calls", "calls/s", "IDs/s", "p50 ms", "p99 ms", "p999 ms", "max ms"
    );
    for r in &reports {
        let secs = r.elapsed.as_secs_f64();
        let q = |p: f64| r.latency_us.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "{:<8} {:>5} {:>10} {:>12.0} {:>14.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            r.mode,
            if r.mode == "stream" {
                args.streams
            } else {
                args.concurrency
            },
            r.calls,
            r.calls as f64 / secs,
            r.ids as f64 / secs,
            q(0.5),
            q(0.99),
            q(0.999),
            r.latency_us.max() as f64 / 1000.0,
        );
    }
    println!("(stream latency = time between chunks on one stream)");
    Ok(())
}

/// Runs one mode for `duration` with a progress bar.
async fn run(
    mode: Mode,
    args: &Args,
    clients: &[Client],
    duration: Duration,
) -> anyhow::Result<Report> {
    let name = match mode {
        Mode::Unary => "unary",
        Mode::Batch => "batch",
        Mode::Stream | Mode::All => "stream",
    };
    let tasks = if mode == Mode::Stream {
        args.streams
    } else {
        args.concurrency
    };
    let ids = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut handles = Vec::new();
    for i in 0..tasks {
        let mut client = clients[i % clients.len()].clone();
        let ids = Arc::clone(&ids);
        let (batch, chunk) = (args.batch, args.chunk);
        handles.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            let mut calls = 0u64;
            match mode {
                Mode::Unary | Mode::Batch => {
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let n = if mode == Mode::Unary {
                            client.next_id(pb::NextIdRequest {}).await?;
                            1
                        } else {
                            client
                                .next_ids(pb::NextIdsRequest { count: batch })
                                .await?
                                .into_inner()
                                .ids
                                .len() as u64
                        };
                        hist.saturating_record(t.elapsed().as_micros() as u64);
                        calls += 1;
                        ids.fetch_add(n, Ordering::Relaxed);
                    }
                }
                Mode::Stream | Mode::All => {
                    let mut stream = client
                        .stream_ids(pb::StreamIdsRequest {
                            count: 0,
                            chunk_size: chunk,
                        })
                        .await?
                        .into_inner();
                    let mut t = Instant::now();
                    while Instant::now() < deadline {
                        let Some(c) = stream.message().await? else {
                            break;
                        };
                        hist.saturating_record(t.elapsed().as_micros() as u64);
                        t = Instant::now();
                        calls += 1;
                        ids.fetch_add(c.ids.len() as u64, Ordering::Relaxed);
                    }
                }
            }
            anyhow::Ok((calls, hist))
        }));
    }
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>7} [{bar:40}] {elapsed_precise} {msg}")?
            .progress_chars("=> "),
    );
    bar.set_prefix(name);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let secs = start.elapsed().as_secs_f64();
        bar.set_position(start.elapsed().as_millis().min(duration.as_millis()) as u64);
        bar.set_message(format!(
            "{:.2} M IDs/s",
            ids.load(Ordering::Relaxed) as f64 / secs / 1e6
        ));
    }
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut calls = 0;
    for h in handles {
        let (c, hist) = h.await??;
        calls += c;
        latency_us.add(hist)?;
    }
    let elapsed = start.elapsed();
    bar.finish_with_message(format!("{calls} calls"));
    Ok(Report {
        mode: name,
        calls,
        ids: ids.load(Ordering::Relaxed),
        elapsed,
        latency_us,
    })
}

/// A server on 127.0.0.1:0 on its own single-threaded runtime in a thread of this process
/// (a separate `idgen-server` process is the realistic setup; this is for a quick look).
struct InProcess {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start() -> anyhow::Result<Self> {
        let handle = start(
            GeneratorConfig::default(),
            0,
            SystemClock,
            MemoryMarkStore::new(),
        )?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return eprintln!("server runtime: {e}"),
            };
            rt.block_on(async move {
                let result = async {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let service = IdGenService::new(handle.generator());
                    serve_listener(service, listener, async {
                        let _ = stopped.await;
                    })
                    .await?;
                    handle.shutdown_async().await?;
                    anyhow::Ok(())
                };
                if let Err(e) = result.await {
                    eprintln!("in-process server: {e}");
                }
            });
        });
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
