//! Latency summaries: HDR histograms per operation, a table for people and JSON for scripts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::target::CommitStats;
use super::workload::Op;

/// A new histogram in nanoseconds, 1 ns to 60 s, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .unwrap_or_else(|e| panic!("histogram bounds: {e}"))
}

/// One operation's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct OpSummary {
    /// Operations completed.
    pub(crate) ops: u64,
    /// Operations per second.
    pub(crate) ops_per_sec: f64,
    /// Mean latency, microseconds.
    pub(crate) mean_us: f64,
    /// Median latency, microseconds.
    pub(crate) p50_us: f64,
    /// 99th percentile, microseconds.
    pub(crate) p99_us: f64,
    /// 99.9th percentile, microseconds.
    pub(crate) p999_us: f64,
    /// Slowest operation, microseconds.
    pub(crate) max_us: f64,
}

/// A whole run.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Report {
    /// `grpc:ADDR` or `embedded:DIR`.
    pub(crate) target: String,
    /// The workload's name.
    pub(crate) workload: String,
    /// `uniform` or `zipfian`.
    pub(crate) distribution: String,
    /// Records in the key space.
    pub(crate) records: u64,
    /// Value size, bytes.
    pub(crate) value_size: usize,
    /// Concurrent clients.
    pub(crate) concurrency: usize,
    /// gRPC connections they share.
    pub(crate) connections: usize,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Measured operations.
    pub(crate) total_ops: u64,
    /// Operations per second.
    pub(crate) ops_per_sec: f64,
    /// Failed operations (not in the latencies).
    pub(crate) errors: u64,
    /// Every operation together, then each kind.
    pub(crate) all: OpSummary,
    pub(crate) by_op: BTreeMap<String, OpSummary>,
    /// Group commit during the measured window.
    pub(crate) group_commit: Option<CommitStats>,
}

/// Summarises one histogram over `elapsed`.
pub(crate) fn summarize(h: &Histogram<u64>, elapsed: Duration) -> OpSummary {
    let us = |ns: u64| ns as f64 / 1000.0;
    OpSummary {
        ops: h.len(),
        ops_per_sec: h.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        mean_us: h.mean() / 1000.0,
        p50_us: us(h.value_at_quantile(0.50)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
    }
}

/// Builds the per-op map.
pub(crate) fn by_op(
    hists: &BTreeMap<Op, Histogram<u64>>,
    elapsed: Duration,
) -> BTreeMap<String, OpSummary> {
    hists
        .iter()
        .map(|(op, h)| (op.name().to_owned(), summarize(h, elapsed)))
        .collect()
}

/// Prints the human table.
pub(crate) fn print(r: &Report) {
    println!(
        "kv-bench  target={}  workload={}  keys={} ({} records, {} B values)  clients={} over {} connection(s)",
        r.target, r.workload, r.distribution, r.records, r.value_size, r.concurrency, r.connections
    );
    println!(
        "{:.1} s, {} ops, {:.0} ops/s, {} errors",
        r.seconds, r.total_ops, r.ops_per_sec, r.errors
    );
    println!(
        "{:<8} {:>10} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "op", "ops", "ops/s", "mean us", "p50 us", "p99 us", "p999 us", "max us"
    );
    let row = |name: &str, s: &OpSummary| {
        println!(
            "{:<8} {:>10} {:>12.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            name, s.ops, s.ops_per_sec, s.mean_us, s.p50_us, s.p99_us, s.p999_us, s.max_us
        );
    };
    for (name, s) in &r.by_op {
        row(name, s);
    }
    row("all", &r.all);
    if let Some(g) = &r.group_commit {
        println!(
            "group commit ({}): {} commits for {} write requests, mean {:.1} requests/commit, max {}, mean commit {:.0} us (of which COMMIT+sync {:.0} us)",
            g.durability,
            g.commits,
            g.requests,
            g.mean_batch,
            g.max_batch,
            g.mean_commit_us,
            g.mean_sync_us
        );
        let labels = [
            "1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65-128", "129-256", "257-512",
            "513-1024", ">1024",
        ];
        let parts: Vec<String> = g
            .histogram
            .iter()
            .zip(labels)
            .filter(|(n, _)| **n > 0)
            .map(|(n, l)| format!("{l}: {n}"))
            .collect();
        println!("commits by requests per commit: {}", parts.join(", "));
    }
}
