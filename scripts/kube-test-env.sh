#!/usr/bin/env bash
# A real Kubernetes API server for abode's tests: etcd and kube-apiserver (built by test-tools.sh) started on
# loopback with certificates and a service-account key generated under DIR. No controllers or kubelets run:
# objects are stored, validated, admitted and watched exactly as in a cluster, and nothing reconciles them.
#
#   scripts/kube-test-env.sh start DIR             start both, wait until /readyz answers, write DIR/kubeconfig
#                                                  and DIR/env; print DIR/env's path
#   scripts/kube-test-env.sh restart-apiserver DIR stop kube-apiserver and start it again on the same port and
#                                                  etcd (watches break; stored objects stay)
#   scripts/kube-test-env.sh stop DIR              stop both (DIR stays, for its logs)
#
# DIR/env holds shell assignments: KUBE_APISERVER (https://127.0.0.1:PORT), KUBECONFIG, KUBE_CA (CA file),
# KUBE_TOKEN (a bearer token of a member of system:masters), KUBECTL (path of the matching kubectl).
# Logs: DIR/etcd.log, DIR/kube-apiserver.log. Exit 77 when the tools cannot be built and CI is unset.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|restart-apiserver|stop DIR" >&2; exit 2; }

tools="$("${here}/test-tools.sh" --dir kube)"

# A port below the kernel's ephemeral range (where outgoing connections take their local ports, so that
# a port free of listeners may still be taken by a connection when the server binds it) and below the half of
# it where the integration harness (integration/cluster_harness.cc) picks its members' ports, that no TCP
# socket uses.
free_port() {
  local p lo
  lo="$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)"
  lo=$(( lo / 2 ))
  [ "$lo" -gt 12000 ] || lo=30000
  for _ in $(seq 1 200); do
    p=$(( 10000 + RANDOM % (lo - 10000) ))
    if ! ss -Htan "sport = :${p}" | grep -q .; then echo "$p"; return 0; fi
  done
  echo "kube-test-env: no free port found" >&2
  return 1
}

