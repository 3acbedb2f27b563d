#!/usr/bin/env bash
# What a client listing 1,000,000 allocations in a loop costs the writers: Allocate at 64 clients on top of
# 1,000,000 allocations, without and with one more client listing them all (linearizable ListAllocations,
# pages of 5,000) again and again, alternating in one run. Usage: scripts/bench-lister-pair.sh [BUILD] [PAIRS]
#   Loads the allocations once (a minute or two), then runs PAIRS pairs of 5 s runs, the order within a pair
#   alternating, and prints both sides' runs, their medians and the load average at the start of every run.
#   The writers' clients run in one abode-bench process; the lister in another (abode-bench --concurrency 0),
#   beside it for the same warm-up and measured time, so that the two share no gRPC threads. In production
#   the lister is another machine; here it shares the cores with the writers and the allocator, so it runs
#   in the SCHED_IDLE class (--list-sched idle): it gets only the CPU that nothing else wants. It stays in
#   this shell's session (one scheduling group with the writers), where every waking writer takes the CPU
#   from it at once. The allocator's read threads run in the SCHED_IDLE class too (--read-sched, the default;
#   ABODE_READ_SCHED=nice in the environment runs them at nice 19 instead).
#   A thread's class ranks it only inside its CPU group (here the session's autogroup), and the group's CPU
#   time is shared: on a machine busy with other work, idle-class readers in the writers' group still take
#   the writers' share. So where the cgroup v1 cpu hierarchy is writable (root), the read threads
#   (--read-cgroup) and the lister go into a cgroup of their own with cpu.idle 1, as an operator would run
#   them; IDLE_CGROUP=off leaves them in the writers' group.
#   A floor in the same run: on one machine the lister cannot be free, whatever the allocator does, because
#   it uses the spare core the writers would otherwise leave idle, and on a VM that alone slows the writers'
#   wake-ups. So after each listing run the writers run once more beside busy loops that do nothing but use
#   as much CPU as the listing took (the lister process and the allocator's read threads, measured), placed
#   where the lister is (idle class, in a child of the same cgroup, capped by CFS quota; see idle-cgroup.sh).
#   listing/floor is what serving the listing costs the writers beyond the CPU it uses; listing/alone is all
#   of it. Without the cgroup there is no floor.
set -euo pipefail
BUILD=${1:-build}
PAIRS=${2:-3}
ALLOC=$BUILD/allocator-service/abode-allocator
BENCH=$BUILD/integration/abode-bench
WORK=$(mktemp -d /var/tmp/abode-lister-bench-XXXXXX)
PID=""
# shellcheck source=idle-cgroup.sh
. "$(cd "$(dirname "$0")" && pwd)/idle-cgroup.sh"
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null || true
  idle_cgroup_remove
  rm -rf "$WORK"
}
trap cleanup EXIT

READ_CGROUP=()
if [ "${IDLE_CGROUP:-on}" = on ]; then idle_cgroup_create abode-lister-bench; fi
if [ -n "$IDLE_CG_DIR" ]; then
  READ_CGROUP=(--read-cgroup "$IDLE_CG_DIR")
  echo "read threads and lister in $IDLE_CG_DIR (cpu.idle $(cat "$IDLE_CG_DIR/cpu.idle"))"
else
  echo "read threads and lister in the writers' CPU group"
fi

"$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/data" --port-file "$WORK/port" --log-level warn "${READ_CGROUP[@]}" &
PID=$!
for _ in $(seq 1 6000); do [ -s "$WORK/port" ] && break; sleep 0.01; done
SERVER=127.0.0.1:$(cat "$WORK/port")

fallocate -l 4M "$WORK/probe"
probe() { { dd if=/dev/zero of="$WORK/probe" bs=4k count=200 oflag=direct,dsync conv=notrunc 2>&1; } | tail -1; }
echo "disk probe before (200 x 4 KiB direct+dsync writes): $(probe)"
echo "== loading 1,000,000 allocations into a /8 (64 clients)"
"$BENCH" --server "$SERVER" --pool big --create-cidr 10.0.0.0/8 --concurrency 64 --count 1000000 | tail -1

