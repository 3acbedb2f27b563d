#!/usr/bin/env bash
# Builds abode's container images with buildah, FROM scratch: each holds its binaries, exactly the shared
# libraries they load (resolved by the dynamic loader, ld.so itself included), CA certificates, passwd/group
# lines for its user and a minimal nsswitch.conf. No shell, no package manager, no tzdata (the binaries log in
# UTC and read no zone).
#
#   abode-allocator  abode-allocator + abodectl       user 65532 (abode)   /var/lib/abode owned by it
#   abode-node       abode-node + abode + abode-cni-install   user 0 (netlink, nftables and /run/abode need root;
#                                                     the DaemonSet grants NET_ADMIN and NET_RAW only)
#   abode-kube       abode-kube, when BUILD_DIR holds it   user 65532
#
# Usage: deploy/images/build.sh BUILD_DIR [TAG]   (TAG: latest)
# Environment: BUILDAH_ARGS, global buildah options (default: --storage-driver vfs; add --root DIR --runroot DIR
# for a private store); IMAGE_PREFIX (default localhost/); IMAGES, the names to build (default: all).
# Prints each built image's name.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [TAG]}" && pwd)
TAG=${2:-latest}
PREFIX=${IMAGE_PREFIX-localhost/}
read -r -a BUILDAH <<< "${BUILDAH_ARGS:---storage-driver vfs}"
WANT=${IMAGES:-abode-allocator abode-node abode-kube}
UID_ABODE=65532

command -v buildah >/dev/null || { echo "build.sh: buildah is not installed (apt-get install buildah)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/abode-images-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# add_binary ROOT FILE: FILE into ROOT/usr/local/bin (debug sections stripped), and every library the loader
# maps for it, at the path the loader looks it up by.
add_binary() {
  local root=$1 bin=$2 lib path
  [ -x "$bin" ] || { echo "build.sh: $bin is not built" >&2; exit 1; }
  install -d "$root/usr/local/bin"
  objcopy --strip-debug "$bin" "$root/usr/local/bin/$(basename "$bin")"
  chmod 0755 "$root/usr/local/bin/$(basename "$bin")"
  # "libx.so.1 => /lib/.../libx.so.1 (0x...)" and the loader "/lib64/ld-linux-x86-64.so.2 (0x...)";
  # a static binary has neither ("not a dynamic executable").
  while read -r lib; do
    [ -n "$lib" ] || continue
    path=$root$lib
    [ -e "$path" ] && continue
    install -d "$(dirname "$path")"
    cp -L "$lib" "$path"
  done < <(ldd "$bin" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) (0x.*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p')
}

# base ROOT: what every image holds besides binaries.
base() {
  local root=$1
  install -d -m 0755 "$root/etc/ssl/certs" "$root/usr/local/bin"
  install -d -m 1777 "$root/tmp"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nabode:x:%s:%s:abode:/nonexistent:/usr/sbin/nologin\n' \
    "$UID_ABODE" "$UID_ABODE" > "$root/etc/passwd"
  printf 'root:x:0:\nabode:x:%s:\n' "$UID_ABODE" > "$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"
  chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
}

# commit NAME ROOT CONFIG...: an image FROM scratch of ROOT (files owned by root), configured by `buildah config`
# arguments. OWNED=DIR: an empty folder DIR owned by the abode user (buildah copy does not keep owners).
commit() {
  local name=$1 root=$2 ctr
  shift 2
  ctr=$(buildah "${BUILDAH[@]}" from --name "$name-build-$$" scratch)
  buildah "${BUILDAH[@]}" copy --quiet --chown 0:0 "$ctr" "$root/" / >/dev/null
  if [ -n "${OWNED:-}" ]; then
    install -d "$WORK/empty"
    buildah "${BUILDAH[@]}" copy --quiet --chown "$UID_ABODE:$UID_ABODE" --chmod 0750 "$ctr" "$WORK/empty/" "$OWNED" \
      >/dev/null
  fi
  buildah "${BUILDAH[@]}" config --os linux --arch amd64 \
    --label org.opencontainers.image.title="$name" --label org.opencontainers.image.source=abode "$@" "$ctr"
  buildah "${BUILDAH[@]}" commit --quiet --rm "$ctr" "$PREFIX$name:$TAG" >/dev/null
  echo "$PREFIX$name:$TAG"
}

wanted() { [[ " $WANT " == *" $1 "* ]]; }

if wanted abode-allocator; then
  root=$WORK/allocator
  base "$root"
  add_binary "$root" "$BUILD/allocator-service/abode-allocator"
  add_binary "$root" "$BUILD/cli/abodectl"
  OWNED=/var/lib/abode commit abode-allocator "$root" --entrypoint '["/usr/local/bin/abode-allocator"]' --cmd '' \
    --user "$UID_ABODE:$UID_ABODE" --workingdir /var/lib/abode \
    --env ABODE_LISTEN=0.0.0.0:7443 --env ABODE_DATA_DIR=/var/lib/abode --env ABODE_METRICS_LISTEN=0.0.0.0:9464 \
    --port 7443/tcp --port 7444/tcp --port 9464/tcp --volume /var/lib/abode
fi

if wanted abode-node; then
  root=$WORK/node
  base "$root"
  add_binary "$root" "$BUILD/node-client/abode-node"
  add_binary "$root" "$BUILD/cni/abode"
  add_binary "$root" "$BUILD/cni/abode-cni-install"
  commit abode-node "$root" --entrypoint '["/usr/local/bin/abode-node"]' --cmd '' --user 0:0 --workingdir / \
    --port 9465/tcp
fi

if wanted abode-kube; then
  kube=$(find "$BUILD" -type f -name abode-kube -perm -u+x 2>/dev/null | head -1)
  if [ -n "$kube" ]; then
    root=$WORK/kube
    base "$root"
    add_binary "$root" "$kube"
    commit abode-kube "$root" --entrypoint '["/usr/local/bin/abode-kube"]' --cmd '' \
      --user "$UID_ABODE:$UID_ABODE" --workingdir /
  else
    echo "build.sh: no abode-kube in $BUILD; its image is not built" >&2
  fi
fi
