//! `ratelimit-bench`: load generator for `ShouldRateLimit` over loopback, with a progress bar
//! and an HDR latency summary; and a cluster accuracy check.
//!
//! ```text
//! ratelimit-bench rls --requests 200000 --concurrency 64            # in-process server on 127.0.0.1:0
//! ratelimit-bench rls --addr http://127.0.0.1:50061                  # a running ratelimit-server
//! ratelimit-bench cluster --nodes 3 --keys 200 --limit 100           # over-admission across nodes
//! ```
//! Every target is on this machine (127.0.0.1); runs are bounded by `--requests`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use ringkit_ratelimit::RateLimiter;
use ringkit_ratelimit::clock::MonotonicClock;
use ringkit_ratelimit::cluster::{Cluster, ClusterConfig, Peer};
use ringkit_ratelimit::counter::{Counter, LocalCounter};
use ringkit_ratelimit::grpc::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use ringkit_ratelimit::grpc::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use ringkit_ratelimit::grpc::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use ringkit_ratelimit::grpc::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use ringkit_ratelimit::grpc::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use ringkit_ratelimit::grpc::{ServeOptions, serve};
use ringkit_ratelimit::policy::{DEFAULT_POLICY, Policies, parse_policy};
use ringkit_ratelimit::store::KeyedStore;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "ratelimit-bench",
    about = "Load and accuracy benchmarks for ratelimit-server"
)]
struct Args {
    /// Worker threads of the load generator's runtime (1 leaves the other core to the server).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// What to run.
    #[command(subcommand)]
    mode: Mode,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Throughput and latency of Envoy's ShouldRateLimit.
    Rls {
        /// Server to load; without it an in-process server is started on 127.0.0.1:0.
        #[arg(long)]
        addr: Option<String>,
        /// Total calls.
        #[arg(long, default_value_t = 200_000)]
        requests: u64,
        /// Calls in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// HTTP/2 connections the calls are spread over.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Distinct keys (descriptor values).
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// Domain and descriptor key (the built-in policy limits `default`/`key`).
        #[arg(long, default_value = "default")]
        domain: String,
        /// Descriptor key.
        #[arg(long, default_value = "key")]
        descriptor_key: String,
    },
    /// Over-admission of a limit enforced across an in-process cluster on 127.0.0.1.
    Cluster {
        /// Nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Keys, each limited to `limit` per hour.
        #[arg(long, default_value_t = 200)]
        keys: u64,
        /// Limit per key.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Offered hits per key, as a multiple of the limit, spread over all nodes.
        #[arg(long, default_value_t = 3)]
        overload: u64,
        /// Calls in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(args.mode))
}

/// Runs one benchmark.
async fn run(mode: Mode) -> anyhow::Result<()> {
    match mode {
        Mode::Rls {
            addr,
            requests,
            concurrency,
            connections,
            keys,
            domain,
            descriptor_key,
        } => {
            let (url, server) = match addr {
                Some(a) => (a, None),
                None => {
                    let policies = Policies::new(parse_policy(DEFAULT_POLICY, "built-in")?);
                    let (url, stop) = start_node(Arc::new(policies), None).await?;
                    (url, Some(stop))
                }
            };
            let mut clients = Vec::new();
            for _ in 0..connections.max(1) {
                let channel = Endpoint::from_shared(url.clone())?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {url}"))?;
                clients.push(RateLimitServiceClient::new(channel));
            }
            let work: Vec<(usize, String)> = (0..requests)
                .map(|i| {
                    (
                        (i % connections.max(1) as u64) as usize,
                        format!("k{}", i % keys.max(1)),
                    )
                })
                .collect();
            let targets = work
                .into_iter()
                .map(|(c, key)| (clients[c].clone(), request(&domain, &descriptor_key, &key)))
                .collect();
            let report = drive(targets, concurrency, "ShouldRateLimit").await?;
            report.print(&format!("ShouldRateLimit on {url}, {concurrency} in flight over {connections} connections, {keys} keys"));
            if let Some(stop) = server {
                let _ = stop.send(());
            }
        }
        Mode::Cluster {
            nodes,
            keys,
            limit,
            overload,
            concurrency,
        } => {
            cluster(nodes, keys, limit, overload, concurrency).await?;
        }
    }
    Ok(())
}

/// One ShouldRateLimit request.
fn request(domain: &str, descriptor_key: &str, value: &str) -> RateLimitRequest {
    RateLimitRequest {
        domain: domain.into(),
        descriptors: vec![RateLimitDescriptor {
            entries: vec![Entry {
                key: descriptor_key.into(),
                value: value.into(),
            }],
            ..Default::default()
        }],
        hits_addend: 0,
    }
}

/// What a run measured.
struct Report {
    /// Latency of every call, in microseconds.
    histogram: Histogram<u64>,
    /// Wall time.
    elapsed: Duration,
    /// Calls answered OK.
    ok: u64,
    /// Calls answered OVER_LIMIT.
    over: u64,
    /// Calls that failed.
    errors: u64,
}

impl Report {
    /// Prints the summary table.
    fn print(&self, title: &str) {
        let h = &self.histogram;
        let n = h.len();
        println!("\n{title}");
        println!("| calls | ok | over limit | errors | calls/s | p50 | p90 | p99 | p99.9 | max |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {n} | {} | {} | {} | {:.0} | {} us | {} us | {} us | {} us | {} us |",
            self.ok,
            self.over,
            self.errors,
            n as f64 / self.elapsed.as_secs_f64(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
}

/// Runs every call with `concurrency` in flight; a progress bar tracks them.
async fn drive(
    calls: Vec<(RateLimitServiceClient<Channel>, RateLimitRequest)>,
    concurrency: usize,
    label: &str,
) -> anyhow::Result<Report> {
    let total = calls.len() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")?
            .progress_chars("=> "),
    );
    bar.set_message(label.to_owned());
    let queue = Arc::new(std::sync::Mutex::new(calls.into_iter()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let queue = queue.clone();
        let bar = bar.clone();
        workers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("static bounds are valid");
            let (mut ok, mut over, mut errors) = (0u64, 0u64, 0u64);
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .next();
                let Some((mut client, req)) = next else { break };
                let t = Instant::now();
                match client.should_rate_limit(req).await {
                    Ok(r) if r.get_ref().overall_code == Code::Ok as i32 => ok += 1,
                    Ok(_) => over += 1,
                    Err(_) => errors += 1,
                }
                h.saturating_record(t.elapsed().as_micros() as u64);
                bar.inc(1);
            }
            (h, ok, over, errors)
        }));
    }
    let mut report = Report {
        histogram: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        elapsed: Duration::ZERO,
        ok: 0,
        over: 0,
        errors: 0,
    };
    for w in workers {
        let (h, ok, over, errors) = w.await?;
        report.histogram.add(&h)?;
        report.ok += ok;
        report.over += over;
        report.errors += errors;
    }
    report.elapsed = start.elapsed();
    bar.finish_and_clear();
    Ok(report)
}

