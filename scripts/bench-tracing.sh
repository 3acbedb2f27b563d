#!/usr/bin/env bash
# What tracing costs Allocate throughput. Usage: scripts/bench-tracing.sh [BUILD_DIR] [PAIRS]
# A single-node allocator on 127.0.0.1 runs Allocate with 64 clients (abode-bench) in alternating runs:
# tracing off (no OTEL_* endpoint), and tracing on at 100% sampling exporting to a live Jaeger v2 all-in-one
# (built by scripts/test-tools.sh jaeger, in-memory storage bounded to 20,000 traces, so that its own memory
# and CPU stay steady over the runs). Every call is a root span there: the server span,
# the raft.commit span of its entry and its raft.apply span, all exported. PAIRS (default 3) off/on pairs run in
# one go, each on a fresh data dir; the ratio of the medians is printed last.
set -euo pipefail
BUILD=${1:-build}
PAIRS=${2:-3}
ALLOC=$BUILD/allocator-service/abode-allocator
BENCH=$BUILD/integration/abode-bench
HERE=$(cd "$(dirname "$0")" && pwd)
"$HERE/test-tools.sh" jaeger >/dev/null
JAEGER=$("$HERE/test-tools.sh" --dir jaeger)/jaeger
WORK=$(mktemp -d /var/tmp/abode-bench-tracing-XXXXXX)
PID=""
JPID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  [ -n "$JPID" ] && kill "$JPID" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OTLP=$(free_port); QUERY=$(free_port); QGRPC=$(free_port); HEALTH=$(free_port); METRICS=$(free_port)
cat > "$WORK/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: "127.0.0.1:$QUERY"
    grpc:
      endpoint: "127.0.0.1:$QGRPC"
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 20000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: "127.0.0.1:$HEALTH"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "127.0.0.1:$OTLP"
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
YAML
"$JAEGER" --config "file:$WORK/jaeger.yaml" > "$WORK/jaeger.log" 2>&1 &
JPID=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$HEALTH/status" >/dev/null && break; sleep 0.1; done

run() {  # run MODE N: one 5 s Allocate run; prints allocations per second
  local mode=$1 n=$2
  rm -rf "$WORK/data" "$WORK/port"
  if [ "$mode" = on ]; then
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP OTEL_TRACES_SAMPLER=always_on \
      "$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warn \
      --metrics-listen "127.0.0.1:$METRICS" &
  else
    "$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warn &
  fi
  PID=$!
  for _ in $(seq 1 6000); do [ -s "$WORK/port" ] && break; sleep 0.01; done
  "$BENCH" --server "127.0.0.1:$(cat "$WORK/port")" --pool "p$n$mode" --create-cidr 10.0.0.0/12 --concurrency 64 \
    --duration 5s | tail -1 > "$WORK/out"
  # Spans exported and dropped (a full queue drops rather than slowing a call down): printed on stderr.
  [ "$mode" = on ] && curl -s "http://127.0.0.1:$METRICS/metrics" | grep -E '^abode_trace_export_(spans|dropped)_total' \
    | tr '\n' ' ' >&2 && echo >&2
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops_per_sec"])' "$WORK/out"
}

off=(); on=()
for i in $(seq 1 "$PAIRS"); do
  a=$(run off "$i"); b=$(run on "$i")
  echo "pair $i: off $a/s, on (100% to Jaeger) $b/s"
  off+=("$a"); on+=("$b")
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
m_off, m_on = statistics.median(off), statistics.median(on)
print(f'{{"off_median_per_s": {m_off:.0f}, "on_median_per_s": {m_on:.0f}, "on_over_off": {m_on / m_off:.3f}}}')
PY
curl -s "http://127.0.0.1:$QUERY/api/services" | grep -q abode-allocator || { echo "Jaeger received no spans" >&2; exit 1; }
