#!/usr/bin/env bash
# Runs the StatefulSet of the rendered `default` overlay (kustomize build deploy/overlays/default) the way
# Kubernetes would, without Kubernetes: each member in a network namespace of its own (its pod network) and a
# UTS namespace of its own (its pod hostname, abode-allocator-N), started with the container's command and
# environment taken from the rendered manifest, and finding each other by the DNS names of its ABODE_PEERS
# (from a hosts file in each namespace, which `ip netns exec` puts over /etc/hosts). Checks that they bootstrap
# one cluster and elect a leader, that each member's raft id is its ordinal + 1, and that a write through one
# member is read on another. The members run from the abode-allocator image when it can be built here
# (root, buildah, umoci, jq; ABODE_TEST_IMAGES=0: the built binary instead).
#
# Usage: deploy/statefulset_test.sh BUILD_DIR. Needs root (network namespaces) and kustomize
# (scripts/test-tools.sh kustomize); without them it is skipped (exit 77) unless CI is set.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ALLOC=$BUILD/allocator-service/abode-allocator
CTL=$BUILD/cli/abodectl

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() {
  [ -n "${CI:-}" ] && fail "$* (CI)"
  echo "SKIP: $*"
  exit 77
}

KUSTOMIZE=$("$HERE/../scripts/test-tools.sh" --dir kustomize)/kustomize
[ -x "$KUSTOMIZE" ] || skip "no kustomize (scripts/test-tools.sh kustomize)"
RENDERED=$(mktemp /tmp/abode-sts-default-XXXXXX.yaml)
trap 'rm -f "$RENDERED"' EXIT
"$KUSTOMIZE" build "$HERE/overlays/default" > "$RENDERED" || fail "the default overlay does not render"
# Only the StatefulSet's document.
MANIFEST=$RENDERED.sts
awk 'BEGIN {RS = "\n---\n"} /(^|\n)kind: StatefulSet\n/ {print}' "$RENDERED" > "$MANIFEST"
trap 'rm -f "$RENDERED" "$MANIFEST"' EXIT
[ -s "$MANIFEST" ] || fail "no StatefulSet in the default overlay"

[ "$(id -u)" = 0 ] || skip "needs root for network namespaces"

