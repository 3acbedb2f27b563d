#!/usr/bin/env bash
# The manifests as product surface: every overlay, and the default overlay with each component, renders
# (kustomize v5), every rendered object is created in a real kube-apiserver with strict field validation, and
# the objects agree with each other, with the binaries they run and with the API server's authorizer:
#   - each abode container's command, args and env, as the kubelet gives them (downward API, $(VAR)
#     expansion, KUBERNETES_SERVICE_*, ConfigMap volumes, the service account folder with a token issued by
#     the API server; each StatefulSet member with its own pod hostname) pass its binary's --check-config,
#     inside its image when the images can be built here (root, buildah, umoci), else the built binary;
#   - abode-kube's service account may do what it does and no other write (kubectl auth can-i);
#   - probe ports, container ports, Service target ports, NetworkPolicy ports, scrape annotations and the
#     listen flags agree; the OTLP endpoint names the Jaeger Service's port;
#   - ABODE_PEERS lists exactly `replicas` members, member N+1 being pod N under the headless Service.
# A copy of an overlay with an unknown field must be refused, so the validation is known to bite.
#
# Usage: deploy/manifest_test.sh BUILD_DIR (ABODE_TEST_IMAGES=0: the built binaries, not the images).
# Skipped (77) without kustomize or the API server's tools unless CI is set (scripts/test-tools.sh
# builds them).
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
KUBE_TEST_ENV=${KUBE_TEST_ENV:-$SRC/scripts/kube-test-env.sh}
# The overlays, and the opt-in components each on top of the default overlay.
OVERLAYS=(single default ha-5 jaeger)
COMPONENTS=(cni-conflist)

skip() {
  [ -n "${CI:-}" ] && { echo "FAIL: $* (CI)" >&2; exit 1; }
  echo "SKIP: $*"
  exit 77
}
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v jq >/dev/null || skip "needs jq (scripts/install-deps.sh)"
[ -x "$KUBE_TEST_ENV" ] || skip "no $KUBE_TEST_ENV"
KUSTOMIZE=$("$SRC/scripts/test-tools.sh" --dir kustomize)/kustomize
if [ ! -x "$KUSTOMIZE" ]; then
  rc=0
  "$SRC/scripts/test-tools.sh" kustomize || rc=$?
  [ "$rc" = 77 ] && skip "kustomize cannot be built here"
  [ "$rc" = 0 ] || fail "scripts/test-tools.sh kustomize: exit $rc"
fi

