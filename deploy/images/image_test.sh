#!/usr/bin/env bash
# Builds the images (deploy/images/build.sh, into a private buildah store), exports each to an OCI layout,
# unpacks it with umoci into a runtime bundle, and runs it the way a container runtime would: the bundle's
# process (the image's entrypoint, environment, user and working directory), with the root set to the
# unpacked filesystem, /proc and a minimal /dev mounted, in network namespaces of its own. Checks:
#   - no shell in any image, and the users the images declare (non-root except abode-node);
#   - abode-allocator serves: its gRPC health check passes, and abodectl from the same image talks to it;
#   - abode-node, from its image in another namespace, registers with that allocator;
#   - abode-cni-install, from the abode-node image, copies the plugin into a host folder mounted into it, and
#     the cni-conflist component's list, leaving a foreign list of the same name alone.
# Usage: deploy/images/image_test.sh BUILD_DIR. Needs root, buildah, umoci and jq: skipped (77) without
# them unless CI is set.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
PROBE=$BUILD/deploy/abode-grpc-health-probe

skip() {
  [ -n "${CI:-}" ] && { echo "FAIL: $* (CI)" >&2; exit 1; }
  echo "SKIP: $*"
  exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces, chroot)"
for tool in buildah umoci jq; do command -v "$tool" >/dev/null || skip "needs $tool (scripts/install-deps.sh)"; done

