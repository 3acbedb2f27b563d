#!/usr/bin/env bash
# Compiles the replication and service layers with clang's thread-safety analysis (-Wthread-safety, as
# errors) in a build dir of its own (build-thread-safety/ unless BUILD_DIR is set). Compile only: nothing is
# linked or run. Needs Debian's clang (scripts/install-deps.sh installs it).
#
#   scripts/thread-safety-check.sh [extra cmake --build arguments]
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
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DABODE_THREAD_SAFETY=ON "${launcher[@]}" >/dev/null
# The object files of the two layers (and of what they include); the static libraries are only archived.
cmake --build "$build" --target abode_replication abode_allocator_service -j "$jobs" "$@"
echo "thread-safety-check: replication/ and allocator-service/ pass clang -Wthread-safety"