/// Starts a node on 127.0.0.1:0 (optionally in a cluster); returns its URL and stop switch.
async fn start_node(
    policies: Arc<Policies>,
    cluster: Option<(TcpListener, ClusterConfig)>,
) -> anyhow::Result<(String, oneshot::Sender<()>)> {
    let local = LocalCounter::new(
        Arc::new(KeyedStore::default()),
        Arc::new(MonotonicClock::new()),
    );
    let (listener, counter) = match cluster {
        None => (
            TcpListener::bind("127.0.0.1:0").await?,
            Counter::Local(local),
        ),
        Some((listener, config)) => (
            listener,
            Counter::Cluster(Arc::new(Cluster::start(config, local)?)),
        ),
    };
    let addr: SocketAddr = listener.local_addr()?;
    let limiter = RateLimiter::new(policies, counter);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = serve(
            limiter,
            ServeOptions::default(),
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        {
            eprintln!("server: {e}");
        }
    });
    Ok((format!("http://{addr}"), stop))
}

/// The cluster accuracy run.
async fn cluster(
    nodes: usize,
    keys: u64,
    limit: u64,
    overload: u64,
    concurrency: usize,
) -> anyhow::Result<()> {
    let policy = format!(
        "[[domain]]\nname = \"bench\"\n[[domain.descriptor]]\nkey = \"key\"\nrequests = {limit}\nwindow = \"1h\"\nalgorithm = \"fixed_window\"\n"
    );
    let mut listeners = Vec::new();
    for _ in 0..nodes {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let a = l.local_addr()?;
        listeners.push((l, a));
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(|(_, a)| *a).collect();
    let mut urls = Vec::new();
    let mut stops = Vec::new();
    for (i, (listener, _)) in listeners.into_iter().enumerate() {
        let peers = (0..nodes)
            .filter(|&j| j != i)
            .map(|j| Peer {
                id: format!("n{j}"),
                addr: format!("http://{}", addrs[j]),
            })
            .collect();
        let config = ClusterConfig {
            node_id: format!("n{i}"),
            peers,
            ..ClusterConfig::default()
        };
        let policies = Arc::new(Policies::new(parse_policy(&policy, "bench")?));
        let (url, stop) = start_node(policies, Some((listener, config))).await?;
        urls.push(url);
        stops.push(stop);
    }
    let mut clients = Vec::new();
    for url in &urls {
        clients.push(RateLimitServiceClient::new(
            Endpoint::from_shared(url.clone())?
                .tcp_nodelay(true)
                .connect()
                .await?,
        ));
    }
    // Every key gets `overload * limit` hits, interleaved across keys and nodes.
    let mut calls = Vec::new();
    for round in 0..overload * limit {
        for k in 0..keys {
            let node = ((round + k) % nodes as u64) as usize;
            calls.push((
                clients[node].clone(),
                request("bench", "key", &format!("key-{k}")),
            ));
        }
    }
    let report = drive(calls, concurrency, "cluster").await?;
    let allowed = keys * limit;
    let over = report.ok as f64 / allowed as f64 - 1.0;
    report.print(&format!(
        "{nodes}-node cluster, {keys} keys x limit {limit}, {overload}x offered"
    ));
    println!(
        "\nadmitted {} of {} allowed: over-admission {:+.3}%",
        report.ok,
        allowed,
        over * 100.0
    );
    for s in stops {
        let _ = s.send(());
    }
    Ok(())
}