WORK=$(mktemp -d /tmp/abode-image-test-XXXXXX)
# shellcheck source=deploy/images/bundle.sh
. "$HERE/bundle.sh"
NS_A=abode-img-a-$$
NS_N=abode-img-n-$$
cleanup() {
  for ns in "$NS_A" "$NS_N"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  wait 2>/dev/null || true
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_N" 2>/dev/null || true
  bundles_cleanup
  [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

bundles_build abode-allocator abode-node
echo "built: $(tr '\n' ' ' < "$WORK/images")"
[ "$(jq -r '.process.user.uid' "$WORK/abode-allocator/config.json")" = 65532 ] || fail "abode-allocator does not run as 65532"
[ "$(jq -r '.process.user.uid' "$WORK/abode-node/config.json")" = 0 ] || fail "abode-node does not run as root"
echo "images unpacked; no shell; users: abode-allocator 65532, abode-node 0"

# Two namespaces joined by a veth pair: the allocator's pod network and the node's.
SUBNET=10.197.$(( $$ % 200 + 20 ))
ip netns add "$NS_A"
ip netns add "$NS_N"
ip link add "aia$$" type veth peer name "ain$$"
ip link set "aia$$" netns "$NS_A"
ip link set "ain$$" netns "$NS_N"
ip -n "$NS_A" addr add "$SUBNET.1/24" dev "aia$$"
ip -n "$NS_N" addr add "$SUBNET.2/24" dev "ain$$"
for ns in "$NS_A" "$NS_N"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" link set "aia$$" up
ip -n "$NS_N" link set "ain$$" up

# --- abode-allocator: the image's own configuration (ABODE_LISTEN 0.0.0.0:7443, data in /var/lib/abode).
container abode-allocator "$NS_A" > "$WORK/allocator.log" 2>&1 &
ok=""
for _ in $(seq 1 100); do
  if ip netns exec "$NS_N" "$PROBE" "$SUBNET.1:7443" 500 >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || { cat "$WORK/allocator.log" >&2; fail "abode-allocator's health check does not pass"; }
echo "abode-allocator serves; gRPC health check: SERVING"
[ "$(stat -c %u "$WORK/abode-allocator/rootfs/var/lib/abode/state.db")" = 65532 ] ||
  fail "the allocator's store is not in /var/lib/abode, written by uid 65532"

# abodectl from the allocator image, as `kubectl exec` would run it.
ctl() { COMMAND=/usr/local/bin/abodectl container abode-allocator "$NS_N" --server "$SUBNET.1:7443" "$@"; }
ctl pool create pods --cidr 10.244.0.0/16 >/dev/null || fail "abodectl (from the image) pool create"
echo "abodectl from the image: pool created"

# --- abode-node from its image, against the allocator: it registers the node and serves the CNI socket.
# /run/abode is a host folder, as in the DaemonSet (hostPath).
mkdir -p "$WORK/host-run-abode"
BIND="$WORK/host-run-abode:/run/abode" container abode-node "$NS_N" --node img-node-1 --allocator "$SUBNET.1:7443" --cni-socket /run/abode/cni.sock \
  > "$WORK/node.log" 2>&1 &
registered=""
for _ in $(seq 1 100); do
  if ctl nodes list -o json 2>/dev/null | grep -q '"img-node-1"'; then registered=1; break; fi
  sleep 0.1
done
[ -n "$registered" ] || { cat "$WORK/node.log" >&2; fail "abode-node from its image did not register"; }
[ "$(stat -c %a "$WORK/host-run-abode/cni.sock")" = 600 ] || fail "the CNI socket is not root-only"
echo "abode-node from its image registered with the allocator; its CNI socket on the host folder is root-only"

# --- abode-cni-install from the abode-node image, with a host folder mounted where the DaemonSet mounts it.
mkdir -p "$WORK/host/bin" "$WORK/host/net.d"
BIND="$WORK/host:/host" COMMAND=/usr/local/bin/abode-cni-install container abode-node "$NS_N" \
  --cni-bin-dir /host/bin --cni-conf-dir /host/net.d --network pods --range 10.244.0.0/16 > "$WORK/install.log" 2>&1 ||
  { cat "$WORK/install.log" >&2; fail "abode-cni-install from the image"; }
cmp "$WORK/host/bin/abode" "$WORK/abode-node/rootfs/usr/local/bin/abode" || fail "the installed plugin differs"
[ "$(stat -c %a "$WORK/host/bin/abode")" = 755 ] || fail "the installed plugin's mode is not 0755"
jq -e '.plugins[0].ipam.type == "abode"' "$WORK/host/net.d/10-abode.conflist" >/dev/null || fail "no conflist"
echo "abode-cni-install from the image: plugin and conflist on the host"

# The cni-conflist component's list, from its ConfigMap's mount: a node's own list under that name is left
# alone (the installer fails naming the flag); once the name is free it is written.
conflist=$HERE/../components/cni-conflist/10-abode.conflist
printf '{"cniVersion": "1.0.0", "name": "cluster", "plugins": [{"type": "ptp", "ipam": {"type": "host-local"}}]}\n' \
  > "$WORK/host/net.d/05-cluster.conflist"
cp "$WORK/host/net.d/05-cluster.conflist" "$WORK/foreign.conflist"
install_component() {
  BIND="$WORK/host:/host $conflist:/etc/abode/cni/10-abode.conflist" COMMAND=/usr/local/bin/abode-cni-install \
    container abode-node "$NS_N" --cni-bin-dir /host/bin --cni-conf-dir /host/net.d \
    --conflist-file /etc/abode/cni/10-abode.conflist --conflist-name "$1" > "$WORK/install.log" 2>&1
}
if install_component 05-cluster.conflist; then fail "the installer replaced the node's own conflist"; fi
grep -q -- "--conflist-name" "$WORK/install.log" || { cat "$WORK/install.log" >&2; fail "refused for another reason"; }
cmp "$WORK/host/net.d/05-cluster.conflist" "$WORK/foreign.conflist" || fail "the node's own conflist changed"
install_component 10-abode.conflist || { cat "$WORK/install.log" >&2; fail "the component's conflist from the image"; }
cmp "$WORK/host/net.d/10-abode.conflist" "$conflist" || fail "the installed conflist differs from the component's"
echo "abode-cni-install from the image: the component's conflist installed, a foreign one of that name left alone"

# Every process of the test lives in one of its two namespaces: stop them there.
for ns in "$NS_A" "$NS_N"; do
  for p in $(ip netns pids "$ns"); do kill "$p" 2>/dev/null || true; done
done
wait
echo PASS
