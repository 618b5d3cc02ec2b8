#!/usr/bin/env bash
# The local control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (the simulated kubelet) as plain processes, built
# from their Go modules by hack/build-binaries.sh, plus one real node,
# real-0: containerd, a kubelet and kube-proxy running real containers
# (hack/real-node.sh; REAL_NODE=0 at `up` leaves it out). If the real node
# cannot start, `up` says why, records it in $CLUSTER_DIR/real-node.error
# and keeps the kwok cluster.
#
#   hack/cluster.sh up      build what is missing, start, wait until usable
#   hack/cluster.sh down    stop every process this started (by pid), remove state
#   hack/cluster.sh status  exit 0 when the cluster answers
#   hack/cluster.sh restart [etcd kube-apiserver ...]
#                           stop and start those processes (default: all) with
#                           the same arguments; wait until healthy again
#
# State lives in $CLUSTER_DIR (default .cluster/ in the repository):
# kubeconfig, pki/, pids/, logs/, etcd/, node/ (the real node's).
#
# etcd runs with --unsafe-no-fsync: this is a throwaway cluster for tests and
# the demo, where durability across a power loss is worth nothing and every
# write waiting for the disk is time lost. ETCD_FSYNC=1 at `up` keeps fsync
# (make bench does, so its figures hold for a real etcd); the choice is
# recorded in the ports file and kept across `restart`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/versions.sh"
dir=${CLUSTER_DIR:-$root/.cluster}
nodes=${KWOK_NODES:-6}
say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }

pids=$dir/pids logs=$dir/logs pki=$dir/pki
# shellcheck source=real-node.sh
source "$here/real-node.sh"

alive() { [[ -f $pids/$1.pid ]] && kill -0 "$(cat "$pids/$1.pid")" 2>/dev/null; }

