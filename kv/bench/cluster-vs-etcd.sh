#!/usr/bin/env bash
# A three-node ringkit KV cluster against a three-node etcd cluster, same machine, same load
# generator, same workloads, in one run. Prints each run's kv-bench table, then one summary table
# (median of the runs per system and workload).
#
#   bash kv/bench/cluster-vs-etcd.sh                 # YCSB A and B, 64 clients, 3 runs of 10 s each
#   RUNS=1 SECS=5 WORKLOADS="a" bash kv/bench/cluster-vs-etcd.sh
#
# Needs: the Rust toolchain, and etcd (Debian: `apt-get install etcd-server`). kv-bench's etcd driver
# (feature `etcd-bench`, the `etcd-client` crate) runs `protoc` in its build script; this script
# installs the `protox` binary for that, so no system protoc is needed.
#
# The two systems run one after the other, never together, so neither steals the other's CPU.
# Both are durable before they acknowledge: ringkit fdatasyncs each group commit (FULL) on W=2 of
# N=3 replicas; etcd fsyncs its raft log on a quorum. etcd's reads are linearizable (its default);
# ringkit's are R=2 quorum reads.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS="${RUNS:-3}"
SECS="${SECS:-10}"
CLIENTS="${CLIENTS:-64}"
CONNS="${CONNS:-6}"
RECORDS="${RECORDS:-100000}"
WORKLOADS="${WORKLOADS:-a b}"
source kv/bench/processes.sh vs-etcd

command -v etcd >/dev/null || { echo "etcd not found (Debian: apt-get install etcd-server)" >&2; exit 1; }
PROTOX="$TARGET/ci-tools/bin/protox"
if [[ ! -x "$PROTOX" ]]; then
  cargo install protox --version 0.10.0 --features bin --locked --root "$TARGET/ci-tools"
fi
PROTOC="$PROTOX" cargo build --release -p ringkit-kv --features etcd-bench --bin kv-server --bin kv-bench
BENCH="$TARGET/release/kv-bench"
SERVER="$TARGET/release/kv-server"

# run <system> <workload> <kv-bench target flags...>: appends "system workload ops p50 p99" lines.
run() {
  local system="$1" workload="$2"; shift 2
  for r in $(seq "$RUNS"); do
    echo "== $system, workload $workload, run $r/$RUNS (load average $(cut -d' ' -f1 /proc/loadavg))"
    "$BENCH" "$@" --workload "$workload" --records "$RECORDS" --concurrency "$CLIENTS" --connections "$CONNS" \
      --duration-secs "$SECS" --warmup-secs 2 --seed "$r" | tee "$WORK/out"
    awk -v s="$system" -v w="$workload" '$1 == "all" { print s, w, $3, $5, $6 }' "$WORK/out" >> "$WORK/results"
  done
}

# --- etcd: three members on loopback ----------------------------------------------------------
peers="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
    --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
    --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
    --initial-cluster "$peers" --initial-cluster-state new --log-level error >"$WORK/etcd-$i.log" 2>&1 &
  PIDS+=("$!")
done
ETCD="127.0.0.1:23791,127.0.0.1:23792,127.0.0.1:23793"
sleep 3
"$BENCH" --etcd "$ETCD" --load --records "$RECORDS" --workload c --ops 1 --warmup-secs 0 >/dev/null
for w in $WORKLOADS; do run etcd "$w" --etcd "$ETCD"; done
stop_all

# --- ringkit: three kv-server processes, N=3, R=W=2 ------------------------------------------
members="n1=127.0.0.1:50171/127.0.0.1:50171,n2=127.0.0.1:50172/127.0.0.1:50172,n3=127.0.0.1:50173/127.0.0.1:50173"
for i in 1 2 3; do
  "$SERVER" --node-id "n$i" --listen "127.0.0.1:5017$i" --data-dir "$WORK/kv-$i" \
    --metrics-listen off --cluster-members "$members" >"$WORK/kv-$i.log" 2>&1 &
  PIDS+=("$!")
done
KV="127.0.0.1:50171,127.0.0.1:50172,127.0.0.1:50173"
sleep 3
"$BENCH" --addr "$KV" --load --records "$RECORDS" --workload c --ops 1 --warmup-secs 0 >/dev/null
for w in $WORKLOADS; do run ringkit "$w" --addr "$KV"; done
stop_all

# --- summary: medians ----------------------------------------------------------------------------
echo
echo "Median of $RUNS run(s), $CLIENTS clients, $RECORDS records, 100 B values, ${SECS} s each:"
printf '| %-8s | %-8s | %10s | %8s | %8s |\n' system workload "ops/s" "p50 ms" "p99 ms"
printf '|%s|%s|%s|%s|%s|\n' ---------- ---------- ------------ ---------- ----------
for w in $WORKLOADS; do
  for s in ringkit etcd; do
    med() { awk -v s="$s" -v w="$w" -v c="$1" '$1 == s && $2 == w { print $c }' "$WORK/results" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
    printf '| %-8s | %-8s | %10.0f | %8.2f | %8.2f |\n' "$s" "$w" "$(med 3)" "$(echo "$(med 4)" | awk '{ print $1 / 1000 }')" "$(echo "$(med 5)" | awk '{ print $1 / 1000 }')"
  done
done
