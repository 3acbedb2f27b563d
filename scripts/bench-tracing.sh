#!/usr/bin/env bash
# What tracing costs Allocate throughput.
# Usage: scripts/bench-tracing.sh [BUILD_DIR [ROUNDS [NOTRACE_BUILD_DIR]]]
#   BUILD_DIR          the build to measure (default: build)
#   ROUNDS             rounds (default 3); each runs every mode once, in an order that rotates between rounds
#   NOTRACE_BUILD_DIR  the same tree configured with -DABODE_TRACING=OFF (tracing compiled out); configured and
#                      its abode-allocator built here when missing (default: BUILD_DIR-notrace)
# A single-node allocator on 127.0.0.1 runs Allocate with 64 clients (abode-bench) for 5 s in three modes:
#   on    tracing at 100% sampling, exporting to a live Jaeger v2 all-in-one (built by scripts/test-tools.sh
#         jaeger, in-memory storage bounded to 20,000 traces, so that its own memory and CPU stay steady);
#         every call is a root span there: its server span; and per log entry a raft.commit span linking to
#         every caller in it, with the raft.apply span beneath it;
#   off   the same binary with tracing off (no OTEL_* endpoint);
#   none  the NOTRACE build, tracing compiled out;
#   floor tracing off, and beside it busy loops that use as much spare CPU as Jaeger used in this round's on run,
#         where Jaeger runs (scripts/idle-cgroup.sh: idle_cgroup_spin; only with the cgroup). In a cluster the
#         collector has machines of its own; here it shares the two cores, and on this kind of VM anything that
#         uses the spare core slows the writers' wake-ups, whatever it does. on/floor is what tracing costs the
#         allocator itself; on/off adds what the collector's ingest costs when it shares the machine.
# Jaeger is run as an operator would tune an all-in-one that ingests ~20,000 spans per second (set
# JAEGER_STOCK=1 to run it untuned, with the configuration this script used before):
#   - no `batch` processor: abode already sends batches of up to 512 spans, and re-batching them cost Jaeger a
#     copy of every span and a hand-over between goroutines;
#   - GOGC=400: the in-memory store keeps up to 20,000 traces, and at Go's default (100) the garbage collector
#     took about a third of Jaeger's CPU; 400 trades memory (a few hundred MB here) for most of it.
#   - in a cgroup of its own with cpu.idle 1 where the cgroup v1 cpu hierarchy is writable (root; see
#     scripts/idle-cgroup.sh): Jaeger stands in for a collector on another machine, so it gets only the CPU the
#     allocator and its clients leave. nice 19 alone ranks it only inside the shell's CPU group, whose share it
#     then spends. JAEGER_CGROUP=off runs it at nice 19 in that group (where it took ~10 µs per call from the
#     cores under measurement). Either way its CPU per call is printed, and spans it cannot keep up with are
#     dropped by abode's bounded queue and printed, never waited for.
# The allocator's export queue holds 16,384 spans (OTEL_BSP_MAX_QUEUE_SIZE; default 4,096), so that Jaeger, at
# the lowest priority on a busy machine, falling behind for a second does not drop spans (drops would flatter
# the result; they are printed). It exports batches of 4,096 spans (OTEL_BSP_MAX_EXPORT_BATCH_SIZE; default
# 512), as for any exporter sending ~20,000 spans per second: 5 calls a second instead of 40, each well under
# the receiver's 4 MiB message limit, cut Jaeger's CPU per call from ~12 to ~10 µs.
# Every allocator serves metrics, as a deployed one does. Each run starts on a fresh data dir. After the rounds:
# their medians, on/off (target >= 0.90) and off/none (target >= 0.99), with the load average at the start and
# end, and the CPU time per call of the allocator in each mode and of Jaeger with tracing on. Then, unless
# SIDE_ROUNDS=0, side by side rounds (an off and an on allocator at once, and an off/off control; see below),
# and unless CALLS=0 or valgrind is missing, each mode's instructions per Allocate under callgrind over CALLS
# (default 10,000) calls after start-up, a count the machine's noise hardly moves.
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${2:-3}
NOTRACE=${3:-$BUILD-notrace}
ALLOC=$BUILD/allocator-service/abode-allocator
ALLOC_NONE=$NOTRACE/allocator-service/abode-allocator
BENCH=$BUILD/integration/abode-bench
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=idle-cgroup.sh
. "$HERE/idle-cgroup.sh"
if [ ! -x "$ALLOC_NONE" ]; then
  cmake -S "$HERE/.." -B "$NOTRACE" -DABODE_TRACING=OFF -DCMAKE_BUILD_TYPE="$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' \
    "$BUILD/CMakeCache.txt")" >/dev/null
  cmake --build "$NOTRACE" --target abode-allocator -j2 >/dev/null
