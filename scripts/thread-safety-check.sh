#!/usr/bin/env bash
# Compiles the tracer, the replication and service layers with clang's thread-safety analysis (-Wthread-safety, as
# errors) in a build dir of its own (build-thread-safety/ unless BUILD_DIR is set). Compile only: nothing is
# linked or run. Needs Debian's clang (scripts/install-deps.sh installs it).
#
#   scripts/thread-safety-check.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build-thread-safety}"
jobs="${JOBS:-2}"

if ! command -v clang++ >/dev/null; then
  echo "thread-safety-check: clang++ not found; run scripts/install-deps.sh" >&2
  exit 1
fi

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DABODE_THREAD_SAFETY=ON -G "Unix Makefiles" "${launcher[@]}" >/dev/null
# The generated protobuf code they include, then the object files of the two layers alone (the layers they
# build on are not compiled here: what they include of them is checked with them).
cmake --build "$build" --target abode_proto abode_otlp_proto -j "$jobs"
for dir in tracing replication allocator-service; do
  mapfile -t objects < <(make -C "$build/$dir" help | sed -n 's/^\.\.\. \(.*\.o\)$/\1/p')
  make -C "$build/$dir" -j "$jobs" --no-print-directory "${objects[@]}"
done
echo "thread-safety-check: tracing/, replication/ and allocator-service/ pass clang -Wthread-safety"
