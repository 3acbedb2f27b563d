#!/usr/bin/env bash
# Builds the pinned Go tools that abode's tests run against, into a cache folder outside the repository, and
# reuses what is already there. Each tool is built from its Go module through the module proxy (checked against
# the checksum database), in a throwaway module of its own.
#
#   scripts/test-tools.sh [TOOL...]     TOOL: cni-plugins jaeger kube kustomize (default: all of them)
#   scripts/test-tools.sh --dir TOOL    print the folder TOOL's binaries are in (built or not)
#
#   cni-plugins  CNI reference plugins v1.10.0 (bridge, macvlan, ptp, host-local, static, portmap)
#   jaeger       Jaeger v2.12.0 (Go tag v1.75.0), all-in-one: OTLP gRPC 4317, query 16686, health 13133
#   kube         kube-apiserver and kubectl v1.34.4 (k8s.io/kubernetes, staging modules pinned to v0.34.4), etcd v3.6.16
#   kustomize    kustomize v5.7.1 (sigs.k8s.io/kustomize/kustomize/v5)
#
#   ABODE_TOOLS_CACHE  where to build (default /var/cache/abode-test-tools)
#   GO                 the go command (default: go on PATH, else /usr/local/go/bin/go)
#
# Exit 0 when the tools asked for are present afterwards. Without a Go new enough to build them, exit 77 with
# the reason, or 1 when CI is set (CI must run every test).
set -euo pipefail

cache="${ABODE_TOOLS_CACHE:-/var/cache/abode-test-tools}"
go_required="1.26.8"

plugins_version="v1.10.0"
jaeger_version="v1.75.0"
kube_version="v1.34.4"
kube_staging_version="v0.34.4"
etcd_version="v3.6.16"
kustomize_version="v5.7.1"

tool_dir() {
  case "$1" in
    cni-plugins) echo "${cache}/cni-plugins-${plugins_version}" ;;
    jaeger) echo "${cache}/jaeger-${jaeger_version}" ;;
    kube) echo "${cache}/kube-${kube_version}-etcd-${etcd_version}" ;;
    kustomize) echo "${cache}/kustomize-${kustomize_version}" ;;
    *) echo "test-tools: unknown tool '$1' (cni-plugins, jaeger, kube, kustomize)" >&2; exit 2 ;;
  esac
}

tool_binaries() {
  case "$1" in
    cni-plugins) echo bridge macvlan ptp host-local static portmap ;;
    jaeger) echo jaeger ;;
    kube) echo kube-apiserver kubectl etcd ;;
    kustomize) echo kustomize ;;
  esac
}

if [ "${1:-}" = "--dir" ]; then
  tool_dir "${2:?usage: test-tools.sh --dir TOOL}"
  exit 0
fi

missing_tool() {
  echo "test-tools: $*" >&2
  if [ -n "${CI:-}" ]; then exit 1; fi
  exit 77
}

present() {
  local dir b
  dir="$(tool_dir "$1")"
  for b in $(tool_binaries "$1"); do [ -x "${dir}/${b}" ] || return 1; done
}

go_bin=""
find_go() {
  [ -n "$go_bin" ] && return 0
  go_bin="${GO:-}"
  if [ -z "$go_bin" ]; then
    if command -v go >/dev/null 2>&1; then go_bin="$(command -v go)"; elif [ -x /usr/local/go/bin/go ]; then go_bin=/usr/local/go/bin/go; fi
  fi
  [ -n "$go_bin" ] && [ -x "$go_bin" ] || missing_tool "no Go toolchain found (set GO=...); the test tools need Go ${go_required} or later"
  local go_version have
  go_version="$("$go_bin" env GOVERSION 2>/dev/null || echo unknown)"   # e.g. go1.26.8
  have="${go_version#go}"
  if ! [[ "$have" =~ ^[0-9]+\.[0-9]+ ]] || [ "$(printf '%s\n%s\n' "$go_required" "$have" | sort -V | head -n1)" != "$go_required" ]; then
    missing_tool "${go_version} is too old to build the test tools (they need Go ${go_required})"
  fi
  export GOPATH="${cache}/gopath" GOCACHE="${cache}/gocache" GOFLAGS=-mod=mod GOTOOLCHAIN=local
}

