#!/usr/bin/env bash
# A local Kubernetes control plane: a real etcd and kube-apiserver on loopback ports,
# built from Go modules by scripts/control-plane/build.sh. No kubelet, no scheduler, no
# controller-manager: objects are stored and validated, status is written through the API.
#
#   bash scripts/cluster.sh up       # build if needed, start, print the kubeconfig path
#   bash scripts/cluster.sh down     # stop both processes and remove the data
#   bash scripts/cluster.sh status   # exit 0 if running, 1 if not
#
# The cluster lives in ${PUSHGATE_CLUSTER_DIR:-.pushgate/cluster} (relative to the
# current directory). `up` prints progress on stderr and the absolute kubeconfig path as
# the last line of stdout.
#
# Environment:
#   PUSHGATE_CLUSTER_DIR            where certs, data, logs, pids and kubeconfig go
#   PUSHGATE_CLUSTER_START_TIMEOUT  seconds to wait for /readyz (default 90)
#   PUSHGATE_CLUSTER_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL (default 10)
#   PUSHGATE_CLUSTER_OWNER_PID      with `up`: run `down` by itself once this process is gone
#                                   (a test run killed before its teardown leaks nothing)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${PUSHGATE_CLUSTER_DIR:-.pushgate/cluster}"
dir="$(realpath -m -- "$dir")"

start_timeout="${PUSHGATE_CLUSTER_START_TIMEOUT:-90}"
stop_timeout="${PUSHGATE_CLUSTER_STOP_TIMEOUT:-10}"
service_cidr="10.0.0.0/24"
components=(kube-apiserver etcd) # stop order: the API server before its storage

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes ------------------------------------------------------------------------

# The pid of a component if it is alive and still the process we started: pids are
# reused, so the command line must mention this cluster's directory.
live_pid() {
  local name="$1" pid
  [[ -f "$dir/$name.pid" ]] || return 1
  pid="$(<"$dir/$name.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/" || return 1
  echo "$pid"
}

stop_component() {
  local name="$1" pid deadline
  pid="$(live_pid "$name")" || { rm -f "$dir/$name.pid"; return 0; }
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name did not stop within ${stop_timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  fi
  rm -f "$dir/$name.pid"
}

stop_all() {
  local name
  for name in "${components[@]}"; do stop_component "$name"; done
}

stop_watchdog() {
  local pid
  pid="$(live_pid watchdog)" || { rm -f "$dir/watchdog.pid"; return 0; }
  # The watchdog itself ends up running `down`; it must not wait for itself.
  [[ "$pid" == "$$" ]] && return 0
  kill -TERM "$pid" 2>/dev/null || true
  rm -f "$dir/watchdog.pid"
}

start_watchdog() {
  local owner="$1"
  [[ "$owner" =~ ^[0-9]+$ ]] || die "PUSHGATE_CLUSTER_OWNER_PID is not a pid: $owner"
  stop_watchdog
  # "$dir/" is passed so that live_pid recognises the watchdog by its command line.
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
    PUSHGATE_CLUSTER_DIR="$2" exec bash "$3" down' \
    pushgate-cluster-watchdog "$owner" "$dir/" "$here/cluster.sh" \
    </dev/null >/dev/null 2>&1 9>&- &
  echo $! >"$dir/watchdog.pid"
  log "will stop by itself when process $owner exits"
}

# Starts a process in its own session, detached from this script's stdio and lock, so it
# outlives `up` and does not hold the caller's pipes open.
spawn() {
  local name="$1"
  shift
  setsid "$@" </dev/null >"$dir/$name.log" 2>&1 9>&- &
  echo $! >"$dir/$name.pid"
}

free_ports() {
  node -e '
    const net = require("node:net");
    const servers = Array.from({ length: Number(process.argv[1]) }, () => net.createServer());
    Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
      console.log(servers.map((s) => s.address().port).join(" "));
      servers.forEach((s) => s.close());
    });
  ' "$1"
}

tail_logs() {
  local name
  for name in etcd kube-apiserver; do
    [[ -f "$dir/$name.log" ]] || continue
    log "last lines of $dir/$name.log:"
    tail -n 25 "$dir/$name.log" >&2
  done
}

admin_curl() {
  curl -sS --max-time 2 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" \
    --key "$dir/pki/admin.key" "$@"
}

is_ready() {
  [[ -f "$dir/server" ]] || return 1
  [[ "$(admin_curl "$(<"$dir/server")/readyz" 2>/dev/null)" == "ok" ]]
}

is_running() {
  live_pid etcd >/dev/null && live_pid kube-apiserver >/dev/null
}

# --- certificates -----------------------------------------------------------------------

generate_pki() {
  local pki="$dir/pki"
  [[ -f "$pki/admin.crt" ]] && return 0
  log "generating certificates in $pki"
  rm -rf "$pki"
  mkdir -p "$pki"
  chmod 0700 "$pki"
  (
    cd "$pki"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 3650 \
      -subj "/CN=pushgate-local-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null

    openssl req "${ec[@]}" -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc" \
      >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null

    openssl req "${ec[@]}" -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=pushgate-admin" 2>/dev/null
    printf '%s\n' \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=clientAuth" \
      >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out admin.crt -days 3650 -extfile admin.ext 2>/dev/null

    openssl ecparam -name prime256v1 -genkey -noout -out sa.key 2>/dev/null
    openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ca.srl
  )
}