fi
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
"$HERE/test-tools.sh" jaeger >/dev/null
JAEGER=$("$HERE/test-tools.sh" --dir jaeger)/jaeger
WORK=$(mktemp -d /var/tmp/abode-bench-tracing-XXXXXX)
PID=""
JPID=""
SIDE_PIDS=()
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  for p in "${SIDE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$JPID" ] && kill "$JPID" 2>/dev/null
  wait 2>/dev/null || true
  idle_cgroup_remove
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OTLP=$(free_port); QUERY=$(free_port); QGRPC=$(free_port); HEALTH=$(free_port)
if [ "${JAEGER_STOCK:-0}" = 1 ]; then
  PROCESSORS="processors: [batch]"; JAEGER_ENV=()
else
  PROCESSORS="processors: []"; JAEGER_ENV=(GOGC=400)
fi
cat > "$WORK/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      $PROCESSORS
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
# Jaeger runs at the lowest CPU priority: in a cluster it has machines of its own, and here it would otherwise
# take its ingest time from the allocator it measures. Spans it cannot keep up with pile up in abode's bounded
# export queue and are counted as dropped (printed below), never slowing a call down.
if [ "${JAEGER_CGROUP:-on}" = on ]; then idle_cgroup_create abode-bench-jaeger; fi
if [ -n "$IDLE_CG_DIR" ]; then
  echo "Jaeger at nice 19 in $IDLE_CG_DIR (cpu.idle 1)" >&2
else
  echo "Jaeger at nice 19 in the CPU group of the allocator and its clients" >&2
fi
(idle_cgroup_join; exec env "${JAEGER_ENV[@]}" nice -n 19 "$JAEGER" --config "file:$WORK/jaeger.yaml") \
  > "$WORK/jaeger.log" 2>&1 &
JPID=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$HEALTH/status" >/dev/null && break; sleep 0.1; done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # CPU time of process $1 so far, in clock ticks

