#!/usr/bin/env bash
# Two builds, measured in alternating pairs on the same machine in the same minutes, so that a noisy minute
# of a shared machine lands on both. Usage: scripts/bench-pair.sh BEFORE_BUILD AFTER_BUILD [PAIRS]
#   Each pair runs scripts/bench.sh --quick and scripts/bench-cluster.sh once per build (about 3 minutes a
#   pair); the order within a pair alternates (before first, then after first, ...). Each build dir needs
#   allocator-service/abode-allocator and integration/abode-bench. Prints a table of the key rows (median of
#   the pairs, the range, after/before) with the load average at the start of every run, and leaves the raw
#   output in the folder it names. scripts/bench-pair.sh --table DIR PAIRS prints the table of such a folder
#   again.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_BUILD AFTER_BUILD [PAIRS] | $0 --table DIR PAIRS" >&2; exit 2; }
table() {  # table DIR PAIRS
  local OUT=$1 PAIRS=$2
  python3 - "$OUT" "$PAIRS" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])

def rows(path):
    """The runs of one output file: title -> the JSON line that follows its '==' line."""
    found, title = {}, None
    for line in open(path):
        line = line.strip()
        if line.startswith("== "):
            title = line[3:]
        elif line.startswith("{") and title is not None:
            found[title] = json.loads(line)
            title = None
    return found

def summary(path):
    for line in open(path):
        if line.startswith('{"direct_ops_per_sec_median"'):
            return json.loads(line)
    return {}

# (label, file kind, title or None for the cluster summary, key)
KEY_ROWS = [
    ("health checks, 64 clients", "bench", "64 clients, gRPC health checks (", "ops_per_sec"),
    ("Allocate, 64 clients", "bench", "64 clients, Allocate, /12 pool", "ops_per_sec"),
    ("Allocate, 64 clients", "bench", "64 clients, Allocate, /12 pool", "p99_ms"),
    ("Allocate, 64 clients / 8 conns", "bench", "64 clients over 8 connections, Allocate, /12 pool", "ops_per_sec"),
    ("Allocate, 1 client", "bench", "1 client, Allocate", "p50_ms"),
    ("churn, empty /16", "bench", "64 clients, Allocate+Release churn, empty /16", "ops_per_sec"),
    ("churn, /16 99.9% full", "bench", "64 clients, Allocate+Release churn, /16 99.9% full", "ops_per_sec"),
    ("churn, /16 99.9% full", "bench", "64 clients, Allocate+Release churn, /16 99.9% full", "p99_ms"),
    ("cluster, leader-direct", "cluster", None, "direct_ops_per_sec_median"),
    ("cluster, leader-direct", "cluster", None, "direct_p99_ms_median"),
    ("cluster, through a follower", "cluster", None, "forwarded_ops_per_sec_median"),
    ("cluster, 1 client", "cluster", "1 client, Allocate, leader-direct", "p50_ms"),
]

def values(side, kind, title, key):
    vs = []
    for p in range(1, pairs + 1):
        path = f"{out}/{side}-{p}-{kind}.txt"
        found = rows(path)
        # A title names its row by its start: "64 clients, gRPC health checks (the floor ...)".
        r = summary(path) if title is None else next((v for t, v in found.items() if t.startswith(title)), {})
        if key in r:
            vs.append(float(r[key]))
    return vs

def fmt(vs, key):
    if not vs:
        return "missing"
    f = (lambda v: f"{v:,.0f}") if "ops" in key else (lambda v: f"{v:.2f}")
    return f"{f(statistics.median(vs))} ({f(min(vs))}-{f(max(vs))})"

print(f"\n{'row':32} {'figure':14} {'before: median (range)':26} {'after: median (range)':26} after/before")
for label, kind, title, key in KEY_ROWS:
    b, a = values("before", kind, title, key), values("after", kind, title, key)
    ratio = f"{statistics.median(a) / statistics.median(b):.2f}" if a and b and statistics.median(b) else "-"
    figure = "ops/s" if "ops" in key else ("p99 ms" if "p99" in key else "p50 ms")
    print(f"{label:32} {figure:14} {fmt(b, key):26} {fmt(a, key):26} {ratio}")
print("\nload average (1, 5, 15 min) at the start of each run:")
print(open(f"{out}/loads").read(), end="")
PY
}

if [ "$1" = --table ]; then
  table "$2" "$3"
  exit 0
fi
BEFORE=$1
AFTER=$2
PAIRS=${3:-3}
SCRIPTS=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp -d /var/tmp/abode-bench-pair-XXXXXX)
echo "raw output: $OUT"
for b in "$BEFORE" "$AFTER"; do
  for f in allocator-service/abode-allocator integration/abode-bench; do
    [ -x "$b/$f" ] || { echo "$b/$f: not found (build abode-allocator and abode-bench there)" >&2; exit 2; }
  done
done

run() {  # run SIDE BUILD PAIR
  local side=$1 build=$2 pair=$3
  echo "$side $pair bench $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loads"
  "$SCRIPTS/bench.sh" "$build" --quick >"$OUT/$side-$pair-bench.txt" 2>&1
  echo "$side $pair cluster $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loads"
  "$SCRIPTS/bench-cluster.sh" "$build" >"$OUT/$side-$pair-cluster.txt" 2>&1
  echo "  $(grep -m1 'disk probe' "$OUT/$side-$pair-bench.txt")" >>"$OUT/loads"
  echo "pair $pair: $side done ($(date -u +%H:%M:%S))"
}

for pair in $(seq 1 "$PAIRS"); do
  if [ $((pair % 2)) = 1 ]; then
    run before "$BEFORE" "$pair"; run after "$AFTER" "$pair"
  else
    run after "$AFTER" "$pair"; run before "$BEFORE" "$pair"
  fi
done

table "$OUT" "$PAIRS"