# --- The allocator container's environment, from the manifest: `- name: X` followed by `value: "Y"`.
declare -A ENV
name=""
while IFS= read -r line; do
  if [[ $line =~ ^[[:space:]]*-[[:space:]]name:[[:space:]]*(ABODE_[A-Z_]+)[[:space:]]*$ ]]; then
    name=${BASH_REMATCH[1]}
  elif [[ -n $name && $line =~ ^[[:space:]]*value:[[:space:]]*\"?([^\"]*)\"?[[:space:]]*$ ]]; then
    ENV[$name]=${BASH_REMATCH[1]}
    name=""
  fi
done < "$MANIFEST"
for k in ABODE_LISTEN ABODE_DATA_DIR ABODE_PEERS; do [ -n "${ENV[$k]:-}" ] || fail "no $k in $MANIFEST"; done
REPLICAS=$(sed -n 's/^  replicas: \([0-9]*\)$/\1/p' "$MANIFEST")
STS=$(awk '/^kind: StatefulSet/ {s=1} s && /^  name:/ {print $2; exit}' "$MANIFEST")
GRPC_PORT=${ENV[ABODE_LISTEN]##*:}
echo "manifest: StatefulSet $STS, $REPLICAS replicas, ABODE_PEERS=${ENV[ABODE_PEERS]}"

# Member N's DNS name, from ABODE_PEERS (id N+1).
HOSTS=()
IFS=',' read -r -a PEERS <<< "${ENV[ABODE_PEERS]}"
[ "${#PEERS[@]}" = "$REPLICAS" ] || fail "ABODE_PEERS lists ${#PEERS[@]} members for $REPLICAS replicas"
for p in "${PEERS[@]}"; do
  id=${p%%=*}; addr=${p#*=}; host=${addr%:*}
  [ "${host%%.*}" = "$STS-$((id - 1))" ] || fail "member $id is $host, not pod $STS-$((id - 1)) of the StatefulSet"
  HOSTS[$((id - 1))]=$host
done

WORK=$(mktemp -d /tmp/abode-sts-XXXXXX)
TAG=$(( $$ % 200 + 20 ))
SUBNET=10.198.$TAG
BR=asb$(( $$ % 100000 ))
cleanup() {
  # Every member runs in its namespace: stop what runs there.
  for i in $(seq 0 $((REPLICAS - 1))); do
    for p in $(ip netns pids "abode-sts-$$-$i" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  wait 2>/dev/null || true
  [ -n "${IMAGES:-}" ] && bundles_cleanup
  for i in $(seq 0 $((REPLICAS - 1))); do
    ip link del "ash$$-$i" 2>/dev/null || true
    ip netns del "abode-sts-$$-$i" 2>/dev/null || true
    rm -rf "/etc/netns/abode-sts-$$-$i"
  done
  ip link del "$BR" 2>/dev/null || true
  rm -f "$RENDERED" "$MANIFEST"
  [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

ip link add "$BR" type bridge && ip addr add "$SUBNET.254/24" dev "$BR" && ip link set "$BR" up
HOSTS_FILE="127.0.0.1 localhost"$'\n'
for i in $(seq 0 $((REPLICAS - 1))); do HOSTS_FILE+="$SUBNET.$((i + 1)) ${HOSTS[$i]}"$'\n'; done
for i in $(seq 0 $((REPLICAS - 1))); do
  ns=abode-sts-$$-$i
  ip netns add "$ns"
  ip link add "ash$$-$i" type veth peer name "asn$$-$i"
  ip link set "asn$$-$i" netns "$ns"
  ip link set "ash$$-$i" master "$BR" up
  ip netns exec "$ns" ip addr add "$SUBNET.$((i + 1))/24" dev "asn$$-$i"
  ip netns exec "$ns" ip link set "asn$$-$i" up
  ip netns exec "$ns" ip link set lo up
  mkdir -p "/etc/netns/$ns" && printf '%s' "$HOSTS_FILE" > "/etc/netns/$ns/hosts"
done

# --- Start the pods together (podManagementPolicy: Parallel). The volume is a folder of the test. From the
# allocator's image when it can be built here (as a runtime runs it: deploy/images/bundle.sh), else the built
# binary.
IMAGES=""
if [ "${ABODE_TEST_IMAGES:-1}" = 1 ] && command -v buildah >/dev/null && command -v umoci >/dev/null &&
   command -v jq >/dev/null; then
  IMAGES=1
  # shellcheck source=deploy/images/bundle.sh
  . "$HERE/images/bundle.sh"
  bundles_build abode-allocator
fi
for i in $(seq 0 $((REPLICAS - 1))); do
  if [ -n "$IMAGES" ]; then
    install -d -o 65532 -g 65532 "$WORK/data-$i"
    env_lines=""
    for k in "${!ENV[@]}"; do env_lines+="$k=${ENV[$k]}"$'\n'; done
    EXTRA_ENV=${env_lines%$'\n'} POD_HOSTNAME=$STS-$i \
      BIND="$WORK/data-$i:${ENV[ABODE_DATA_DIR]} /etc/netns/abode-sts-$$-$i/hosts:/etc/hosts" \
      container abode-allocator "abode-sts-$$-$i" >"$WORK/member-$i.log" 2>&1 &
  else
    envs=()
    for k in "${!ENV[@]}"; do envs+=("$k=${ENV[$k]}"); done
    envs+=("ABODE_DATA_DIR=$WORK/data-$i")
    ip netns exec "abode-sts-$$-$i" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$STS-$i" \
      env "${envs[@]}" "$ALLOC" >"$WORK/member-$i.log" 2>&1 &
  fi
done
echo "members started from $([ -n "$IMAGES" ] && echo "the abode-allocator image" || echo "$ALLOC")"

status() { "$CTL" --server "$SUBNET.$(($1 + 1)):$GRPC_PORT" --timeout 2 cluster status -o json 2>/dev/null; }
leader=""
for _ in $(seq 1 300); do
  leader=$(status 0 | sed -n 's/.*"leader_id": *"\{0,1\}\([1-9][0-9]*\).*/\1/p' | head -1 || true)
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || { tail -n 20 "$WORK"/member-*.log >&2; fail "no leader elected"; }
echo "leader: member $leader"
for i in $(seq 0 $((REPLICAS - 1))); do
  st=$(status "$i") || fail "member $i does not answer"
  echo "$st" | grep -q "\"member_id\": *\"\{0,1\}$((i + 1))\"\{0,1\}," || fail "pod $STS-$i is not member $((i + 1)): $st"
  [ "$(echo "$st" | grep -o '"raft_address"' | wc -l)" = "$REPLICAS" ] || fail "member $i does not list $REPLICAS members"
done
echo "ids from ordinals: ok"

writer=$(( leader % REPLICAS ))  # a follower: ids are 1-based, members 0-based
reader=$(( (writer + 1) % REPLICAS ))
ctl() { "$CTL" --server "$SUBNET.$(($1 + 1)):$GRPC_PORT" --timeout 10 "${@:2}"; }
ctl "$writer" pool create pods --cidr 10.244.0.0/16 >/dev/null || fail "pool create through member $writer"
addr=$(ctl "$writer" allocate --pool pods --owner k8s/uid-1/eth0 -o json | sed -n 's/.*"address": *"\([^"]*\)".*/\1/p')
[ -n "$addr" ] || fail "allocate through member $writer"
got=$(ctl "$reader" get --owner k8s/uid-1/eth0 -o json | sed -n 's/.*"address": *"\([^"]*\)".*/\1/p')
[ "$got" = "$addr" ] || fail "member $reader reads '$got', member $writer allocated '$addr'"
echo "write through member $writer ($addr) read on member $reader: ok"

# --- Every member serves Prometheus metrics where the manifest says; the leader counts itself leader.
METRICS_PORT=${ENV[ABODE_METRICS_LISTEN]##*:}
[ -n "$METRICS_PORT" ] || fail "no ABODE_METRICS_LISTEN in $MANIFEST"
grep -q "prometheus.io/port: \"$METRICS_PORT\"" "$MANIFEST" || fail "the scrape annotation does not name port $METRICS_PORT"
scrape() {
  exec 3<>"/dev/tcp/$SUBNET.$(($1 + 1))/$METRICS_PORT" || return 1
  printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3
  cat <&3
  exec 3<&-
}
# A member's figures follow its own state, which may trail the leader's by a moment.
for i in $(seq 0 $((REPLICAS - 1))); do
  want=$([ $((i + 1)) = "$leader" ] && echo 1 || echo 0)
  ok=""
  for _ in $(seq 1 50); do
    m=$(scrape "$i") || fail "member $i serves no metrics on port $METRICS_PORT"
    if echo "$m" | grep -q "^abode_raft_role{role=\"leader\"} $want\$" &&
       echo "$m" | grep -q '^abode_pool_allocated_addresses{pool="pods",.*} 1$'; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ -n "$ok" ] || fail "member $i: metrics do not show abode_raft_role{role=\"leader\"} $want and pool pods' one allocation: $(echo "$m" | grep '^abode_')"
done
echo "metrics on port $METRICS_PORT of every member: ok"
echo PASS