# start_allocator MODE DIR [WRAPPER...]: starts an allocator on a fresh data dir in DIR in the background (none:
# the compiled-out build; on: tracing at 100 % to Jaeger; else off), under WRAPPER if given (its stderr then
# goes to DIR/wrapper.log), and waits for its port (DIR/port); its pid is left in START_PID. Every mode serves
# metrics, as a deployed allocator does (deploy/): their per-call cost is the same in each, and the on run's
# export counters are read from there (DIR/metrics-port).
start_allocator() {
  local mode=$1 dir=$2 metrics bin=$ALLOC envs=()
  shift 2
  metrics=$(free_port)
  echo "$metrics" > "$dir/metrics-port"
  [ "$mode" = none ] && bin=$ALLOC_NONE
  [ "$mode" = on ] && envs=(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OTLP" OTEL_TRACES_SAMPLER=always_on
                            OTEL_BSP_MAX_QUEUE_SIZE=16384 OTEL_BSP_MAX_EXPORT_BATCH_SIZE=4096)
  local command=(env ${envs[@]+"${envs[@]}"} "$@" "$bin" --listen 127.0.0.1:0 --data-dir "$dir/data"
                 --port-file "$dir/port" --log-level warn --metrics-listen "127.0.0.1:$metrics")
  if [ $# -gt 0 ]; then
    "${command[@]}" 2>"$dir/wrapper.log" &
  else
    "${command[@]}" &
  fi
  START_PID=$!
  for _ in $(seq 1 6000); do [ -s "$dir/port" ] && break; sleep 0.01; done
}

run() {  # run MODE N [RATE]: one 5 s Allocate run; prints allocations per second, CPU µs per allocation of the
         # allocator and of Jaeger, and the CPUs Jaeger used meanwhile (floor: RATE, Jaeger's from the on run)
  local a0 j0 t0
  local mode=$1 n=$2 rate=${3:-0}
  rm -rf "$WORK/data" "$WORK/port"
  start_allocator "$mode" "$WORK"
  PID=$START_PID
  [ "$mode" = floor ] && idle_cgroup_spin "$rate" 10
  a0=$(ticks "$PID"); j0=$(ticks "$JPID"); t0=$(date +%s.%N)
  "$BENCH" --server "127.0.0.1:$(cat "$WORK/port")" --pool "p$n$mode" --create-cidr 10.0.0.0/12 --concurrency 64 \
    --duration 5s | tail -1 > "$WORK/out"
  # Spans exported and dropped (a full queue drops rather than slowing a call down): printed on stderr.
  [ "$mode" = on ] && curl -s "http://127.0.0.1:$(cat "$WORK/metrics-port")/metrics" | grep -E '^abode_trace_export_(spans|dropped)_total' \
    | tr '\n' ' ' >&2 && echo >&2
  local a1 j1 t1
  a1=$(ticks "$PID"); j1=$(ticks "$JPID"); t1=$(date +%s.%N)
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  for s in "${SPIN_PIDS[@]}"; do kill "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true; done
  SPIN_PIDS=()
  python3 -c 'import json,sys,os; o=json.load(open(sys.argv[1])); hz=os.sysconf("SC_CLK_TCK"); t=1e6/hz/max(o["ops"],1)
a, j = (int(sys.argv[3]) - int(sys.argv[2])) * t, (int(sys.argv[5]) - int(sys.argv[4])) * t
wall = float(sys.argv[8]) - float(sys.argv[7])
rate = sys.argv[9] if sys.argv[6] == "floor" else (int(sys.argv[5]) - int(sys.argv[4])) / hz / wall
print("%.0f %.1f %.1f %.3f" % (o["ops_per_sec"], a, j, float(rate)))' \
    "$WORK/out" "$a0" "$a1" "$j0" "$j1" "$mode" "$t0" "$t1" "$rate"
}

declare -A results=([off]="" [on]="" [none]="" [floor]="") cpu=([off]="" [on]="" [none]="" [floor]="") jcpu=([on]="")
modes=(off on none)
[ -n "$IDLE_CG_DIR" ] || echo "no floor runs: they need the cgroup (root and the cgroup v1 cpu hierarchy)" >&2
for i in $(seq 1 "$ROUNDS"); do
  # The order rotates between rounds, so that a drift of the machine over the run favours no mode; the floor
  # follows the on run whose Jaeger CPU it reproduces.
  line="round $i:"
  for k in 0 1 2; do
    mode=${modes[$(((i - 1 + k) % 3))]}
    read -r r c j rate < <(run "$mode" "$i")
    results[$mode]+=" $r"
    cpu[$mode]+=" $c"
    line+=" $mode $r/s ($c µs CPU per call)"
    if [ "$mode" = on ]; then
      jcpu[on]+=" $j"
      line+=" [Jaeger $rate CPUs]"
      if [ -n "$IDLE_CG_DIR" ]; then
        read -r r c j rate < <(run floor "$i" "$rate")
        results[floor]+=" $r"
        cpu[floor]+=" $c"
        line+=" floor $r/s ($c µs CPU per call)"
      fi
    fi
  done
  echo "$line"
done
python3 - "${results[off]}" "${results[on]}" "${results[none]}" "${cpu[off]}" "${cpu[on]}" "${cpu[none]}" \
  "${jcpu[on]}" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)" "${results[floor]}" <<'PY'
import json, statistics, sys
off, on, none, c_off, c_on, c_none, j_on = ([float(x) for x in a.split()] for a in sys.argv[1:8])
floor = [float(x) for x in sys.argv[10].split()]
m = statistics.median
# Each round runs the modes back to back: its on/off is the fairest pair on a machine whose speed drifts.
rounds = [round(a / b, 3) for a, b in zip(on, off)]
floors = [round(a / b, 3) for a, b in zip(on, floor)]
print(json.dumps({"on_over_off_per_round": rounds, "on_over_off_median_of_rounds": m(rounds),
                  "on_over_floor_per_round": floors, "on_over_floor_median_of_rounds": m(floors) if floors else None,
                  "on_median_per_s": round(m(on)), "off_median_per_s": round(m(off)),
                  "none_median_per_s": round(m(none)), "on_over_off": round(m(on) / m(off), 3),
                  "off_over_none": round(m(off) / m(none), 3),
                  "allocator_cpu_us_per_call": {"on": m(c_on), "off": m(c_off), "none": m(c_none)},
                  "jaeger_cpu_us_per_call_on": m(j_on), "loadavg_start": sys.argv[8], "loadavg_end": sys.argv[9]}))
PY
curl -s "http://127.0.0.1:$QUERY/api/services" | grep -q abode-allocator || { echo "Jaeger received no spans" >&2; exit 1; }