write_kubeconfig() {
  local server="$1" b64=(base64 -w0)
  cat >"$dir/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: pushgate-local
    cluster:
      server: $server
      certificate-authority-data: $("${b64[@]}" "$dir/pki/ca.crt")
users:
  - name: pushgate-admin
    user:
      client-certificate-data: $("${b64[@]}" "$dir/pki/admin.crt")
      client-key-data: $("${b64[@]}" "$dir/pki/admin.key")
contexts:
  - name: pushgate-local
    context:
      cluster: pushgate-local
      user: pushgate-admin
current-context: pushgate-local
EOF
  chmod 0600 "$dir/kubeconfig.tmp"
  mv "$dir/kubeconfig.tmp" "$dir/kubeconfig"
}

# --- commands ---------------------------------------------------------------------------

# One attempt at starting both processes. Returns 2 when a port was taken between
# choosing it and binding it, so the caller can try again with fresh ports.
start_once() {
  local bin="$1" etcd_port peer_port api_port server deadline
  read -r etcd_port peer_port api_port < <(free_ports 3)
  server="https://127.0.0.1:$api_port"
  rm -rf "$dir/etcd-data"
  rm -f "$dir/server" "$dir/kubeconfig"

  log "starting etcd on 127.0.0.1:$etcd_port"
  spawn etcd "$bin/etcd" \
    --name=pushgate \
    --data-dir="$dir/etcd-data" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="pushgate=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync \
    --log-level=warn

  log "starting kube-apiserver on $server"
  mkdir -p "$dir/apiserver-certs"
  # --endpoint-reconciler-type=none: the `kubernetes` Service's Endpoints may not hold a
  # loopback address, so reconciling them to 127.0.0.1 only fails, every 10s, in the log.
  spawn kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --cert-dir="$dir/apiserver-certs" \
    --secure-port="$api_port" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --service-cluster-ip-range="$service_cidr" \
    --service-account-issuer="$server" \
    --service-account-key-file="$dir/pki/sa.pub" \
    --service-account-signing-key-file="$dir/pki/sa.key" \
    --authorization-mode=RBAC \
    --disable-admission-plugins=ServiceAccount \
    --client-ca-file="$dir/pki/ca.crt" \
    --tls-cert-file="$dir/pki/apiserver.crt" \
    --tls-private-key-file="$dir/pki/apiserver.key" \
    --allow-privileged=true \
    --profiling=false \
    --endpoint-reconciler-type=none \
    --v=1
  echo "$server" >"$dir/server"

  deadline=$((SECONDS + start_timeout))
  until is_ready; do
    local name
    for name in etcd kube-apiserver; do
      live_pid "$name" >/dev/null && continue
      if grep -q "address already in use" "$dir/$name.log" 2>/dev/null; then
        log "$name lost its port to another process; retrying with new ports"
        stop_all
        return 2
      fi
      log "$name exited during start-up"
      tail_logs
      stop_all
      return 1
    done
    if ((SECONDS >= deadline)); then
      log "kube-apiserver not ready after ${start_timeout}s"
      admin_curl "$server/readyz?verbose" >&2 2>/dev/null || true
      tail_logs
      stop_all
      return 1
    fi
    sleep 0.2
  done

  # /readyz does not cover the system namespaces, which a controller creates just after.
  until [[ "$(admin_curl -o /dev/null -w '%{http_code}' "$server/api/v1/namespaces/default" 2>/dev/null)" == "200" ]]; do
    ((SECONDS < deadline)) || { log "namespace default not created within ${start_timeout}s"; tail_logs; stop_all; return 1; }
    sleep 0.1
  done

  write_kubeconfig "$server"
}

cmd_up() {
  if is_running && is_ready; then
    log "already running at $(<"$dir/server")"
    echo "$dir/kubeconfig"
    return 0
  fi
  # A half-dead cluster (one process gone, or not answering) is replaced whole.
  stop_watchdog
  stop_all

  local bin
  bin="$(bash "$here/control-plane/build.sh" | tail -n 1)"
  [[ -x "$bin/kube-apiserver" && -x "$bin/etcd" ]] || die "build did not produce binaries in $bin"

  generate_pki
  local started=$SECONDS attempt rc
  for attempt in 1 2 3; do
    rc=0
    start_once "$bin" || rc=$?
    ((rc == 2)) && continue
    ((rc == 0)) || die "control plane failed to start (logs in $dir)"
    log "ready in $((SECONDS - started))s at $(<"$dir/server")"
    [[ -n "${PUSHGATE_CLUSTER_OWNER_PID:-}" ]] && start_watchdog "$PUSHGATE_CLUSTER_OWNER_PID"
    echo "$dir/kubeconfig"
    return 0
  done
  die "could not find free ports after $attempt attempts"
}

cmd_down() {
  stop_watchdog
  stop_all
  # The lock file is open on fd 9; removing it is fine, the next caller makes a new one.
  rm -rf "$dir"
  log "stopped; removed $dir"
}

cmd_status() {
  local name pid running=0
  for name in etcd kube-apiserver; do
    if pid="$(live_pid "$name")"; then
      log "$name: running (pid $pid)"
      running=$((running + 1))
    else
      log "$name: not running"
    fi
  done
  if ((running == 2)) && is_ready; then
    log "ready at $(<"$dir/server"); kubeconfig: $dir/kubeconfig"
    echo "running"
    return 0
  fi
  echo "not running"
  return 1
}

case "${1:-}" in
  up) mkdir -p "$dir" ;;
  down | status)
    if [[ ! -d "$dir" ]]; then
      log "no cluster in $dir"
      [[ "$1" == status ]] && { echo "not running"; exit 1; }
      exit 0
    fi
    ;;
esac

# up, down and status on the same directory take turns.
exec 9>"$dir/.lock"
flock 9

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 64
    ;;
esac
