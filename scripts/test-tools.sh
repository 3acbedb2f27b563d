#!/usr/bin/env bash
# Builds the pinned Go tools that abode's tests run, into a cache folder outside the repository, and reuses
# what is already there. Today: the CNI reference plugins v1.10.0 (bridge, macvlan, host-local, ...) from
# their Go module, for the CNI tests that need a main plugin speaking CNI 1.1.0 (STATUS, GC).
#
#   ABODE_TOOLS_CACHE  where to build (default /var/cache/abode-test-tools)
#   GO                 the go command (default: go on PATH, else /usr/local/go/bin/go)
#
# Exit 0 when the tools are present afterwards. Without a Go new enough to build them, exit 77 with the reason,
# or 1 when CI is set (CI must run every test).
set -euo pipefail

cache="${ABODE_TOOLS_CACHE:-/var/cache/abode-test-tools}"
plugins_version="v1.10.0"
plugins_dir="${cache}/cni-plugins-${plugins_version}"
plugins=(main/bridge main/macvlan main/ptp ipam/host-local ipam/static meta/portmap)

missing_tool() {
  echo "test-tools: $*" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 77
}

all_present=1
for p in "${plugins[@]}"; do
  [ -x "${plugins_dir}/$(basename "$p")" ] || all_present=0
done
if [ "$all_present" = 1 ]; then
  echo "test-tools: CNI reference plugins ${plugins_version} present in ${plugins_dir}"
  exit 0
fi

go_bin="${GO:-}"
if [ -z "$go_bin" ]; then
  if command -v go >/dev/null 2>&1; then go_bin="$(command -v go)"; elif [ -x /usr/local/go/bin/go ]; then go_bin=/usr/local/go/bin/go; fi
fi
[ -n "$go_bin" ] && [ -x "$go_bin" ] || missing_tool "no Go toolchain found (set GO=...); the CNI plugins ${plugins_version} need Go 1.26.8 or later"
go_version="$("$go_bin" env GOVERSION 2>/dev/null || echo unknown)"   # e.g. go1.26.8
# The plugins' go.mod asks for this Go; GOTOOLCHAIN=local below forbids downloading another toolchain.
go_required="1.26.8"
have="${go_version#go}"
if ! [[ "$have" =~ ^[0-9]+\.[0-9]+ ]] || [ "$(printf '%s\n%s\n' "$go_required" "$have" | sort -V | head -n1)" != "$go_required" ]; then
  missing_tool "${go_version} is too old to build the CNI plugins ${plugins_version} (their go.mod asks for Go ${go_required})"
fi

mkdir -p "$plugins_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOPATH="${cache}/gopath" GOCACHE="${cache}/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
# A throwaway module that requires the plugins at the pinned version: `go build` fetches them through the
# module proxy and checks them against the checksum database.
cd "$work"
"$go_bin" mod init abode-test-tools >/dev/null 2>&1
"$go_bin" get "github.com/containernetworking/plugins@${plugins_version}"
for p in "${plugins[@]}"; do
  echo "test-tools: building $(basename "$p") ${plugins_version}"
  CGO_ENABLED=0 "$go_bin" build -trimpath -o "${plugins_dir}/$(basename "$p")" \
    "github.com/containernetworking/plugins/plugins/${p}"
done
echo "test-tools: CNI reference plugins ${plugins_version} built into ${plugins_dir}"
