#!/usr/bin/env bash
# Reproduces the watch figures in docs/nodes.md: a single-node allocator on 127.0.0.1 (data in a temporary
# folder), 5,000 simulated node clients watching their assignments, and changes measured from their
# acknowledgement to the arrival of their deltas; the allocator's VmRSS before and after the idle watchers.
# Usage: [CHANNELS=2] scripts/bench-watch.sh [BUILD_DIR] [WATCHERS] [CHANGES]
set -euo pipefail
BUILD=${1:-build}
WATCHERS=${2:-5000}
CHANGES=${3:-24}
CHANNELS=${CHANNELS:-2}
ALLOC=$BUILD/allocator-service/abode-allocator
BENCH=$BUILD/integration/abode-watch-bench
WORK=$(mktemp -d /var/tmp/abode-bench-watch-XXXXXX)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"
"$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warn &
PID=$!
for _ in $(seq 1 6000); do [ -s "$WORK/port" ] && break; sleep 0.01; done
[ -s "$WORK/port" ] || { echo "abode-allocator did not start" >&2; exit 1; }
SERVER=127.0.0.1:$(cat "$WORK/port")

echo "== $WATCHERS watchers, $CHANGES changes, allocator pid $PID on $SERVER ($(nproc) cores)"
"$BENCH" --server "$SERVER" --server-pid "$PID" --watchers "$WATCHERS" --changes "$CHANGES" --channels "$CHANNELS"
