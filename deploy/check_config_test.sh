#!/usr/bin/env bash
# --check-config of abode-allocator, abode-node and abodectl: good configurations (flags and environment, as
# the manifests give them) exit 0; each bad one exits non-zero with a message naming the flag; and checking
# binds no port, writes no data dir or socket, and (as root, in a network namespace) programs nothing in the
# kernel. abode-cni-install's --check-config is tested in cni/installer_test.cc.
#
# Usage: deploy/check_config_test.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
ALLOC=$BUILD/allocator-service/abode-allocator
NODE=$BUILD/node-client/abode-node
CTL=$BUILD/cli/abodectl
WORK=$(mktemp -d /tmp/abode-check-config-XXXXXX)
PID=""
NS=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [ -n "$NS" ] && ip netns del "$NS" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$WORK"

# good DESCRIPTION EXPECTED_OUTPUT_PART -- COMMAND...: exits 0 and prints the part.
good() {
  local what=$1 want=$2 out
  shift 3
  out=$("$@" 2>&1) || fail "$what: exit $?: $out"
  [[ $out == *"$want"* ]] || fail "$what: output lacks '$want': $out"
  echo "ok (accepted): $what"
}
# bad DESCRIPTION FLAG -- COMMAND...: exits non-zero, naming FLAG.
bad() {
  local what=$1 flag=$2 out rc=0
  shift 3
  out=$("$@" 2>&1) || rc=$?
  [ "$rc" != 0 ] || fail "$what: accepted: $out"
  [[ $out == *"$flag"* ]] || fail "$what: exit $rc, but the message does not name $flag: $out"
  echo "ok (refused, exit $rc, names $flag): $what"
}

# A real allocator holds a gRPC port: checking a configuration that listens on the same port must succeed,
# which it could not if the check bound it.
"$ALLOC" --listen 127.0.0.1:0 --data-dir "$WORK/held" --port-file "$WORK/port" --log-level warn &
PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || fail "the allocator did not start"
PORT=$(cat "$WORK/port")

PEERS="1=abode-allocator-0.abode-allocator.abode-system.svc.cluster.local:7444"
PEERS+=",2=abode-allocator-1.abode-allocator.abode-system.svc.cluster.local:7444"
PEERS+=",3=abode-allocator-2.abode-allocator.abode-system.svc.cluster.local:7444"

# --- abode-allocator
good "allocator defaults" "member 1 of 1, gRPC 127.0.0.1:7443" -- "$ALLOC" --check-config
good "allocator on a port in use" "gRPC 127.0.0.1:$PORT" -- "$ALLOC" --check-config --listen "127.0.0.1:$PORT" \
  --metrics-listen "127.0.0.1:$PORT" --data-dir "$WORK/data"
good "allocator as StatefulSet member 2 (environment)" \
  "member 2 of 3, gRPC 0.0.0.0:7443, raft 0.0.0.0:7444, data dir $WORK/sts, metrics 0.0.0.0:9464" -- \
  env ABODE_LISTEN=0.0.0.0:7443 ABODE_DATA_DIR="$WORK/sts" ABODE_METRICS_LISTEN=0.0.0.0:9464 \
  ABODE_PEERS="$PEERS" ABODE_ID=2 "$ALLOC" --check-config
# The member id from the pod's hostname, as in the StatefulSet.
if [ "$(id -u)" = 0 ]; then
  good "allocator id from the hostname" "member 3 of 3" -- unshare --uts sh -c \
    'hostname abode-allocator-2 && exec "$@"' sh env ABODE_PEERS="$PEERS" ABODE_LISTEN=0.0.0.0:7443 \
    "$ALLOC" --check-config