read_ticks() {  # CPU time so far of the allocator's read threads, in clock ticks
  local t total=0
  for t in /proc/"$PID"/task/*; do
    if [ "$(cat "$t/comm" 2>/dev/null)" = abode-read ]; then
      total=$((total + $(awk '{print $14 + $15}' "$t/stat")))
    fi
  done
  echo "$total"
}

run() {  # run SIDE PAIR
  local side=$1 pair=$2 lister="" r0 t0
  echo "== pair $pair, $side, load $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$side" = spinning ] && idle_cgroup_spin "$(cat "$WORK/rate")" 6.5
  if [ "$side" = listing ]; then
    r0=$(read_ticks); t0=$(date +%s.%N)
    (
      idle_cgroup_join
      exec "$BENCH" --server "$SERVER" --concurrency 0 --list-pool big --list-sched idle --warmup 1s --duration 5s
    ) >"$WORK/lister.out" &
    lister=$!
  fi
  "$BENCH" --server "$SERVER" --pool big --owner-prefix "$side$pair" --concurrency 64 --duration 5s | tail -1 >"$WORK/writers.out"
  if [ -n "$lister" ]; then
    wait "$lister"
    # The CPUs the listing took: the lister's own and the allocator's read threads', over its lifetime.
    python3 -c 'import json, os, sys; w = json.load(open(sys.argv[1])); l = json.loads(open(sys.argv[2]).read().splitlines()[-1])
for k in ("listed_per_sec", "whole_listings", "list_errors"): w[k] = l[k]
cpu = l["cpu_seconds"] + (int(sys.argv[4]) - int(sys.argv[3])) / os.sysconf("SC_CLK_TCK")
w["listing_cpus"] = round(cpu / (float(sys.argv[6]) - float(sys.argv[5])), 3)
print(json.dumps(w))' "$WORK/writers.out" "$WORK/lister.out" "$r0" "$(read_ticks)" "$t0" "$(date +%s.%N)" \
      >"$WORK/writers.json"
    mv "$WORK/writers.json" "$WORK/writers.out"
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["listing_cpus"])' "$WORK/writers.out" >"$WORK/rate"
  fi
  for s in "${SPIN_PIDS[@]}"; do wait "$s" || true; done
  SPIN_PIDS=()
  tee -a "$WORK/$side.jsonl" <"$WORK/writers.out"
}
# The floor follows the listing whose CPU it reproduces; the order otherwise alternates between pairs.
: >"$WORK/spinning.jsonl"
[ -n "$IDLE_CG_DIR" ] || echo "no floor runs: they need the cgroup (root and the cgroup v1 cpu hierarchy)"
for pair in $(seq 1 "$PAIRS"); do
  if [ $((pair % 2)) = 1 ]; then
    run alone "$pair"; run listing "$pair"; [ -z "$IDLE_CG_DIR" ] || run spinning "$pair"
  else
    run listing "$pair"; [ -z "$IDLE_CG_DIR" ] || run spinning "$pair"; run alone "$pair"
  fi
done
echo "disk probe after: $(probe)"

python3 - "$WORK/alone.jsonl" "$WORK/spinning.jsonl" "$WORK/listing.jsonl" <<'PY'
import json, statistics, sys
alone, spinning, listing = ([json.loads(l) for l in open(f)] for f in sys.argv[1:4])
med = lambda runs, k: statistics.median(r[k] for r in runs)
print(json.dumps({
    "alone_p99_ms": [round(r["p99_ms"], 2) for r in alone],
    "spinning_p99_ms": [round(r["p99_ms"], 2) for r in spinning],
    "listing_p99_ms": [round(r["p99_ms"], 2) for r in listing],
    "alone_p99_ms_median": round(med(alone, "p99_ms"), 2),
    "spinning_p99_ms_median": round(med(spinning, "p99_ms"), 2) if spinning else None,
    "listing_p99_ms_median": round(med(listing, "p99_ms"), 2),
    "listing_vs_spinning_p99": round(med(listing, "p99_ms") / med(spinning, "p99_ms"), 2) if spinning else None,
    "listing_cpus": [r["listing_cpus"] for r in listing],
    "listing_vs_alone_p99": round(med(listing, "p99_ms") / med(alone, "p99_ms"), 2),
    "alone_ops_per_sec_median": round(med(alone, "ops_per_sec")),
    "spinning_ops_per_sec_median": round(med(spinning, "ops_per_sec")) if spinning else None,
    "listing_ops_per_sec_median": round(med(listing, "ops_per_sec")),
    "listed_per_sec_median": round(med(listing, "listed_per_sec")),
    "whole_listings": [r["whole_listings"] for r in listing],
    "list_errors": sum(r["list_errors"] for r in listing),
}))
PY
