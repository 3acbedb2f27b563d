#!/usr/bin/env bash
# Checks the layering of the sources (run by CTest as abode_layers_test). Usage: scripts/check-layers.sh [SOURCE_DIR]
#   - domain/ is pure: no SQLite, no threads, no mutexes, no storage or service headers;
#   - storage/'s own headers (allocations.h, node_store.h, rows.h, schema.h, wal_batching_vfs.h,
#     wal_checkpointer.h) are included only from storage/.
set -euo pipefail
ROOT=${1:-$(dirname "$0")/..}
cd "$ROOT"
fail=0
report() { echo "layering: $1"; fail=1; }

while IFS= read -r hit; do report "domain/ must stay pure: $hit"; done < <(
  grep -nE '#include <(sqlite3\.h|thread|mutex|condition_variable|pthread\.h)>|#include "(absl/synchronization/|storage/|allocator-service/)' \
    domain/*.h domain/*.cc || true)

private='storage/(allocations|node_store|rows|schema|wal_batching_vfs|wal_checkpointer)\.h'
while IFS= read -r hit; do report "storage-private header included outside storage/: $hit"; done < <(
  grep -rnE "#include \"$private\"" --include='*.h' --include='*.cc' . | grep -v '^\./storage/' | grep -v '^\./build' || true)

[ "$fail" = 0 ] && echo "layering: ok"
exit "$fail"
