# Sourced by the tests: builds the images into a private buildah store, unpacks them into runtime bundles and
# runs a bundle the way a container runtime would. Needs root, buildah, umoci and jq; the caller sets WORK (a
# scratch folder it removes) and BUILD, calls bundles_cleanup on exit.

BUNDLE_STORE=(--storage-driver vfs --root "$WORK/store" --runroot "$WORK/run")
BUNDLE_TAG=test$$

# bundles_build IMAGE...: builds the images (deploy/images/build.sh) and unpacks each into $WORK/IMAGE.
bundles_build() {
  BUILDAH_ARGS="${BUNDLE_STORE[*]}" IMAGES="$*" "$(dirname "${BASH_SOURCE[0]}")/build.sh" "$BUILD" "$BUNDLE_TAG" \
    > "$WORK/images"
  local name
  for name in "$@"; do unpack "$name"; done
}

bundles_cleanup() {
  buildah "${BUNDLE_STORE[@]}" rmi --all >/dev/null 2>&1 || true
  umount -R "$WORK/run" 2>/dev/null || true
}

# unpack NAME: OCI layout, then a runtime bundle (rootfs + config.json) in $WORK/NAME.
unpack() {
  buildah "${BUNDLE_STORE[@]}" push --quiet "localhost/$1:$BUNDLE_TAG" "oci:$WORK/oci-$1:$BUNDLE_TAG" >/dev/null
  umoci unpack --image "$WORK/oci-$1:$BUNDLE_TAG" "$WORK/$1" >/dev/null
  [ -x "$WORK/$1/rootfs/usr/local/bin/$1" ] || fail "$1: no /usr/local/bin/$1 in the unpacked image"
  local shells
  shells=$(find "$WORK/$1/rootfs" \( -name sh -o -name bash -o -name dash -o -name busybox \) | head -3)
  [ -z "$shells" ] || fail "$1: the image holds a shell: $shells"
}

# container NAME NETNS [ARG...]: runs the bundle's process as a runtime would, in the foreground: its args
# (entrypoint + cmd; ARG... replace cmd, as a pod's `args` do; COMMAND=PATH replaces the entrypoint, as a pod's
# `command` does), its env (then EXTRA_ENV, one NAME=VALUE a line, as a pod's `env` does), uid/gid and cwd,
# in NETNS ("-": a new, empty one) with private mount and PID namespaces, /proc and a minimal /dev mounted,
# the root set to the rootfs. BIND="HOST:CONTAINER ..." mounts host folders or files; POD_HOSTNAME gives
# the container a UTS namespace with that hostname.
container() {
  local name=$1 ns=$2 root=$WORK/$1/rootfs config=$WORK/$1/config.json
  shift 2
  local -a args env binds=()
  mapfile -t args < <(jq -r '.process.args[]' "$config")
  mapfile -t env < <(jq -r '.process.env[]' "$config")
  [ -n "${EXTRA_ENV:-}" ] && mapfile -t -O "${#env[@]}" env <<< "$EXTRA_ENV"
  [ -n "${COMMAND:-}" ] && args=("$COMMAND")
  args+=("$@")
  local uid gid cwd
  uid=$(jq -r '.process.user.uid' "$config")
  gid=$(jq -r '.process.user.gid' "$config")
  cwd=$(jq -r '.process.cwd' "$config")
  mkdir -p "$root/proc" "$root/dev"
  local bind
  for bind in ${BIND:-}; do
    if [ -d "${bind%%:*}" ]; then mkdir -p "$root${bind#*:}"; else mkdir -p "$(dirname "$root${bind#*:}")"; touch "$root${bind#*:}"; fi
    binds+=("$bind")
  done
  local -a netns=(ip netns exec "$ns") uts=()
  [ "$ns" = - ] && netns=(unshare --net)
  [ -n "${POD_HOSTNAME:-}" ] && uts=(--uts)
  "${netns[@]}" unshare --mount "${uts[@]}" --propagation private sh -c '
      root=$1 host=$2 binds=$3; shift 3
      mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
      for d in null zero random urandom; do touch "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
      for b in $binds; do mount --bind "${b%%:*}" "$root${b#*:}"; done
      [ -z "$host" ] || hostname "$host"
      exec "$@"' sh "$root" "${POD_HOSTNAME:-}" "${binds[*]}" \
    env -i "${env[@]}" unshare --pid --fork --kill-child --mount-proc=/proc --root="$root" --wd="$cwd" \
      --setgid "$gid" --setuid "$uid" -- "${args[@]}"
}
