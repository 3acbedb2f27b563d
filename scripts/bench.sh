#!/usr/bin/env bash
# Reproduces the allocator figures in the README. Usage: scripts/bench.sh [BUILD_DIR] [--quick]
#   --quick skips the 1,000,000-allocation restart run (it takes a few minutes to load).
# Everything runs against a single-node allocator on 127.0.0.1 with its data in a temporary folder.
set -euo pipefail
BUILD=${1:-build}
QUICK=${2:-}
ALLOC=$BUILD/allocator-service/abode-allocator
BENCH=$BUILD/integration/abode-bench
WORK=$(mktemp -d /var/tmp/abode-bench-XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start() {
  rm -f "$WORK/port"
  "$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warn &
  PID=$!
  for _ in $(seq 1 6000); do [ -s "$WORK/port" ] && break; sleep 0.01; done
  SERVER=127.0.0.1:$(cat "$WORK/port")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

# The disk decides durable-write latency: probe it in the same run (4 KiB O_DIRECT|O_DSYNC overwrites).
fallocate -l 4M "$WORK/probe"
probe=$( { dd if=/dev/zero of="$WORK/probe" bs=4k count=500 oflag=direct,dsync conv=notrunc 2>&1; } | tail -1)
echo "disk probe (500 x 4 KiB direct+dsync writes): $probe"

start
# abode-bench's clients share one gRPC connection unless --channels says otherwise (as ghz does by default).
echo "== 64 clients, gRPC health checks (the floor of a unary call on this machine, same client loop)"
"$BENCH" --server "$SERVER" --mode health --concurrency 64 --duration 5s | tail -1
echo "== 64 clients, Allocate, /12 pool"
"$BENCH" --server "$SERVER" --pool wide --create-cidr 10.0.0.0/12 --concurrency 64 --duration 5s | tail -1
echo "== 64 clients over 8 connections, Allocate, /12 pool"
"$BENCH" --server "$SERVER" --pool wide8 --create-cidr 10.16.0.0/12 --concurrency 64 --channels 8 --duration 5s | tail -1
echo "== 1 client, Allocate"
"$BENCH" --server "$SERVER" --pool single --create-cidr 10.64.0.0/12 --concurrency 1 --duration 5s | tail -1
echo "== 64 clients, Allocate+Release churn, empty /16"
"$BENCH" --server "$SERVER" --pool empty16 --create-cidr 10.128.0.0/16 --mode churn --concurrency 64 --duration 5s | tail -1
echo "== 64 clients, Allocate+Release churn, /16 99.9% full"
"$BENCH" --server "$SERVER" --pool full16 --create-cidr 10.129.0.0/16 --prefill 0.999 --mode churn --concurrency 64 --duration 5s | tail -1
stop

if [ "$QUICK" != "--quick" ]; then
  rm -rf "$WORK/data"
  start
  base=$(rss_kib)
  echo "== loading 1,000,000 allocations into a /8 (64 clients)"
  "$BENCH" --server "$SERVER" --pool big --create-cidr 10.0.0.0/8 --concurrency 64 --count 1000000 | tail -1
  stop
  echo "== restart with 1,000,000 live allocations"
  t0=$(date +%s.%N)
  start
  t1=$(date +%s.%N)
  rss=$(rss_kib)
  awk -v t0="$t0" -v t1="$t1" -v rss="$rss" -v base="$base" 'BEGIN {
    printf "{\"restart_to_serving_s\": %.2f, \"rss_kib\": %d, \"empty_rss_kib\": %d, \"bytes_per_allocation\": %d}\n",
      t1 - t0, rss, base, rss * 1024 / 1000000 }'
  # New owners (the loading run used the default prefix): the same owners again would be idempotent retries.
  echo "== 64 clients, Allocate, on top of 1,000,000 allocations"
  "$BENCH" --server "$SERVER" --pool big --owner-prefix ontop --concurrency 64 --duration 5s | tail -1
  # The same, while one more client lists every allocation of the pool (pages of 5,000) again and again:
  # linearizable reads run on the read executor, not on the threads that answer writes.
  echo "== 64 clients, Allocate, on top of 1,000,000 allocations, one more client listing them all in a loop"
  "$BENCH" --server "$SERVER" --pool big --owner-prefix listed --concurrency 64 --duration 5s --list-pool big | tail -1
  stop
fi
