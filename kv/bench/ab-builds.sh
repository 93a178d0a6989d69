#!/usr/bin/env bash
# Two kv-server builds against each other: a fresh three-node cluster per run, the builds
# alternating (A, B, A, B, ...) so that the machine's drift hits both alike. Prints one line a
# run: build, ops/s, p50 and p99 (us), the three servers' CPU per operation (user + system, us,
# from /proc/<pid>/stat over the measured part), and the load average.
#
#   A=/tmp/kv-server-before B=target/release/kv-server bash kv/bench/ab-builds.sh
#   ROUNDS=6 WORKLOAD=b SECS=10 A=... B=... bash kv/bench/ab-builds.sh
#
# A or B may also be a script that execs kv-server with other settings (environment, flags).
# The load generator is target/release/kv-bench (`cargo build --release -p ringkit-kv --bins`).
# When the servers saturate the machine, CPU per operation moves with throughput: read both.
set -euo pipefail
cd "$(dirname "$0")/../.."

: "${A:?set A to the first kv-server binary}" "${B:?set B to the second kv-server binary}"
ROUNDS="${ROUNDS:-4}"
WORKLOAD="${WORKLOAD:-a}"
SECS="${SECS:-10}"
source kv/bench/processes.sh ab-builds
BENCH="$TARGET/release/kv-bench"
HZ="$(getconf CLK_TCK)"

# cpu_ticks <pid>...: user + system clock ticks of the processes so far.
cpu_ticks() {
  local total=0 pid
  for pid in "$@"; do total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat"))); done
  echo "$total"
}

# run_one <binary> <label>
run_one() {
  local bin="$1" label="$2" dir="$WORK/run"
  rm -rf "$dir" && mkdir -p "$dir"
  local members="n1=127.0.0.1:50271/127.0.0.1:50271,n2=127.0.0.1:50272/127.0.0.1:50272,n3=127.0.0.1:50273/127.0.0.1:50273"
  local servers=()
  for i in 1 2 3; do
    "$bin" --node-id "n$i" --listen "127.0.0.1:5027$i" --data-dir "$dir/n$i" --metrics-listen off \
      --cluster-members "$members" >"$dir/n$i.log" 2>&1 &
    PIDS+=("$!")
    servers+=("$!")
  done
  local addrs=127.0.0.1:50271,127.0.0.1:50272,127.0.0.1:50273
  sleep 3
  "$BENCH" --addr "$addrs" --load --records 100000 --workload c --ops 1 --warmup-secs 0 >/dev/null
  "$BENCH" --addr "$addrs" --workload "$WORKLOAD" --records 100000 --concurrency 64 --connections 6 \
    --duration-secs "$SECS" --warmup-secs 2 >"$dir/bench.out" &
  local bench=$!
  # Measure the servers from just after the warm-up to just before the end.
  sleep 2.2
  local before; before="$(cpu_ticks "${servers[@]}")"
  sleep $((SECS - 1))
  local after; after="$(cpu_ticks "${servers[@]}")"
  wait "$bench"
  awk -v label="$label" -v t0="$before" -v t1="$after" -v hz="$HZ" -v secs=$((SECS - 1)) \
    -v load="$(cut -d' ' -f1 /proc/loadavg)" '
    $1 == "all" {
      printf "%s  %8.0f ops/s  p50 %8.0f us  p99 %8.0f us  server cpu %4.0f us/op  load %s\n",
        label, $3, $5, $6, (t1 - t0) / hz * 1e6 / ($3 * secs), load
    }' "$dir/bench.out"
  stop_all
}

for _ in $(seq "$ROUNDS"); do
  run_one "$A" A
  run_one "$B" B
done
