#!/usr/bin/env bash
# Reproduces the replication figures in docs/replication.md. Usage: scripts/bench-cluster.sh [BUILD_DIR]
# Starts a 3-member cluster on 127.0.0.1 (data in a temporary folder), runs abode-bench at 64 concurrent
# clients against the leader and through a follower, alternately for three rounds, prints every run and a
# summary of medians (the last JSON line before the 1-client run), and cleans up.
set -euo pipefail
BUILD=${1:-build}
ALLOC=$BUILD/allocator-service/abode-allocator
BENCH=$BUILD/integration/abode-bench
WORK=$(mktemp -d /var/tmp/abode-cluster-bench-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Free ports from the kernel: bind port 0, read it back.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -a GRPC RAFT
PEERS=""
for i in 1 2 3; do
  GRPC[$i]=$(free_port); RAFT[$i]=$(free_port)
  PEERS="$PEERS${PEERS:+,}$i=127.0.0.1:${RAFT[$i]}@127.0.0.1:${GRPC[$i]}"
done

fallocate -l 4M "$WORK/probe"
probe() { { dd if=/dev/zero of="$WORK/probe" bs=4k count=200 oflag=direct,dsync conv=notrunc 2>&1; } | tail -1; }
echo "disk probe before (200 x 4 KiB direct+dsync writes): $(probe)"

for i in 1 2 3; do
  "$ALLOC" --id "$i" --listen "127.0.0.1:${GRPC[$i]}" --raft-listen "127.0.0.1:${RAFT[$i]}" --peers "$PEERS" \
    --data-dir "$WORK/member$i" --log-level info >"$WORK/member$i.log" 2>&1 &
  PIDS+=($!)
done
# The leader logs "leading term" once its first entry is applied.
LEADER=""
for _ in $(seq 1 600); do
  LEADER=$(grep -l "leading term" "$WORK"/member*.log 2>/dev/null | head -1 | sed 's/.*member\([0-9]\).log/\1/' || true)
  [ -n "$LEADER" ] && break
  sleep 0.05
done
[ -n "$LEADER" ] || { echo "no leader elected"; exit 1; }
FOLLOWER=$(( LEADER % 3 + 1 ))
echo "leader: member $LEADER (127.0.0.1:${GRPC[$LEADER]}), follower used: member $FOLLOWER"

# Leader-direct and through-a-follower alternate for three rounds, so that a noisy minute on this shared
# machine lands on both; the summary compares their medians.
ROUNDS=3
for round in $(seq 1 $ROUNDS); do
  echo "== round $round: 64 clients, Allocate, leader-direct"
  "$BENCH" --server "127.0.0.1:${GRPC[$LEADER]}" --pool "direct$round" --create-cidr "10.$(( (round - 1) * 32 )).0.0/12" \
    --concurrency 64 --duration 5s | tail -1 | tee -a "$WORK/direct.jsonl"
  echo "== round $round: 64 clients, Allocate, through a follower (forwarded to the leader)"
  "$BENCH" --server "127.0.0.1:${GRPC[$FOLLOWER]}" --pool "forwarded$round" \
    --create-cidr "10.$(( (round - 1) * 32 + 16 )).0.0/12" --concurrency 64 --duration 5s | tail -1 |
    tee -a "$WORK/forwarded.jsonl"
done
python3 - "$WORK/direct.jsonl" "$WORK/forwarded.jsonl" <<'PY'
import json, statistics, sys
direct = [json.loads(l) for l in open(sys.argv[1])]
forwarded = [json.loads(l) for l in open(sys.argv[2])]
med = lambda runs, k: statistics.median(r[k] for r in runs)
print(json.dumps({
    "direct_ops_per_sec_median": round(med(direct, "ops_per_sec")),
    "direct_p99_ms_median": round(med(direct, "p99_ms"), 2),
    "forwarded_ops_per_sec_median": round(med(forwarded, "ops_per_sec")),
    "forwarded_p50_over_direct_p50": round(med(forwarded, "p50_ms") / med(direct, "p50_ms"), 2),
    "per_round_p50_ratio": [round(f["p50_ms"] / d["p50_ms"], 2) for d, f in zip(direct, forwarded)],
}))
PY
echo "== 1 client, Allocate, leader-direct"
"$BENCH" --server "127.0.0.1:${GRPC[$LEADER]}" --pool single --create-cidr 10.128.0.0/12 --concurrency 1 \
  --duration 3s | tail -1
echo "disk probe after: $(probe)"
