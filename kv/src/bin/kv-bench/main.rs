//! `kv-bench`: YCSB-style load for ringkit KV.
//!
//! Drives a running `kv-server` over gRPC (`--addr`), or a node embedded in this process
//! (`--embedded DIR`, no network: the storage engine's own ceiling). Workloads A, B, C, F and
//! write-only; uniform or zipfian keys; HDR latency percentiles; `--json` for scripts.
//!
//! ```text
//! kv-server --data-dir /tmp/kvb &
//! kv-bench --load --workload write --concurrency 64 --duration-secs 20
//! ```

mod keys;
mod report;
mod target;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{Durability, SqliteConfig, SqliteStorage};
use tonic::transport::Endpoint;

use keys::{Distribution, KeyChooser, key};
use report::Report;
use target::Client;
use workload::{Op, Workload};

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "kv-bench", about = "YCSB-style load generator for ringkit KV")]
struct Args {
    /// kv-server gRPC addresses, comma-separated; connections are spread over them (every node of
    /// a cluster coordinates).
    #[arg(long, default_value = "127.0.0.1:50071", value_delimiter = ',')]
    addr: Vec<String>,
    /// Drive an etcd cluster at these comma-separated endpoints instead (the comparison peer;
    /// needs the `etcd-bench` feature).
    #[cfg(feature = "etcd-bench")]
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// Run against a node embedded in this process, storing in DIR (no network).
    #[arg(long, value_name = "DIR")]
    embedded: Option<PathBuf>,
    /// Durability of the embedded node.
    #[arg(long, value_enum, default_value = "full")]
    durability: DurabilityArg,
    /// Memory-mapped I/O per SQLite connection of the embedded node, MiB (0: off, the default).
    #[arg(long, default_value_t = 0)]
    mmap_mib: u64,
    /// YCSB workload.
    #[arg(long, value_enum, default_value = "a")]
    workload: Workload,
    /// Key popularity.
    #[arg(long, value_enum, default_value = "uniform")]
    distribution: Distribution,
    /// Records in the key space.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Concurrent clients (each keeps one request in flight).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// gRPC connections the clients share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured seconds (ignored with --ops).
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Stop after this many measured operations instead of a duration.
    #[arg(long)]
    ops: Option<u64>,
    /// Unmeasured seconds before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Write every record once before running.
    #[arg(long)]
    load: bool,
    /// Updates are causal blind writes (they become siblings) instead of last-write-wins.
    #[arg(long)]
    causal_updates: bool,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Seed of the key and operation choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Durability as a CLI value.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DurabilityArg {
    /// synchronous=FULL.
    Full,
    /// synchronous=NORMAL.
    Normal,
}

/// Shared by the workers.
struct Shared {
    /// Measurement has started.
    measuring: AtomicBool,
    /// Stop now.
    stop: AtomicBool,
    /// Measured operations so far.
    done: AtomicU64,
    /// Failed operations.
    errors: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.records > 0 && args.concurrency > 0 && args.connections > 0,
        "records, concurrency and connections must be positive"
    );
    let (clients, target) = connect(&args).await?;

    if args.load {
        load(&args, &clients).await?;
    }

    let mut control = clients[0].clone();
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let chooser = Arc::new(KeyChooser::new(args.distribution, args.records));
    let mut workers = Vec::with_capacity(args.concurrency);
    for w in 0..args.concurrency {
        let client = clients[w % clients.len()].clone();
        let (shared, chooser) = (Arc::clone(&shared), Arc::clone(&chooser));
        let (workload, value_size, lww, seed) = (
            args.workload,
            args.value_size,
            !args.causal_updates,
            args.seed,
        );
        workers.push(tokio::spawn(worker(
            client,
            shared,
            chooser,
            workload,
            value_size,
            lww,
            seed.wrapping_add(w as u64),
        )));
    }