# Side by side: an off allocator (A) and an on one (B) at the same time, each with 32 clients of its own, for
# 5 s, in each of SIDE_ROUNDS rounds (default ROUNDS); then the same with B off too, a control that shows how
# far apart two equal allocators land. Both sides share the machine's drift and Jaeger's CPU alike, so B/A is
# what tracing costs the allocator's own throughput when the collector's CPU is charged to neither; the rounds
# above charge it to the on run. Which side's clients start first alternates between rounds.
side_by_side() {  # side_by_side B_MODE ROUND: prints A's and B's allocations per second
  local b_mode=$1 i=$2 d order=(sa sb) benches=()
  rm -rf "$WORK/sa" "$WORK/sb"
  mkdir -p "$WORK/sa" "$WORK/sb"
  start_allocator off "$WORK/sa"
  SIDE_PIDS=("$START_PID")
  start_allocator "$b_mode" "$WORK/sb"
  SIDE_PIDS+=("$START_PID")
  [ $((i % 2)) = 0 ] && order=(sb sa)
  for d in "${order[@]}"; do
    "$BENCH" --server "127.0.0.1:$(cat "$WORK/$d/port")" --pool "s$i" --create-cidr 10.0.0.0/12 --concurrency 32 \
      --duration 5s > "$WORK/$d/out" &
    benches+=($!)
  done
  wait "${benches[@]}"
  for p in "${SIDE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  SIDE_PIDS=()
  python3 -c 'import json, sys; print(*(round(json.loads(open(f).read().splitlines()[-1])["ops_per_sec"]) for f in sys.argv[1:]))' \
    "$WORK/sa/out" "$WORK/sb/out"
}
SIDE_ROUNDS=${SIDE_ROUNDS:-$ROUNDS}
if [ "$SIDE_ROUNDS" -gt 0 ]; then
  side_on="" side_control=""
  for i in $(seq 1 "$SIDE_ROUNDS"); do
    side_by_side on "$i" > "$WORK/side"; read -r a b < "$WORK/side"
    side_by_side off "$i" > "$WORK/side"; read -r ca cb < "$WORK/side"
    side_on+=" $(python3 -c "print(round($b / $a, 3))")"
    side_control+=" $(python3 -c "print(round($cb / $ca, 3))")"
    echo "side by side $i: off $a/s beside on $b/s; control: off $ca/s beside off $cb/s"
  done
  python3 -c 'import json, statistics, sys
on, control = ([float(x) for x in a.split()] for a in sys.argv[1:3])
print(json.dumps({"side_by_side_on_over_off": on, "side_by_side_median": statistics.median(on),
                  "control_off_over_off": control, "control_median": statistics.median(control)}))' \
    "$side_on" "$side_control"
fi

# Instructions per Allocate under callgrind (valgrind): unlike time, a count that other work on the machine
# does not move, so it shows what tracing costs the allocator's own code to a fraction of a percent. Each
# mode serves CALLS Allocates (16 clients) after its start-up, counted over every thread of the allocator;
# on exports to the same live Jaeger. CALLS=0 skips this; so does a machine without valgrind.
CALLS=${CALLS:-10000}
count_instructions() {  # count_instructions MODE: prints the allocator's instructions per Allocate
  local mode=$1 dir=$WORK/cg-$1
  mkdir -p "$dir"
  start_allocator "$mode" "$dir" valgrind --tool=callgrind --callgrind-out-file="$dir/out"
  PID=$START_PID
  callgrind_control -z "$PID" >/dev/null 2>&1  # from here on: the calls, not the start-up
  "$BENCH" --server "127.0.0.1:$(cat "$dir/port")" --pool "cg$mode" --create-cidr 10.0.0.0/12 --concurrency 16 \
    --duration 600s --count "$CALLS" >/dev/null
  kill -INT "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  awk -v n="$CALLS" '/^summary:/ { printf "%.0f\n", $2 / n }' "$dir/out"
}
if [ "$CALLS" -gt 0 ] && command -v valgrind >/dev/null && command -v callgrind_control >/dev/null; then
  i_none=$(count_instructions none); i_off=$(count_instructions off); i_on=$(count_instructions on)
  python3 -c 'import json, sys; none, off, on = map(float, sys.argv[1:4])
print(json.dumps({"instructions_per_call": {"none": none, "off": off, "on": on},
                  "instructions_on_over_off": round(on / off, 4), "instructions_off_over_none": round(off / none, 4)}))' \
    "$i_none" "$i_off" "$i_on"
elif [ "$CALLS" -gt 0 ]; then
  echo "no instruction counts: they need valgrind (Debian package valgrind)" >&2
fi