WORK=$(mktemp -d /tmp/abode-manifest-test-XXXXXX)
IMAGES=""
if [ "${ABODE_TEST_IMAGES:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v buildah >/dev/null && command -v umoci >/dev/null; then
  IMAGES=1
  # shellcheck source=deploy/images/bundle.sh
  . "$HERE/images/bundle.sh"
fi
cleanup() {
  "$KUBE_TEST_ENV" stop "$WORK/kube" >/dev/null 2>&1 || true
  [ -n "$IMAGES" ] && bundles_cleanup
  [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

# --- Render.
for o in "${OVERLAYS[@]}"; do
  "$KUSTOMIZE" build "$HERE/overlays/$o" > "$WORK/$o.yaml" || fail "overlay $o does not render"
done
for comp in "${COMPONENTS[@]}"; do
  # An overlay as an operator writes one: the default overlay plus the component (kustomize wants relative paths).
  mkdir -p "$WORK/overlays/$comp"
  rel=$(realpath --relative-to="$WORK/overlays/$comp" "$HERE")
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s/overlays/default\ncomponents:\n  - %s/components/%s\n' \
    "$rel" "$rel" "$comp" > "$WORK/overlays/$comp/kustomization.yaml"
  "$KUSTOMIZE" build "$WORK/overlays/$comp" > "$WORK/$comp.yaml" || fail "component $comp does not render"
  OVERLAYS+=("$comp")
done
echo "rendered: ${OVERLAYS[*]}"

# --- A real API server.
rc=0
"$KUBE_TEST_ENV" start "$WORK/kube" > /dev/null || rc=$?
[ "$rc" = 77 ] && skip "the API server's tools cannot be built here"
[ "$rc" = 0 ] || fail "kube-test-env start: exit $rc"
# shellcheck disable=SC1091
. "$WORK/kube/env"
export KUBECONFIG
k() { "$KUBECTL" "$@"; }


if [ -n "$IMAGES" ]; then
  names="abode-allocator abode-node"
  [ -n "$(find "$BUILD" -type f -name abode-kube -perm -u+x 2>/dev/null | head -1)" ] && names+=" abode-kube"
  # shellcheck disable=SC2086
  bundles_build $names
  echo "images built for the --check-config runs: $names"
fi

SA_MOUNT=/var/run/secrets/kubernetes.io/serviceaccount
KUBE_SERVICE=${KUBE_APISERVER#https://}

# configmap_mounts OVERLAY KIND NAME CONTAINER_JSON: the container's ConfigMap volumes as the kubelet mounts
# them, one "MOUNT_PATH FOLDER" a line, each FOLDER holding the ConfigMap's files (from the applied objects).
configmap_mounts() {
  local o=$1 kind=$2 name=$3 c=$4 path cm dir
  while read -r path cm; do
    [ -n "$path" ] || continue
    dir=$WORK/configmap-$o-$cm
    mkdir -p "$dir"
    jq -r --arg cm "$cm" '.items[] | select(.kind == "ConfigMap" and .metadata.name == $cm) | .data | keys[]' "$WORK/$o.json" |
      while read -r key; do
        jq -j --arg cm "$cm" --arg key "$key" '.items[] | select(.kind == "ConfigMap" and .metadata.name == $cm) | .data[$key]' \
          "$WORK/$o.json" > "$dir/$key"
      done
    chmod -R a+rX "$dir"
    echo "$path $dir"
  done < <(jq -r --arg kind "$kind" --arg name "$name" --argjson c "$c" '.items[] | select(.kind == $kind and .metadata.name == $name)
      | .spec.template.spec.volumes as $vols | $c.volumeMounts[]? | .name as $v | .mountPath as $p
      | $vols[] | select(.name == $v and .configMap != null) | "\($p) \(.configMap.name)"' "$WORK/$o.json")
}

# service_account NAME: the folder the kubelet mounts for a pod of ServiceAccount NAME (abode-system): a
# token the API server issues for it (TokenRequest), the cluster's CA, the namespace. Prints its path.
service_account() {
  local dir=$WORK/sa-$1
  rm -rf "$dir" && mkdir -m 0755 "$dir"
  k -n abode-system create token "$1" --duration=10m > "$dir/token" || fail "no token for ServiceAccount $1"
  cp "$KUBE_CA" "$dir/ca.crt"
  printf abode-system > "$dir/namespace"
  chmod 0644 "$dir"/*
  echo "$dir"
}

# check_config IMAGE POD CONTAINER_JSON [SA]: runs the container's command and args with --check-config, in
# its environment as the kubelet gives it (KUBERNETES_SERVICE_HOST/PORT, the API server here; NODE_NAME from
# the downward API: node-1; POD_NAME: POD; $(VAR) in command and args expanded from the env), with POD as
# its hostname, in a network namespace of its own; SA: a service account folder (service_account) mounted
# where the kubelet mounts it. Inside
# IMAGE's bundle (its environment under the container's, its user) when images were built. Prints the
# output; returns the exit code.
check_config() {
  local image=$1 host=$2 c=$3 sa=${4:-} mounts=${5:-}
  local -a cmd env prefix
  mapfile -t cmd < <(jq -r '(.command // []) + (.args // []) | .[]' <<< "$c")
  [ "${#cmd[@]}" -gt 0 ] || fail "$image: a container without a command"
  env=("KUBERNETES_SERVICE_HOST=${KUBE_SERVICE%:*}" "KUBERNETES_SERVICE_PORT=${KUBE_SERVICE##*:}")
  mapfile -t -O 2 env < <(jq -r --arg pod "$host" '.env // [] | .[] |
      if .value != null then "\(.name)=\(.value)"
      elif .valueFrom.fieldRef.fieldPath == "spec.nodeName" then "\(.name)=node-1"
      elif .valueFrom.fieldRef.fieldPath == "metadata.name" then "\(.name)=\($pod)"
      else error("env \(.name): a valueFrom this test cannot give") end' <<< "$c")
  local i e
  for i in "${!cmd[@]}"; do
    for e in "${env[@]}"; do cmd[i]=${cmd[i]//\$(${e%%=*})/${e#*=}}; done
  done
  local root=""
  if [ -n "$IMAGES" ] && [ -d "$WORK/$image" ]; then
    local config=$WORK/$image/config.json
    local -a image_env
    mapfile -t image_env < <(jq -r '.process.env[]' "$config")
    root=$WORK/$image/rootfs
    mkdir -p "$root/proc"
    prefix=(env -i "${image_env[@]}" "${env[@]}" unshare --pid --fork --kill-child --mount-proc=/proc
      --root="$root" --setgid "$(jq -r '.process.user.gid' "$config")"
      --setuid "$(jq -r '.process.user.uid' "$config")" --)
  else
    # The built binaries stand in for /usr/local/bin, in the command and in the args that name files.
    local name bin
    for i in "${!cmd[@]}"; do
      while [[ ${cmd[i]} =~ /usr/local/bin/([a-z0-9-]+) ]]; do
        name=${BASH_REMATCH[1]}
        bin=$(find "$BUILD" -type f -name "$name" -perm -u+x | head -1)
        [ -n "$bin" ] || fail "no $name in $BUILD"
        cmd[i]=${cmd[i]//\/usr\/local\/bin\/$name/$bin}
      done
    done
    prefix=(env -i "${env[@]}")
    # ConfigMap folders: their files where the args name them.
    local m
    while read -r m; do
      [ -n "$m" ] || continue
      for i in "${!cmd[@]}"; do cmd[i]=${cmd[i]//${m%% *}\//${m#* }\/}; done
    done <<< "$mounts"
    mounts=""
  fi
  # The service account folder, mounted (read-only) where the kubelet mounts it: over the rootfs's path, or
  # over a private /run (/var/run's target) for the built binaries.
  unshare --net --uts --mount --propagation private sh -c '
      host=$1 sa=$2 root=$3 mnt=$4 mounts=$5; shift 5
      hostname "$host"
      if [ -n "$sa" ]; then
        if [ -z "$root" ]; then mount -t tmpfs -o mode=0755 sa-run /run; fi
        mkdir -p "$root$mnt" && mount --bind -o ro "$sa" "$root$mnt"
      fi
      echo "$mounts" | while read -r path dir; do
        [ -z "$path" ] || { mkdir -p "$root$path" && mount --bind -o ro "$dir" "$root$path"; }
      done
      exec "$@"' sh "$host" "$sa" "$root" "$SA_MOUNT" "$mounts" \
    "${prefix[@]}" "${cmd[0]}" --check-config "${cmd[@]:1}" 2>&1
}

# The cross-checks of one rendered, applied overlay (a List from the API server): jq prints one line per
# disagreement.
CROSS_CHECKS='
def items_of($kind): .items[] | select(.kind == $kind);
def port_of($hostport): $hostport | sub(".*:"; "") | tonumber;
def named_port($c; $name): [$c.ports[]? | select(.name == $name) | .containerPort][0];
def env_of($c; $name): [$c.env[]? | select(.name == $name) | .value][0];
def flag_of($c; $flag): [($c.args // [])[] | select(startswith($flag + "=")) | sub("^[^=]*="; "")][0];
def probe_port($c; $p): if ($p | type) == "string" then named_port($c; $p) else $p end;
. as $all
| def names_service_port($a): [$all | items_of("Service")
      | select("\(.metadata.name).\(.metadata.namespace).svc.cluster.local:\(.spec.ports[0].port)" == $a)] | length == 1;
  (.items[] | select((.kind | IN("Namespace", "ClusterRole", "ClusterRoleBinding") | not) and .metadata.namespace != "abode-system")
   | "\(.kind)/\(.metadata.name) is in namespace \(.metadata.namespace), not abode-system"),
  (items_of("StatefulSet") as $sts
   | $sts.spec.template.spec.containers[0] as $c
   | port_of(env_of($c; "ABODE_LISTEN")) as $grpc
   | port_of(env_of($c; "ABODE_METRICS_LISTEN")) as $metrics
   | (env_of($c; "ABODE_PEERS") | split(",")) as $peers
   | [$all | items_of("Service") | select(.metadata.name == $sts.spec.serviceName)][0] as $headless
   | (if $headless == null then "no headless Service \($sts.spec.serviceName)" else empty end),
     (if $headless.spec.clusterIP != "None" or $headless.spec.publishNotReadyAddresses != true
      then "Service \($sts.spec.serviceName) is not headless with publishNotReadyAddresses" else empty end),
     (if ($peers | length) != $sts.spec.replicas
      then "ABODE_PEERS lists \($peers | length) members for \($sts.spec.replicas) replicas" else empty end),
     ($peers | to_entries[] | .key as $i | .value
      | ("\($i + 1)=\($sts.metadata.name)-\($i).\($sts.spec.serviceName).\($sts.metadata.namespace).svc.cluster.local:\(named_port($c; "raft"))") as $want
      | if . != $want then "peer \($i + 1) is \(.), want \($want)" else empty end),
     (if named_port($c; "grpc") != $grpc then "containerPort grpc \(named_port($c; "grpc")) != ABODE_LISTEN port \($grpc)" else empty end),
     (if named_port($c; "metrics") != $metrics then "containerPort metrics != ABODE_METRICS_LISTEN port \($metrics)" else empty end),
     (if $c.readinessProbe.grpc.port != $grpc then "readiness probe port \($c.readinessProbe.grpc.port) != gRPC port \($grpc)" else empty end),
     (if $c.startupProbe.grpc.port != $grpc then "startup probe port \($c.startupProbe.grpc.port) != gRPC port \($grpc)" else empty end),
     (if ($sts.spec.template.metadata.annotations["prometheus.io/port"] | tonumber) != $metrics
      then "scrape annotation != metrics port \($metrics)" else empty end),
     ($all | items_of("Service") | select(.spec.selector["app.kubernetes.io/name"] == "abode-allocator")
      | .metadata.name as $svc | .spec.ports[]
      | if named_port($c; .targetPort) != .port then "Service \($svc) port \(.name): targetPort \(.targetPort) is not container port \(.port)" else empty end),
     ($all | items_of("NetworkPolicy") | select(.spec.podSelector.matchLabels["app.kubernetes.io/name"] == "abode-allocator")
      | .spec.ingress[].ports[].port | select(named_port($c; .) == null) | "NetworkPolicy opens port \(.), which no container names")
  ),
  (items_of("DaemonSet") as $ds
   | $ds.spec.template.spec.containers[0] as $c
   | port_of(flag_of($c; "--metrics-listen")) as $metrics
   | (if $c.readinessProbe.httpGet.port != $metrics then "abode-node readiness port != --metrics-listen port \($metrics)" else empty end),
     (if named_port($c; "metrics") != $metrics then "abode-node containerPort metrics != \($metrics)" else empty end),
     (if ($ds.spec.template.metadata.annotations["prometheus.io/port"] | tonumber) != $metrics
      then "abode-node scrape annotation != \($metrics)" else empty end),
     (env_of($c; "ABODE_ALLOCATOR") as $a
      | if names_service_port($a) | not then "ABODE_ALLOCATOR \($a) names no Service port" else empty end),
     ($ds.spec.template.spec.volumes[] | select(.hostPath.path == "/etc/cni/net.d") | .name as $v
      | $ds.spec.template.spec.containers[] | select(any(.volumeMounts[]?; .name == $v))
      | "abode-node container \(.name) mounts the host'"'"'s /etc/cni/net.d (only the installer may)"),
     (if flag_of($c; "--cni-socket") == null or ([$c.volumeMounts[] | select(.mountPath as $m | flag_of($c; "--cni-socket") | startswith($m + "/"))] | length) != 1
      then "the CNI socket is not in a mounted host folder" else empty end)
  ),
  (items_of("Deployment") | select(.metadata.name == "abode-kube") as $d
   | $d.spec.template.spec as $pod
   | $pod.containers[0] as $c
   | port_of(flag_of($c; "--listen")) as $metrics
   | port_of(flag_of($c; "--health-listen")) as $health
   | (if named_port($c; "metrics") != $metrics then "abode-kube containerPort metrics != --listen port \($metrics)" else empty end),
     (if probe_port($c; $c.readinessProbe.httpGet.port) != $health or $c.readinessProbe.httpGet.path != "/readyz"
      then "abode-kube readiness probe is not /readyz on --health-listen port \($health)" else empty end),
     (if probe_port($c; $c.livenessProbe.httpGet.port) != $health or $c.livenessProbe.httpGet.path != "/healthz"
      then "abode-kube liveness probe is not /healthz on --health-listen port \($health)" else empty end),
     (if ($d.spec.template.metadata.annotations["prometheus.io/port"] | tonumber) != $metrics
      then "abode-kube scrape annotation != \($metrics)" else empty end),
     (if names_service_port(flag_of($c; "--allocator")) | not then "abode-kube --allocator \(flag_of($c; "--allocator")) names no Service port" else empty end),
     (if $pod.automountServiceAccountToken == false then "abode-kube does not mount its service account token" else empty end),
     (if [$all | items_of("ServiceAccount") | select(.metadata.name == $pod.serviceAccountName)] | length != 1
      then "abode-kube ServiceAccount \($pod.serviceAccountName) is not deployed" else empty end),
     ($all | .items[] | select(.kind == "ClusterRoleBinding" or .kind == "RoleBinding") | select(.metadata.name | startswith("abode-kube"))
      | select([.subjects[] | select(.kind == "ServiceAccount" and .name == $pod.serviceAccountName and .namespace == $d.metadata.namespace)] | length != 1)
      | "\(.kind)/\(.metadata.name) does not bind ServiceAccount \($d.metadata.namespace)/\($pod.serviceAccountName)"),
     ($all | items_of("NetworkPolicy") | select(.spec.podSelector.matchLabels["app.kubernetes.io/name"] == "abode-allocator")
      | select([.spec.ingress[] | select(any(.ports[]; .port == "grpc")) | .from[]
                | select(.namespaceSelector == null and .podSelector.matchLabels == $d.spec.selector.matchLabels)] | length == 0)
      | "NetworkPolicy \(.metadata.name) does not open gRPC to abode-kube")
  ),
  (.items[] | select(.kind == "StatefulSet" or .kind == "DaemonSet" or .kind == "Deployment") as $w
   | $w.spec.template.spec.containers[] | env_of(.; "OTEL_EXPORTER_OTLP_ENDPOINT") | select(. != null)
   | capture("^http://(?<svc>[^.]+)\\.(?<ns>[^.]+)\\.svc\\.cluster\\.local:(?<port>[0-9]+)$") as $e
   | if $e == null then "\($w.metadata.name): OTEL_EXPORTER_OTLP_ENDPOINT \(.) is not http://SERVICE.NAMESPACE.svc.cluster.local:PORT"
     else ([$all | items_of("Service") | select(.metadata.name == $e.svc and .metadata.namespace == $e.ns) | .spec.ports[]
            | select(.port == ($e.port | tonumber))] | length) as $n
     | if $n != 1 then "\($w.metadata.name): OTEL endpoint \(.) names no Service port" else empty end end)
'

for o in "${OVERLAYS[@]}"; do
  # Created, every object, with strict field validation.
  k apply --server-side --validate=strict --field-manager=abode-test -f "$WORK/$o.yaml" -o json > "$WORK/$o.json" ||
    fail "overlay $o: the API server refused it"
  want=$(grep -c '^kind: ' "$WORK/$o.yaml")
  got=$(jq '.items | length' "$WORK/$o.json")
  [ "$want" = "$got" ] || fail "overlay $o: $want objects rendered, $got applied"
  problems=$(jq -r "$CROSS_CHECKS" "$WORK/$o.json")
  [ -z "$problems" ] || fail "overlay $o: $problems"

  # Every abode container through its binary's --check-config; each StatefulSet member with its hostname.
  checked=0
  while IFS=$'\t' read -r kind name replicas sa container; do
    image=$(jq -r '.image | sub(".*/"; "") | sub(":.*"; "")' <<< "$container")
    [[ $image == abode-* ]] || continue
    cname=$(jq -r .name <<< "$container")
    if [ "$kind" = StatefulSet ] && [ "$cname" = allocator ]; then
      for i in $(seq 0 $((replicas - 1))); do
        out=$(check_config "$image" "$name-$i" "$container") || fail "overlay $o: $name-$i: $out"
        [[ $out == *"member $((i + 1)) of $replicas,"* ]] || fail "overlay $o: pod $name-$i is not member $((i + 1)) of $replicas: $out"
        checked=$((checked + 1))
      done
    else
      sa_dir=""
      [ "$sa" = - ] || sa_dir=$(service_account "$sa")
      out=$(check_config "$image" "$name-pod" "$container" "$sa_dir" "$(configmap_mounts "$o" "$kind" "$name" "$container")") ||
        fail "overlay $o: $kind $name container $cname: $out"
      if [ "$cname" = install-cni ]; then
        # The conflist goes to the host's /etc/cni/net.d only with the component.
        conflist=/host/etc/cni/net.d/10-abode.conflist
        if [ "$o" = cni-conflist ]; then
          [[ $out == *", $conflist"* ]] || fail "overlay $o: the installer does not plan the conflist: $out"
        elif [[ $out == *conflist* ]]; then
          fail "overlay $o: the installer writes a conflist without the cni-conflist component: $out"
        fi
      fi
      if [ "$kind" = Deployment ] && [ "$name" = abode-kube ]; then
        [[ $out == *"server $KUBE_APISERVER, lease abode-system/abode-kube, identity $name-pod)"* ]] ||
          fail "overlay $o: abode-kube is not configured for this cluster, its namespace's Lease and its pod's name: $out"
      fi
      checked=$((checked + 1))
    fi
  done < <(jq -c -r '.items[] | select(.kind == "StatefulSet" or .kind == "DaemonSet" or .kind == "Deployment")
      | . as $w | (.spec.template.spec.initContainers // []) + .spec.template.spec.containers | .[]
      | [$w.kind, $w.metadata.name, ($w.spec.replicas // 1 | tostring),
         (if $w.spec.template.spec.automountServiceAccountToken == false then "-" else $w.spec.template.spec.serviceAccountName // "default" end),
         tojson] | @tsv' "$WORK/$o.json")
  if [ "$o" = default ]; then
    # The validation bites: a copy with an unknown field, and one with a wrong type, are refused.
    refused() {
      local what=$1 want=$2 out
      if out=$(k apply --server-side --validate=strict --dry-run=server --field-manager=abode-test -f "$WORK/bad.yaml" 2>&1); then
        fail "$what was accepted: $out"
      fi
      [[ $out == *"$want"* ]] || fail "$what was refused for another reason: $out"
      echo "strict validation refuses $what"
    }
    sed '0,/^\( *\)imagePullPolicy: IfNotPresent$/s//&\n\1imagePullPolicyy: Always/' "$WORK/default.yaml" > "$WORK/bad.yaml"
    refused "an unknown field" "imagePullPolicyy"
    sed 's/^  replicas: 3$/  replicas: three/' "$WORK/default.yaml" > "$WORK/bad.yaml"
    refused "a wrong type" "replicas"

    # The cross-checks bite: a peer list one short, a probe on another port, a Service port without its container port.
    for mutation in \
        '(.items[] | select(.kind == "StatefulSet") | .spec.template.spec.containers[0].env[] | select(.name == "ABODE_PEERS") | .value) |= sub(",3=.*"; "")|ABODE_PEERS lists 2 members for 3 replicas' \
        '(.items[] | select(.kind == "StatefulSet") | .spec.template.spec.containers[0].readinessProbe.grpc.port) = 7444|readiness probe port 7444' \
        '(.items[] | select(.kind == "Service" and .metadata.name == "abode") | .spec.ports[0].targetPort) = "grcp"|targetPort grcp'; do
      problems=$(jq "${mutation%|*}" "$WORK/default.json" | jq -r "$CROSS_CHECKS")
      [[ $problems == *"${mutation##*|}"* ]] || fail "the cross-checks miss: ${mutation##*|} (got: $problems)"
    done
    echo "the cross-checks catch a short peer list, a probe on the wrong port, a Service port without a container port"
    # --check-config bites: the DaemonSet's container with a relative socket path is refused, naming the flag.
    bad_container=$(jq -c '.items[] | select(.kind == "DaemonSet") | .spec.template.spec.containers[0]
        | .args |= map(sub("^--cni-socket=.*"; "--cni-socket=cni.sock"))' "$WORK/default.json")
    if out=$(check_config abode-node node-pod "$bad_container"); then fail "a relative --cni-socket passed: $out"; fi
    [[ $out == *--cni-socket* ]] || fail "a relative --cni-socket was refused for another reason: $out"
    echo "--check-config refuses the DaemonSet's container with a relative --cni-socket"
    # ... and abode-kube's container without the service account folder (automountServiceAccountToken: false).
    kube_container=$(jq -c '.items[] | select(.kind == "Deployment" and .metadata.name == "abode-kube") | .spec.template.spec.containers[0]' "$WORK/default.json")
    if out=$(check_config abode-kube abode-kube-pod "$kube_container"); then fail "abode-kube passed without a service account: $out"; fi
    [[ $out == *"in-cluster CA"* ]] || fail "abode-kube without a service account was refused for another reason: $out"
    echo "--check-config refuses abode-kube's container without its service account"

    # abode-kube's RBAC as the API server's authorizer decides it: what it does is allowed, nothing else.
    can() { k auth can-i --as=system:serviceaccount:abode-system:abode-kube "$@" > /dev/null 2>&1; }
    while read -r verb resource where; do
      # shellcheck disable=SC2086
      can "$verb" "$resource" $where || fail "abode-kube may not $verb $resource $where"
    done <<'ALLOWED'
list pods --all-namespaces
watch pods --all-namespaces
get pods -n default
patch pods -n default
patch pods --subresource=status -n default
list services --all-namespaces
watch services --all-namespaces
patch services --subresource=status -n default
list nodes
watch nodes
create events -n default
patch events -n default
get leases.coordination.k8s.io -n abode-system
create leases.coordination.k8s.io -n abode-system
update leases.coordination.k8s.io -n abode-system
ALLOWED
    while read -r verb resource where; do
      # shellcheck disable=SC2086
      if can "$verb" "$resource" $where; then fail "abode-kube may $verb $resource $where"; fi
    done <<'DENIED'
create pods -n default
delete pods -n default
update pods -n default
update pods --subresource=status -n default
delete events -n default
patch services -n default
update services -n default
delete services -n default
patch nodes
delete nodes
get secrets -n abode-system
list configmaps --all-namespaces
delete leases.coordination.k8s.io -n abode-system
update leases.coordination.k8s.io -n default
create leases.coordination.k8s.io -n default
DENIED
    echo "abode-kube's RBAC allows what it does and refuses the rest (kubectl auth can-i against the API server)"
  fi
  # Every abode container: each allocator member, abode-node and its installer, abode-kube.
  want=$(jq '[.items[] | select(.kind == "StatefulSet") | .spec.replicas] | add + 3' "$WORK/$o.json")
  [ "$checked" = "$want" ] || fail "overlay $o: $checked --check-config runs, want $want"
  echo "overlay $o: $got objects created (strict), cross-checks agree, $checked --check-config runs pass$([ -n "$IMAGES" ] && echo " in the images")"

  # Removed again (all but the namespace, which no controller here would finish deleting) for the next overlay.
  jq -r '.items[] | select(.metadata.namespace == "abode-system") | "\(.kind)/\(.metadata.name)"' "$WORK/$o.json" |
    xargs "$KUBECTL" -n abode-system delete --wait=false > /dev/null
  jq -r '.items[] | select(.kind | IN("ClusterRole", "ClusterRoleBinding")) | "\(.kind)/\(.metadata.name)"' "$WORK/$o.json" |
    xargs "$KUBECTL" delete --wait=false > /dev/null
done
echo PASS