healthy() {
  [[ -f $dir/kubeconfig && -f $dir/ports ]] || return 1
  source "$dir/ports"
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do alive $c || return 1; done
  curl -sf --max-time 3 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for SECONDS WHAT CMD...: polls CMD until it succeeds, or fails with the
# tail of the relevant log so the reason is on screen.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "timed out after ${secs}s waiting for $what"
      for f in "$logs"/*.log; do [[ -f $f ]] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }; done
      exit 1
    fi
    sleep 0.3
  done
}

start() { # start NAME BINARY ARGS...: detached, own session, pid recorded
  local name=$1 bin=$2; shift 2
  if [[ -n ${append_logs:-} ]]; then  # a restart keeps what the process logged before
    setsid "$bin" "$@" >>"$logs/$name.log" 2>&1 < /dev/null &
  else
    setsid "$bin" "$@" >"$logs/$name.log" 2>&1 < /dev/null &
  fi
  echo $! >"$pids/$name.pid"
}

stop() { # stop NAME: SIGTERM the recorded pid, SIGKILL after 5 s
  local f=$pids/$1.pid pid
  [[ -f $f ]] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
}

make_pki() {
  [[ -f $pki/admin.crt ]] && return 0
  mkdir -p "$pki"; local o="-loglevel error"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=modeldeploy-local-ca" -keyout ca.key -out ca.crt 2>/dev/null
    # API server serving certificate: loopback plus the in-cluster names.
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
    # (and the host's end of the real node's link, which its kubelet and pods use).
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:%s%s\nextendedKeyUsage=serverAuth\n' \
      "$KUBERNETES_SERVICE_IP" "${NODE_HOST_IP:+,IP:$NODE_HOST_IP}" > apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # Admin client certificate: group system:masters.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=modeldeploy-admin" -keyout admin.key -out admin.csr 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out admin.crt 2>/dev/null
    # Service-account token signing key pair.
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
  )
}

write_kubeconfig() {
  local b64='base64 -w0'
  cat >"$dir/kubeconfig.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: modeldeploy-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $($b64 "$pki/admin.crt")
    client-key-data: $($b64 "$pki/admin.key")
contexts:
- name: modeldeploy-local
  context: {cluster: modeldeploy-local, user: admin}
current-context: modeldeploy-local
KC
  mv "$dir/kubeconfig.tmp" "$dir/kubeconfig"
}

apply_nodes() {
  local i manifest=""
  for ((i = 0; i < nodes; i++)); do
    manifest+="apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  capacity: {cpu: \"64\", memory: 512Gi, pods: \"1000\", nvidia.com/gpu: \"8\"}
  allocatable: {cpu: \"64\", memory: 512Gi, pods: \"1000\", nvidia.com/gpu: \"8\"}
---
"
  done
  # A scarce pool for the capacity tests (tests/integration/test_capacity.py):
  # two nodes with 4 GPUs each and little else, tainted so that only pods
  # that ask for the pool land there. The real scheduler honours their
  # allocatable, so a pod that does not fit stays Pending (Unschedulable).
  for ((i = 0; i < 2; i++)); do
    manifest+="apiVersion: v1
kind: Node
metadata:
  name: kwok-gpu-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}
  labels: {kubernetes.io/hostname: kwok-gpu-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok, modeldeploy.io/pool: scarce-gpu}
spec:
  taints: [{key: modeldeploy.io/pool, value: scarce-gpu, effect: NoSchedule}]
status:
  capacity: {cpu: \"16\", memory: 64Gi, pods: \"110\", nvidia.com/gpu: \"4\"}
  allocatable: {cpu: \"16\", memory: 64Gi, pods: \"110\", nvidia.com/gpu: \"4\"}
---
"
  done
  "$kubectl" apply --server-side -f - <<<"$manifest" >/dev/null
}

install_crds() {
  # Gateway API (standard channel), Istio networking and KEDA CRDs, taken from the
  # pinned Go modules' own YAML so no download other than the module proxy.
  local gw istio
  gw=$(cd "$here/k8s" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  istio=$(cd "$here/k8s" && go mod download -json "istio.io/api@$ISTIO_API_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  "$kubectl" apply --server-side -f "$gw/config/crd/standard/" >/dev/null
  "${PYTHON:-python3}" "$here/select-istio-crds.py" "$istio/kubernetes/customresourcedefinitions.gen.yaml" \
    | "$kubectl" apply --server-side -f - 2>&1 >/dev/null | { grep -v 'unrecognized format "binary"' >&2 || true; }
  # KEDA's CRDs (ScaledObject for spec.autoscaling.engine KEDA, and the rest
  # KEDA's operator watches when a test runs it), from its module too.
  local keda
  keda=$(cd "$here/keda" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  "$kubectl" apply --server-side -f "$keda/config/crd/bases/" >/dev/null
  # kubectl wait fails at once (not waits) while a new CRD has no status
  # yet ("accessor error: <nil>"), so it is polled.
  wait_for 60 "the route CRDs Established" "$kubectl" wait --for=condition=Established --timeout=5s \
    crd/httproutes.gateway.networking.k8s.io crd/virtualservices.networking.istio.io \
    crd/destinationrules.networking.istio.io crd/scaledobjects.keda.sh
}

# One function per process, shared by `up` and `restart` so a restarted
# process gets exactly the arguments it was first started with. Each
# expects $bin and the ports file sourced.
start_etcd() {
  start etcd "$bin/etcd" --name=local --data-dir="$dir/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes=4294967296 --auto-compaction-retention=1 --log-level=warn \
    $([[ ${ETCD_FSYNC:-0} == 1 ]] || echo --unsafe-no-fsync)
}

start_kube_apiserver() {
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="${APISERVER_BIND:-127.0.0.1}" --secure-port="$APISERVER_PORT" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy \
    --service-cluster-ip-range="${SERVICE_CIDR:-10.96.0.0/16}" \
    --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --endpoint-reconciler-type=none \
    --allow-privileged=false \
    --audit-policy-file="$here/audit-policy.yaml" --audit-log-path="$logs/audit.log" \
    --audit-log-maxsize=4000 --audit-log-maxbackup=1 --audit-log-mode=blocking \
    --profiling=false --v=1
}

start_kube_controller_manager() {
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/kubeconfig" --authentication-kubeconfig="$dir/kubeconfig" --authorization-kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --controllers='*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle,-attachdetach,-ttl-after-finished' \
    --kube-api-qps=500 --kube-api-burst=1000 --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10 \
    --concurrent-gc-syncs=40 --v=1
}

start_kube_scheduler() {
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$dir/kubeconfig" --authentication-kubeconfig="$dir/kubeconfig" --authorization-kubeconfig="$dir/kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false \
    --kube-api-qps=500 --kube-api-burst=1000 --v=1
}

start_kwok() {
  start kwok "$bin/kwok" --kubeconfig="$dir/kubeconfig" --config="$here/kwok/stages.yaml" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=40 --cidr=10.244.0.1/16 --node-ip=10.240.0.1 \
    --server-address="127.0.0.1:$KWOK_PORT"
}

wait_etcd() { wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"; }
wait_apiserver() {
  wait_for 90 kube-apiserver curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "https://127.0.0.1:$APISERVER_PORT/readyz"
}

up() {
  if healthy; then
    say "already up"; echo "export KUBECONFIG=$dir/kubeconfig"; return 0
  fi
  # Anything half-started from an earlier attempt goes first.
  [[ -d $pids ]] && down quiet
  local t0=$SECONDS bin
  bin=$("$here/build-binaries.sh")
  kubectl=$bin/kubectl
  mkdir -p "$pids" "$logs" "$dir/etcd"
  local index=""
  [[ ${REAL_NODE:-1} == 0 ]] || index=$(real_node_index) || true
  {
    echo "ETCD_PORT=$(free_port)"; echo "ETCD_PEER_PORT=$(free_port)"; echo "APISERVER_PORT=$(free_port)"
    echo "KCM_PORT=$(free_port)"; echo "SCHEDULER_PORT=$(free_port)"; echo "KWOK_PORT=$(free_port)"
    echo "BIN_DIR=$bin"
    echo "ETCD_FSYNC=${ETCD_FSYNC:-0}"
    if [[ -n $index ]]; then
      real_node_vars "$index"
      # The real node's kubelet and kube-proxy reach the API server from their own network namespace.
      echo "APISERVER_BIND=0.0.0.0"
    else
      echo "SERVICE_CIDR=10.96.0.0/16"; echo "KUBERNETES_SERVICE_IP=10.96.0.1"; echo "APISERVER_BIND=127.0.0.1"
    fi
  } >"$dir/ports"
  source "$dir/ports"
  make_pki
  local t_start=$SECONDS

  start_etcd
  wait_etcd

  start_kube_apiserver
  wait_apiserver
  write_kubeconfig
  export KUBECONFIG=$dir/kubeconfig

  start_kube_controller_manager
  start_kube_scheduler
  start_kwok

  apply_nodes
  # The real node's processes start before the CRDs install; its Ready is waited for last.
  local real=0 t_real
  t_real=$(date +%s)
  if [[ ${REAL_NODE:-1} != 0 ]]; then
    # In the background so that set -e holds inside it; a failure is reported, not fatal.
    (real_node_up) & wait $! && real=1 || real_node_failed "it did not start"
  fi
  install_crds
  wait_for 60 "a Ready node" bash -c "'$kubectl' get nodes -o jsonpath='{.items[*].status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
  wait_for 60 "the default ServiceAccount" "$kubectl" -n default get serviceaccount default
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do alive $c || die "$c exited; see $logs/$c.log"; done
  if ((real)); then
    if real_node_wait 90; then
      local ready=$(($(real_node_ready_at) - t_real))
      echo "REAL_NODE_READY_SECONDS=$ready" >>"$dir/ports"
      say "real node $REAL_NODE_NAME Ready ${ready}s after it started"
      real_node_publish_apiserver || say "real node: could not publish the API server as the kubernetes Service's endpoints"
    else
      real_node_failed "it did not become Ready within 90s"
    fi
  fi
  echo "BUILD_SECONDS=$((t_start - t0))" >>"$dir/ports"
  echo "START_SECONDS=$((SECONDS - t_start))" >>"$dir/ports"
  say "up in $((SECONDS - t0))s (start $((SECONDS - t_start))s); logs in $logs"
  echo "export KUBECONFIG=$dir/kubeconfig"
}

down() {
  local quiet=${1:-}
  if [[ -d $pids ]]; then
    local c
    # Reverse start order: the real node and the simulated kubelet, then the controllers, the API server, etcd last.
    real_node_down
    for c in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do stop $c; done
  else
    real_node_down
  fi
  rm -rf "$dir"
  [[ -n $quiet ]] || say "down"
}

# restart [COMPONENT...]: stop the named processes (default: all five), start
# them again with the same arguments, ports and state, and wait until the
# whole cluster is healthy. Chaos tests use it to pull the API server and etcd
# out from under a running operator.
restart() {
  local order=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok) c i picked=()
  (($#)) || set -- "${order[@]}"
  for c in "$@"; do
    [[ " ${order[*]} " == *" $c "* ]] || die "restart: unknown component $c (one of: ${order[*]})"
  done
  [[ -f $dir/ports ]] || die "restart: no cluster in $dir (run: $0 up)"
  source "$dir/ports"
  local bin=$BIN_DIR t0=$SECONDS
  for c in "${order[@]}"; do [[ " $* " == *" $c "* ]] && picked+=("$c"); done
  for ((i = ${#picked[@]} - 1; i >= 0; i--)); do stop "${picked[i]}"; done
  append_logs=1
  for c in "${picked[@]}"; do
    "start_${c//-/_}"
    case $c in etcd) wait_etcd ;; kube-apiserver) wait_apiserver ;; esac
  done
  wait_for 90 "the cluster to be healthy" healthy
  say "restarted ${picked[*]} in $((SECONDS - t0))s"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) healthy && echo "export KUBECONFIG=$dir/kubeconfig" ;;
  restart) shift; restart "$@" ;;
  *) echo "usage: $0 up|down|status|restart [component...]" >&2; exit 2 ;;
esac
