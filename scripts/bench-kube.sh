#!/usr/bin/env bash
# Reproduces the abode-kube figures in README.md and docs/kube.md: a real kube-apiserver and etcd
# (scripts/kube-test-env.sh), a single-node abode-allocator and abode-kube on loopback, then abode-kube-bench
# (Nodes and pods created through the API, pod allocations through abode's API, label changes and
# LoadBalancer Services timed, abode-kube's VmRSS). Builds nothing; everything runs in a temporary folder
# that is removed afterwards (kept, with its logs, when a step fails).
# Exit 77 when kube-apiserver/etcd are not built and CI is unset.
# Usage: [PARALLEL=16] [TIMEOUT=30 (longest wait for one step, s)] scripts/bench-kube.sh [BUILD_DIR] [PODS] [NODES] [LABEL_CHANGES] [SERVICES]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
BUILD=${1:-build}
PODS=${2:-5000}
NODES=${3:-100}
CHANGES=${4:-200}
SERVICES=${5:-100}
PARALLEL=${PARALLEL:-16}
TIMEOUT=${TIMEOUT:-30}
ALLOC=$BUILD/allocator-service/abode-allocator
KUBE=$BUILD/kube/abode-kube
BENCH=$BUILD/kube/abode-kube-bench
for bin in "$ALLOC" "$KUBE" "$BENCH"; do
  [ -x "$bin" ] || { echo "bench-kube: $bin is not built" >&2; exit 1; }
done

WORK=$(mktemp -d /var/tmp/abode-bench-kube-XXXXXX)
ALLOC_PID=""
KUBE_PID=""
ENV_STARTED=""
OK=""
cleanup() {
  for pid in "$KUBE_PID" "$ALLOC_PID"; do
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  if [ -n "$ENV_STARTED" ]; then "$here/kube-test-env.sh" stop "$WORK/kube" >/dev/null 2>&1 || true; fi
  if [ -n "$OK" ]; then rm -rf "$WORK"; else echo "bench-kube: logs kept in $WORK" >&2; fi
}
trap cleanup EXIT

rc=0
"$here/kube-test-env.sh" start "$WORK/kube" >"$WORK/kube-env.log" 2>&1 || rc=$?
if [ "$rc" = 77 ]; then
  OK=1
  echo "bench-kube: kube-apiserver/etcd are not built (scripts/test-tools.sh kube); skipped"
  exit 77
fi
[ "$rc" = 0 ] || { cat "$WORK/kube-env.log" >&2; exit 1; }
ENV_STARTED=1

ulimit -n "$(ulimit -Hn)"
"$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warn \
  >"$WORK/allocator.log" 2>&1 &
ALLOC_PID=$!
for _ in $(seq 1 6000); do [ -s "$WORK/port" ] && break; sleep 0.01; done
[ -s "$WORK/port" ] || { echo "bench-kube: abode-allocator did not start" >&2; exit 1; }
SERVER=127.0.0.1:$(cat "$WORK/port")

"$KUBE" --kubeconfig "$WORK/kube/kubeconfig" --allocator "$SERVER" --lease-namespace default \
  --listen 127.0.0.1:0 --health-listen 127.0.0.1:0 --port-file "$WORK/kube-ports" \
  >"$WORK/abode-kube.log" 2>&1 &
KUBE_PID=$!
for _ in $(seq 1 6000); do [ -s "$WORK/kube-ports" ] && break; sleep 0.01; done
[ -s "$WORK/kube-ports" ] || { echo "bench-kube: abode-kube did not start" >&2; exit 1; }
METRICS_PORT=$(cut -d' ' -f1 "$WORK/kube-ports")

echo "== abode-kube-bench: $PODS pods on $NODES nodes, $CHANGES label changes, $SERVICES Services," \
  "$PARALLEL workers; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
"$BENCH" --kubeconfig "$WORK/kube/kubeconfig" --allocator "$SERVER" --kube-pid "$KUBE_PID" \
  --kube-metrics "http://127.0.0.1:$METRICS_PORT/metrics" --pods "$PODS" --nodes "$NODES" \
  --label-changes "$CHANGES" --services "$SERVICES" --parallel "$PARALLEL" --timeout-seconds "$TIMEOUT"
OK=1
