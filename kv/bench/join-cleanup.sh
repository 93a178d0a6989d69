#!/usr/bin/env bash
# A fourth node joins a three-node cluster holding RECORDS keys: how long until it holds its
# share, and until the old holders have dropped the rows they handed off (ADR 0440,
# "Leftovers"). Three release kv-server processes on loopback (N=3, R=W=2, FULL durability,
# UDP gossip, `leftover_grace_secs = GRACE`); n4 starts alone and joins through n1. Prints the
# keys each node holds every POLL seconds until every key is on exactly three nodes, then reads
# every key back through the newcomer (kv-bench, workload C: "0 errors").
#
#   bash kv/bench/join-cleanup.sh                       # 20,000 records, 5 s grace
#   RECORDS=100000 GRACE=10 bash kv/bench/join-cleanup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

RECORDS="${RECORDS:-20000}"
GRACE="${GRACE:-5}"
POLL="${POLL:-2}"
source kv/bench/processes.sh join-cleanup

cargo build --release -p ringkit-kv --bin kv-server --bin kv-bench -p ringkit-clients --bin ringctl
SERVER="$TARGET/release/kv-server"
BENCH="$TARGET/release/kv-bench"
RINGCTL="$TARGET/release/ringctl"

printf '[cluster]\nleftover_grace_secs = %s\n' "$GRACE" >"$WORK/kv.toml"
grpc() { echo "127.0.0.1:5037$1"; }
gossip() { echo "127.0.0.1:5038$1"; }
founders="n1=$(grpc 1)/$(gossip 1),n2=$(grpc 2)/$(gossip 2),n3=$(grpc 3)/$(gossip 3)"
start() { # start <i> <members> [more kv-server arguments]
  local i="$1" members="$2"
  shift 2
  "$SERVER" --config "$WORK/kv.toml" --node-id "n$i" --listen "$(grpc "$i")" \
    --data-dir "$WORK/kv-$i" --metrics-listen off --cluster-members "$members" "$@" \
    >>"$WORK/kv-$i.log" 2>&1 &
  PIDS[$i]=$!
}
keys() { "$RINGCTL" --kv "$(grpc "$1")" kv stats 2>/dev/null | awk '$1 == "keys" { print $2 }'; }

for i in 1 2 3; do start "$i" "$founders"; done
sleep 3
"$BENCH" --addr "$(grpc 1),$(grpc 2),$(grpc 3)" --load --records "$RECORDS" \
  --workload c --ops 1 --warmup-secs 0 >/dev/null
echo "before the join: n1 $(keys 1), n2 $(keys 2), n3 $(keys 3) keys"

t0=$(date +%s)
start 4 "n4=$(grpc 4)/$(gossip 4)" --join "$(grpc 1)" --gossip-seeds "$(gossip 1)"
while :; do
  sleep "$POLL"
  counts=("$(keys 1)" "$(keys 2)" "$(keys 3)" "$(keys 4)")
  total=$(( ${counts[0]:-0} + ${counts[1]:-0} + ${counts[2]:-0} + ${counts[3]:-0} ))
  echo "t=$(( $(date +%s) - t0 )) s: n1 ${counts[0]}, n2 ${counts[1]}, n3 ${counts[2]}, n4 ${counts[3]} (total $total, $(( 3 * RECORDS )) wanted)"
  if [ "$total" -eq $(( 3 * RECORDS )) ] && [ "${counts[3]:-0}" -gt 0 ]; then break; fi
  if [ $(( $(date +%s) - t0 )) -gt 300 ]; then echo "not settled within 300 s" >&2; exit 1; fi
done
for i in 1 2 3; do
  "$RINGCTL" --kv "$(grpc "$i")" kv admin aae | sed -n 2p | sed "s/^/n$i: /"
done
"$BENCH" --addr "$(grpc 4)" --workload c --records "$RECORDS" --duration-secs 3 --warmup-secs 0 \
  --concurrency 8 | grep -E "ops/s"