# new_module NAME: a throwaway module in a fresh folder; cd into it.
new_module() {
  local work
  work="$(mktemp -d)"
  cleanup+=("$work")
  cd "$work"
  "$go_bin" mod init "abode-test-tools/$1" >/dev/null 2>&1
}
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT

build_cni_plugins() {
  local dir="$1" p
  new_module cni-plugins
  "$go_bin" get "github.com/containernetworking/plugins@${plugins_version}"
  for p in main/bridge main/macvlan main/ptp ipam/host-local ipam/static meta/portmap; do
    echo "test-tools: building $(basename "$p") ${plugins_version}"
    CGO_ENABLED=0 "$go_bin" build -trimpath -o "${dir}/$(basename "$p")" "github.com/containernetworking/plugins/plugins/${p}"
  done
}

build_jaeger() {
  local dir="$1"
  new_module jaeger
  "$go_bin" get "github.com/jaegertracing/jaeger@${jaeger_version}"
  echo "test-tools: building jaeger ${jaeger_version}"
  CGO_ENABLED=0 "$go_bin" build -trimpath -o "${dir}/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger
}

build_kube() {
  local dir="$1" m
  new_module kube
  # k8s.io/kubernetes requires its staging modules at v0.0.0 through replace directives of its own, which a
  # dependent module does not inherit: pin each to the release that matches.
  for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap \
    code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib \
    dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy \
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver; do
    "$go_bin" mod edit -replace "k8s.io/${m}=k8s.io/${m}@${kube_staging_version}"
  done
  "$go_bin" get "k8s.io/kubernetes@${kube_version}"
  echo "test-tools: building kube-apiserver ${kube_version}"
  CGO_ENABLED=0 "$go_bin" build -trimpath -o "${dir}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  echo "test-tools: building kubectl ${kube_version}"
  CGO_ENABLED=0 "$go_bin" build -trimpath -o "${dir}/kubectl" k8s.io/kubernetes/cmd/kubectl
  new_module etcd
  "$go_bin" get "go.etcd.io/etcd/server/v3@${etcd_version}"
  echo "test-tools: building etcd ${etcd_version}"
  CGO_ENABLED=0 "$go_bin" build -trimpath -o "${dir}/etcd" go.etcd.io/etcd/server/v3
}

build_kustomize() {
  local dir="$1"
  new_module kustomize
  "$go_bin" get "sigs.k8s.io/kustomize/kustomize/v5@${kustomize_version}"
  echo "test-tools: building kustomize ${kustomize_version}"
  CGO_ENABLED=0 "$go_bin" build -trimpath -o "${dir}/kustomize" sigs.k8s.io/kustomize/kustomize/v5
}

tools=("$@")
[ "${#tools[@]}" -gt 0 ] || tools=(cni-plugins jaeger kube kustomize)
mkdir -p "$cache"
for t in "${tools[@]}"; do
  dir="$(tool_dir "$t")"
  # One build of a tool at a time: tests running in parallel may all ask for it, and wait here.
  exec 9>"${cache}/.${t}.lock"
  flock 9
  if present "$t"; then
    echo "test-tools: ${t} present in ${dir}"
    exec 9>&-
    continue
  fi
  find_go
  mkdir -p "$dir"
  # Build into a staging folder and rename it, so an interrupted build never looks present.
  rm -rf "${dir}.partial"
  mkdir -p "${dir}.partial"
  set +e
  ( set -e; "build_${t//-/_}" "${dir}.partial" )
  rc=$?
  set -e
  [ "$rc" = 0 ] || missing_tool "building ${t} failed (see above)"
  rm -rf "$dir"
  mv "${dir}.partial" "$dir"
  echo "test-tools: ${t} built into ${dir}"
  exec 9>&-
done
