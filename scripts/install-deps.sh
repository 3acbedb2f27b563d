#!/usr/bin/env bash
# Installs exactly the Debian 12 packages abode needs to build, run and test. Idempotent: packages that are
# already present are left alone, and apt is not touched at all when nothing is missing.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config git
  # the thread-safety analysis build (scripts/thread-safety-check.sh)
  clang
  # gRPC, protobuf (abseil comes with gRPC)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  # storage and replication
  libsqlite3-dev libraft-dev libuv1-dev
  # node client: netlink and nftables
  libnl-3-dev libnl-route-3-dev libnftnl-dev libmnl-dev
  # logging, CLI, metrics, JSON
  libspdlog-dev libcli11-dev prometheus-cpp-dev nlohmann-json3-dev
  # abode-kube: the Kubernetes API over HTTPS, kubeconfig (YAML) files
  libcurl4-openssl-dev libyaml-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the tracing test reads Jaeger's query API over HTTP
  libcurl4-openssl-dev
  # kernel tooling used by network-namespace tests and the nft comparison benchmark
  iproute2 nftables tcpdump procps iputils-ping
  # CNI main plugins (bridge, macvlan) and host-local, for the CNI plugin's tests and benchmark
  containernetworking-plugins
  # container images (`make images`) and their test: build, unpack, read the runtime configuration
  buildah umoci jq
  # the real Kubernetes API server of the tests (scripts/kube-test-env.sh): certificates, readiness probe
  openssl curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or install them yourself) and try again" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