stop_pid() {
  local file="$1" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

wait_ready() {
  # shellcheck disable=SC1091
  . "${dir}/env"
  for _ in $(seq 1 600); do
    if curl -sf --cacert "$KUBE_CA" -H "Authorization: Bearer ${KUBE_TOKEN}" "${KUBE_APISERVER}/readyz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$(cat "${dir}/kube-apiserver.pid")" 2>/dev/null; then
      echo "kube-test-env: kube-apiserver exited; last lines of ${dir}/kube-apiserver.log:" >&2
      tail -n 20 "${dir}/kube-apiserver.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "kube-test-env: kube-apiserver not ready after 60 s; see ${dir}/kube-apiserver.log" >&2
  return 1
}

# True when the log FILE says a listener could not bind its port because something else took it between
# free_port's look and the bind (another test on the machine choosing ports).
port_was_taken() { grep -q "address already in use" "$1"; }

# Start kube-apiserver and wait until it is ready. When its port was taken, run the command $1 (which chooses
# another port, or waits for this one) and try again, up to five times.
start_apiserver() {
  local before_retry="$1" attempt
  for attempt in 1 2 3 4 5; do
    [ "$attempt" = 1 ] || "$before_retry"
    # shellcheck disable=SC2046
    setsid "${tools}/kube-apiserver" $(cat "${dir}/apiserver.args") >"${dir}/kube-apiserver.log" 2>&1 &
    echo $! >"${dir}/kube-apiserver.pid"
    if wait_ready 2>"${dir}/start.err"; then return 0; fi
    stop_pid "${dir}/kube-apiserver.pid"
    if [ "$attempt" = 5 ] || ! port_was_taken "${dir}/kube-apiserver.log"; then cat "${dir}/start.err" >&2; return 1; fi
    echo "kube-test-env: kube-apiserver's port was taken (attempt ${attempt}); trying again" >&2
  done
}

generate_certs() {
  local pki="${dir}/pki"
  mkdir -p "$pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=abode-test-ca" \
    -keyout "${pki}/ca.key" -out "${pki}/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "${pki}/apiserver.key" -out "${pki}/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\n' \
    >"${pki}/apiserver.ext"
  openssl x509 -req -in "${pki}/apiserver.csr" -CA "${pki}/ca.crt" -CAkey "${pki}/ca.key" -CAcreateserial \
    -days 2 -extfile "${pki}/apiserver.ext" -out "${pki}/apiserver.crt" 2>/dev/null
  openssl genrsa -out "${pki}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${pki}/sa.key" -pubout -out "${pki}/sa.pub" 2>/dev/null
  local token
  token="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  printf '%s,abode-test-admin,abode-test-admin,"system:masters"\n' "$token" >"${pki}/tokens.csv"
  echo "$token" >"${pki}/admin.token"
}

# DIR/apiserver.args, DIR/kubeconfig and DIR/env for etcd_port and api_port.
write_config() {
  local pki="${dir}/pki" token
  token="$(cat "${pki}/admin.token")"
  # ServiceAccount admission is off: no controller manager creates the namespaces' default accounts.
  cat >"${dir}/apiserver.args" <<EOF
--etcd-servers=http://127.0.0.1:${etcd_port}
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--secure-port=${api_port}
--cert-dir=${dir}/apiserver-certs
--tls-cert-file=${pki}/apiserver.crt
--tls-private-key-file=${pki}/apiserver.key
--client-ca-file=${pki}/ca.crt
--token-auth-file=${pki}/tokens.csv
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--service-account-key-file=${pki}/sa.pub
--service-account-signing-key-file=${pki}/sa.key
--service-cluster-ip-range=10.96.0.0/12
--authorization-mode=RBAC
--allow-privileged=true
--disable-admission-plugins=ServiceAccount
--enable-priority-and-fairness=false
EOF
  cat >"${dir}/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: abode-test
  cluster:
    server: https://127.0.0.1:${api_port}
    certificate-authority: ${pki}/ca.crt
users:
- name: abode-test-admin
  user:
    token: ${token}
contexts:
- name: abode-test
  context:
    cluster: abode-test
    user: abode-test-admin
current-context: abode-test
EOF
  cat >"${dir}/env" <<EOF
KUBE_APISERVER=https://127.0.0.1:${api_port}
KUBECONFIG=${dir}/kubeconfig
KUBE_CA=${pki}/ca.crt
KUBE_TOKEN=${token}
KUBECTL=${tools}/kubectl
EOF
}

# A port for kube-apiserver apart from etcd's two, written into its configuration.
choose_api_port() {
  api_port="$(free_port)"
  while [ "$api_port" = "$etcd_port" ] || [ "$api_port" = "$peer_port" ]; do api_port="$(free_port)"; done
  write_config
}

wait_a_moment() { sleep 1; }

case "$cmd" in
  start)
    if [ ! -x "${tools}/kube-apiserver" ] || [ ! -x "${tools}/etcd" ] || [ ! -x "${tools}/kubectl" ]; then
      rc=0
      "${here}/test-tools.sh" kube || rc=$?
      [ "$rc" = 0 ] || exit "$rc"
    fi
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    stop_pid "${dir}/kube-apiserver.pid"
    stop_pid "${dir}/etcd.pid"
    generate_certs
    # A port found free may be taken before the server binds it: on "address already in use", try new ports.
    etcd_ready=0
    for attempt in 1 2 3 4 5; do
      etcd_port="$(free_port)"
      peer_port="$(free_port)"
      while [ "$peer_port" = "$etcd_port" ]; do peer_port="$(free_port)"; done
      rm -rf "${dir}/etcd"
      setsid "${tools}/etcd" --name abode-test --data-dir "${dir}/etcd" --unsafe-no-fsync \
        --listen-client-urls "http://127.0.0.1:${etcd_port}" --advertise-client-urls "http://127.0.0.1:${etcd_port}" \
        --listen-peer-urls "http://127.0.0.1:${peer_port}" --initial-advertise-peer-urls "http://127.0.0.1:${peer_port}" \
        --initial-cluster "abode-test=http://127.0.0.1:${peer_port}" >"${dir}/etcd.log" 2>&1 &
      echo $! >"${dir}/etcd.pid"
      # kube-apiserver gives up when etcd does not answer soon enough (a busy machine): start it once etcd serves.
      for _ in $(seq 1 600); do
        if curl -sf "http://127.0.0.1:${etcd_port}/health" >/dev/null 2>&1; then etcd_ready=1; break; fi
        kill -0 "$(cat "${dir}/etcd.pid")" 2>/dev/null || break
        sleep 0.1
      done
      [ "$etcd_ready" = 1 ] && break
      stop_pid "${dir}/etcd.pid"
      port_was_taken "${dir}/etcd.log" || break
      echo "kube-test-env: etcd's port was taken (attempt ${attempt}); trying others" >&2
    done
    if [ "$etcd_ready" != 1 ]; then
      echo "kube-test-env: etcd did not start; last lines of ${dir}/etcd.log:" >&2
      tail -n 20 "${dir}/etcd.log" >&2
      exit 1
    fi
    choose_api_port
    start_apiserver choose_api_port || exit 1
    echo "${dir}/env"
    ;;
  restart-apiserver)
    dir="$(cd "$dir" && pwd)"
    stop_pid "${dir}/kube-apiserver.pid"
    # The port is kept (clients know it): when something holds it for a moment, wait and try it again.
    start_apiserver wait_a_moment || exit 1
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    stop_pid "${dir}/kube-apiserver.pid"
    stop_pid "${dir}/etcd.pid"
    ;;
  *)
    echo "usage: $0 start|restart-apiserver|stop DIR" >&2
    exit 2
    ;;
esac
