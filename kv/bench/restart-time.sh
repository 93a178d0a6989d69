#!/usr/bin/env bash
# How soon a restarted cluster node serves again: three release kv-server processes on loopback
# (N=3, R=W=2, FULL durability, UDP gossip) holding RECORDS keys; node n3 is killed with SIGKILL
# and started again, and the time from its start until a quorum read through it answers is
# measured (ringctl kv get, polled every 20 ms; each poll is one short process, about 5 ms, which
# the figure includes). Prints one line per restart and the median and maximum.
#
#   bash kv/bench/restart-time.sh                    # 100,000 records, 10 restarts
#   RECORDS=10000 ROUNDS=5 bash kv/bench/restart-time.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RECORDS="${RECORDS:-100000}"
ROUNDS="${ROUNDS:-10}"
source kv/bench/processes.sh restart

cargo build --release -p ringkit-kv --bin kv-server --bin kv-bench -p ringkit-clients --bin ringctl
SERVER="$TARGET/release/kv-server"
BENCH="$TARGET/release/kv-bench"
RINGCTL="$TARGET/release/ringctl"

members="n1=127.0.0.1:50271/127.0.0.1:50271,n2=127.0.0.1:50272/127.0.0.1:50272,n3=127.0.0.1:50273/127.0.0.1:50273"
start() {
  "$SERVER" --node-id "n$1" --listen "127.0.0.1:5027$1" --data-dir "$WORK/kv-$1" \
    --metrics-listen off --cluster-members "$members" >>"$WORK/kv-$1.log" 2>&1 &
  PIDS[$1]=$!
}
for i in 1 2 3; do start "$i"; done
sleep 3
"$BENCH" --addr 127.0.0.1:50271,127.0.0.1:50272,127.0.0.1:50273 --load --records "$RECORDS" \
  --workload c --ops 1 --warmup-secs 0 >/dev/null
"$RINGCTL" --kv 127.0.0.1:50271 kv put restart-probe here >/dev/null

times=()
for r in $(seq "$ROUNDS"); do
  kill -KILL "${PIDS[3]}"
  wait "${PIDS[3]}" 2>/dev/null || true
  sleep 1
  t0=$(date +%s%N)
  start 3
  until "$RINGCTL" --kv 127.0.0.1:50273 kv get restart-probe >/dev/null 2>&1; do sleep 0.02; done
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  times+=("$ms")
  echo "restart $r: serving a quorum read after ${ms} ms (load average $(cut -d' ' -f1 /proc/loadavg))"
  sleep 2
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "median %d ms, max %d ms over %d restarts with %s records\n", v[int((NR + 1) / 2)], v[NR], NR, "'"$RECORDS"'" }'