    tokio::time::sleep(Duration::from_secs_f64(args.warmup_secs)).await;
    let before = control.commit_stats().await.ok();
    shared.measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let bar = progress(&args);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = shared.done.load(Ordering::Relaxed);
        let finished = match args.ops {
            Some(n) => {
                bar.set_position(done.min(n));
                done >= n
            }
            None => {
                bar.set_position(started.elapsed().as_millis() as u64);
                started.elapsed().as_secs_f64() >= args.duration_secs
            }
        };
        bar.set_message(format!(
            "{:.0} ops/s",
            done as f64 / started.elapsed().as_secs_f64()
        ));
        if finished {
            break;
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let mut hists: BTreeMap<Op, Histogram<u64>> = BTreeMap::new();
    for w in workers {
        for (op, h) in w.await? {
            hists.entry(op).or_insert_with(report::histogram).add(&h)?;
        }
    }
    let after = control.commit_stats().await.ok();
    let mut all = report::histogram();
    for h in hists.values() {
        all.add(h)?;
    }
    let report = Report {
        target,
        workload: args.workload.name().to_owned(),
        distribution: format!("{:?}", args.distribution).to_lowercase(),
        records: args.records,
        value_size: args.value_size,
        concurrency: args.concurrency,
        connections: clients.len(),
        seconds: elapsed.as_secs_f64(),
        total_ops: all.len(),
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        errors: shared.errors.load(Ordering::Relaxed),
        all: report::summarize(&all, elapsed),
        by_op: report::by_op(&hists, elapsed),
        group_commit: match (after, before) {
            (Some(a), Some(b)) => Some(a.since(&b)),
            _ => None,
        },
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print(&report);
    }
    if let Client::Embedded(node) = &clients[0] {
        node.close().await;
    }
    Ok(())
}

/// Connects to the target; returns one client per connection and a label.
async fn connect(args: &Args) -> anyhow::Result<(Vec<Client>, String)> {
    if let Some(dir) = &args.embedded {
        let mut config = SqliteConfig::new(dir, "bench");
        config.durability = match args.durability {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        };
        config.mmap_bytes = args.mmap_mib.saturating_mul(1024 * 1024);
        let store = tokio::task::spawn_blocking(move || SqliteStorage::open(config)).await??;
        let node = KvNode::new(store, NodeConfig::new("bench"), Arc::new(SystemClock))?;
        return Ok((
            vec![Client::Embedded(node)],
            format!("embedded:{}", dir.display()),
        ));
    }
    #[cfg(feature = "etcd-bench")]
    if !args.etcd.is_empty() {
        let mut clients = Vec::with_capacity(args.connections);
        for _ in 0..args.connections {
            let client = etcd_client::Client::connect(&args.etcd, None)
                .await
                .with_context(|| format!("connecting to etcd at {}", args.etcd.join(",")))?;
            clients.push(Client::Etcd(Box::new(client.kv_client())));
        }
        return Ok((clients, format!("etcd:{}", args.etcd.join(","))));
    }
    anyhow::ensure!(!args.addr.is_empty(), "--addr needs at least one address");
    let mut clients = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let addr = &args.addr[i % args.addr.len()];
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to kv-server at {addr}"))?;
        clients.push(Client::Grpc(KvClient::new(channel)));
    }
    Ok((clients, format!("grpc:{}", args.addr.join(","))))
}

/// Writes every record once, in batches, with a progress bar.
async fn load(args: &Args, clients: &[Client]) -> anyhow::Result<()> {
    let bar = ProgressBar::new(args.records).with_message("loading");
    bar.set_style(ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} ({per_sec})",
    )?);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut client = clients[t % clients.len()].clone();
        let (next, bar, records, size) = (
            Arc::clone(&next),
            bar.clone(),
            args.records,
            args.value_size,
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(t as u64);
            loop {
                let start = next.fetch_add(500, Ordering::Relaxed);
                if start >= records {
                    return Ok::<(), String>(());
                }
                let end = (start + 500).min(records);
                let items = (start..end)
                    .map(|i| (key(i), value(&mut rng, size)))
                    .collect();
                client.load(items).await?;
                bar.inc(end - start);
            }
        }));
    }
    for t in tasks {
        t.await?.map_err(|e| anyhow::anyhow!("load failed: {e}"))?;
    }
    bar.finish_and_clear();
    eprintln!("loaded {} records", args.records);
    Ok(())
}

/// A random value of `size` bytes.
fn value(rng: &mut SmallRng, size: usize) -> Bytes {
    let mut v = vec![0u8; size];
    rng.fill_bytes(&mut v);
    Bytes::from(v)
}

/// The progress bar: by operations with --ops, by time otherwise.
fn progress(args: &Args) -> ProgressBar {
    let (len, template) = match args.ops {
        Some(n) => (n, "{spinner} [{bar:40}] {pos}/{len} ops {msg}"),
        None => (
            (args.duration_secs * 1000.0) as u64,
            "{spinner} [{bar:40}] {elapsed} {msg}",
        ),
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// One client: issue operations back to back until told to stop.
async fn worker(
    mut client: Client,
    shared: Arc<Shared>,
    chooser: Arc<KeyChooser>,
    workload: Workload,
    value_size: usize,
    lww: bool,
    seed: u64,
) -> BTreeMap<Op, Histogram<u64>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut hists: BTreeMap<Op, Histogram<u64>> = BTreeMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        let op = workload.pick(rng.random());
        let k = key(chooser.next(&mut rng));
        let started = Instant::now();
        let result = match op {
            Op::Read => client.read(k).await.map(|_| ()),
            Op::Update => {
                let v = value(&mut rng, value_size);
                client.update(k, v, lww).await
            }
            Op::ReadModifyWrite => {
                let v = value(&mut rng, value_size);
                client.read_modify_write(k, v).await
            }
        };
        let ns = started.elapsed().as_nanos() as u64;
        if !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        match result {
            Ok(()) => {
                let _ = hists
                    .entry(op)
                    .or_insert_with(report::histogram)
                    .record(ns.max(1));
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if shared.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("first error: {e}");
                }
            }
        }
    }
    hists
}