fi
[ ! -e "$WORK/data" ] && [ ! -e "$WORK/sts" ] || fail "checking created a data dir"
touch "$WORK/file"
bad "allocator listen without a port" --listen -- "$ALLOC" --check-config --listen abode
bad "allocator raft listen on a name" --raft-listen -- "$ALLOC" --check-config --raft-listen abode:7444
bad "allocator IPv6 metrics" --metrics-listen -- "$ALLOC" --check-config --metrics-listen '[::]:9464'
bad "allocator data dir is a file" --data-dir -- "$ALLOC" --check-config --data-dir "$WORK/file"
bad "allocator peers without its id" --id -- env ABODE_PEERS="$PEERS" "$ALLOC" --check-config --id 0
bad "allocator id not among the peers" --peers -- env ABODE_PEERS="$PEERS" "$ALLOC" --check-config --id 4
bad "allocator malformed peers" --peers -- "$ALLOC" --check-config --id 1 --peers 1=abode-allocator-0
bad "allocator log level" --log-level -- "$ALLOC" --check-config --log-level loud
bad "allocator lease" --node-lease-ms -- env ABODE_NODE_LEASE_MS=0 "$ALLOC" --check-config
bad "allocator election timeout" --election-timeout-ms -- "$ALLOC" --check-config --election-timeout-ms 50
bad "allocator unknown flag" --no-such-flag -- "$ALLOC" --check-config --no-such-flag

# --- abode-node
NODE_GOOD=(--uplink-interface eth0 --magic-interface cni0 --metrics-listen "127.0.0.1:$PORT"
  --cni-socket "$WORK/run/abode/cni.sock" --manage-sysctls --sysctl-dir /host/proc/sys --label zone=a)
good "node as in the DaemonSet" \
  "node n1, allocator abode.abode-system.svc.cluster.local:7443, uplink 'eth0', magic interface 'cni0', CNI socket $WORK/run/abode/cni.sock, metrics 127.0.0.1:$PORT" -- \
  env NODE_NAME=n1 ABODE_ALLOCATOR=abode.abode-system.svc.cluster.local:7443 "$NODE" --check-config "${NODE_GOOD[@]}"
[ ! -e "$WORK/run" ] || fail "checking created the CNI socket's folder"
if [ "$(id -u)" = 0 ]; then
  # In a fresh network namespace: after the check, no nftables table and no address beyond loopback's.
  NS=abode-check-config-$$
  ip netns add "$NS"
  ip netns exec "$NS" env NODE_NAME=n1 "$NODE" --check-config --allocator 127.0.0.1:1 "${NODE_GOOD[@]}" >/dev/null ||
    fail "node check in a namespace"
  [ -z "$(ip netns exec "$NS" nft list tables)" ] || fail "checking created an nftables table"
  [ -z "$(ip netns exec "$NS" ip -o addr show)" ] || fail "checking changed addresses"
  echo "ok: the node check left the kernel untouched"
fi
bad "node without a name" --node -- env -u NODE_NAME "$NODE" --check-config --allocator a:1
bad "node without an allocator" --allocator -- env -u ABODE_ALLOCATOR NODE_NAME=n1 "$NODE" --check-config
bad "node allocator without a port" --allocator -- env NODE_NAME=n1 ABODE_ALLOCATOR=abode "$NODE" --check-config
bad "node label" --label -- "$NODE" --check-config --node n1 --allocator a:1 --label zone
bad "node uplink name" --uplink-interface -- "$NODE" --check-config --node n1 --allocator a:1 \
  --uplink-interface eth0-with-a-long-name
bad "node magic name" --magic-interface -- "$NODE" --check-config --node n1 --allocator a:1 --magic-interface a/b
bad "node relative sysctl dir" --sysctl-dir -- "$NODE" --check-config --node n1 --allocator a:1 --sysctl-dir proc/sys
bad "node relative socket" --cni-socket -- "$NODE" --check-config --node n1 --allocator a:1 --cni-socket cni.sock
bad "node metrics on a name" --metrics-listen -- "$NODE" --check-config --node n1 --allocator a:1 \
  --metrics-listen localhost:9465
bad "node resync" --resync-interval -- "$NODE" --check-config --node n1 --allocator a:1 --resync-interval 0
bad "node log level" --log-level -- "$NODE" --check-config --node n1 --allocator a:1 --log-level loud

# --- abodectl (unit-tested in cli/abodectl_test.cc; here the binary and $ABODE_SERVER)
good "abodectl" "server abode.abode-system.svc:7443" -- env ABODE_SERVER=abode.abode-system.svc:7443 \
  "$CTL" --check-config cluster status
bad "abodectl server" --server -- env ABODE_SERVER=abode "$CTL" --check-config cluster status
kill -0 "$PID" || fail "the allocator holding port $PORT died"
echo PASS
