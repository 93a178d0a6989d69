# Sourced by the kv bench scripts (from the repository root): a scratch directory and the
# processes a script starts, all stopped and removed when it exits, normally, on an error or on
# Ctrl-C.
#
#   source kv/bench/processes.sh <name>   # sets WORK (a fresh /tmp/ringkit-<name>.XXXXXX),
#                                         # TARGET (cargo's target directory) and PIDS (empty)

WORK="$(mktemp -d "/tmp/ringkit-$1.XXXXXX")"
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
PIDS=()

# Stops every process in PIDS, waits for each, and forgets them.
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}

cleanup() {
  stop_all
  rm -rf "$WORK"
}
trap cleanup EXIT
