# shellcheck shell=bash
# The real node, real-0: containerd, the kubelet and kube-proxy as plain
# processes next to the kwok nodes, so a pod that asks for it runs real
# containers. Sourced by hack/cluster.sh (it uses its say/start/stop/
# wait_for helpers and $dir, $pids, $logs, $pki, $here).
#
# Two clusters from two clones run side by side, so everything the node
# holds on the machine belongs to one cluster, found by a per-cluster index
# N (0-15) claimed under /run/modeldeploy/real-nodes/N:
#   network namespace modeldeploy-N: the node's own "machine". containerd,
#     the kubelet and kube-proxy run in it, so the pods' bridge (mdbrN), the
#     CNI and kube-proxy iptables chains, and the kubelet's and kube-proxy's
#     ports are the node's alone; a veth pair mdvethN links it to the host
#     (host 10.199.N.1, node 10.199.N.2).
#   pod CIDR 10.200.N.0/24, Service CIDR 10.96.(16N).0/20: the host routes
#     both through the veth, so the tests reach pods and ClusterIPs.
#   cgroup /modeldeploy-N (v1: in every hierarchy): the kubelet's cgroupRoot
#     (pods under /modeldeploy-N/kubepods) and, in /modeldeploy-N/node, the
#     node's own processes, containerd's shims included.
#   a mount namespace, $dir/node/ns/mnt, shared by the node's processes:
#     the kubelet's volumes, containers' root filesystems and the pods'
#     network namespaces are mounted there and never show on the host, and
#     the paths a kubelet or containerd use whatever their config
#     (/var/lib/kubelet, /run/containerd, /var/lib/cni, /var/log/containers)
#     are bound there to directories under $dir/node.
#   containerd's config, socket, root, state and runc root, the kubelet's
#     root dir and pod logs, the CNI config and IPAM state: under $dir/node.
# `down` kills every process in that cgroup, unmounts the mount namespace
# (every mount in it goes with it), deletes the network namespace (its
# bridge, veths and iptables rules go with it) and the cgroup, and releases
# the index. Nothing in the host's own
# iptables tables is touched.
#
# Settings this machine needs: the kubelet's failCgroupV1: false (cgroup v1),
# cgroupDriver: cgroupfs and failSwapOn: false; containerd's CRI
# restrict_oom_score_adj = true (runc may not lower oom_score_adj here, so a
# sandbox would not start).

REAL_NODE_NAME=real-0
REAL_NODE_TAINT=modeldeploy.io/real-node
CLAIMS=/run/modeldeploy/real-nodes

# real_node_index: the index this cluster holds (claiming the lowest free one
# the first time). A claim is a symlink to the cluster's directory; one whose
# directory is gone or holds another index is stale and taken over.
real_node_index() {
  local i link owner
  mkdir -p "$CLAIMS" "$dir/node"
  for link in "$CLAIMS"/*; do
    [[ -L $link && $(readlink "$link") == "$dir" ]] && { basename "$link"; return 0; }
  done
  for ((i = 0; i < 16; i++)); do
    link=$CLAIMS/$i
    if [[ -L $link ]]; then
      owner=$(readlink "$link")
      [[ $(cat "$owner/node/index" 2>/dev/null) == "$i" ]] && continue
      # Stale: its cluster's directory is gone (removed without `down`). Clear what it left.
      node_teardown "$i"
      rm -f "$link"
    fi
    # The index file first: a claim is live from the moment its link exists.
    echo "$i" >"$dir/node/index"
    ln -s "$dir" "$link" 2>/dev/null && { echo "$i"; return 0; }
  done
  rm -f "$dir/node/index"
  return 1
}

# real_node_vars N: the names and addresses of index N (into the ports file).
real_node_vars() {
  local n=$1
  echo "REAL_NODE_INDEX=$n"
  echo "NODE_NETNS=modeldeploy-$n"
  echo "NODE_HOST_IP=10.199.$n.1"
  echo "NODE_IP=10.199.$n.2"
  echo "POD_CIDR=10.200.$n.0/24"
  echo "SERVICE_CIDR=10.96.$((16 * n)).0/20"
  echo "KUBERNETES_SERVICE_IP=10.96.$((16 * n)).1"
  echo "NODE_CGROUP=modeldeploy-$n"
}

cgroup_hierarchies() { # the v1 hierarchies (or the v2 root) to create the node's cgroup in
  if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then echo /sys/fs/cgroup; return; fi
  local h
  for h in /sys/fs/cgroup/*; do [[ -d $h && ! -L $h && -e $h/cgroup.procs ]] && echo "$h"; done
}

make_node_cgroup() {
  local h sub
  for h in $(cgroup_hierarchies); do
    for sub in "$NODE_CGROUP" "$NODE_CGROUP/node"; do
      mkdir -p "$h/$sub"
      # cpuset (v1): a new cgroup starts with no CPUs and no memory nodes.
      if [[ -e $h/$sub/cpuset.cpus && -z $(cat "$h/$sub/cpuset.cpus") ]]; then
        cat "$h/cpuset.cpus" >"$h/$sub/cpuset.cpus"; cat "$h/cpuset.mems" >"$h/$sub/cpuset.mems"
      fi
    done
  done
}

# Paths the kubelet and containerd use whatever their config, and where they
# point inside the node's mount namespace.
NODE_BINDS=(/var/lib/kubelet:kubelet /run/containerd:run-containerd /var/lib/cni:cni-cache /var/log/containers:container-logs)

make_node_mounts() {
  local d=$dir/node b
  mkdir -p "$d/ns"
  # The namespace's handle is a bind mount, kept off any shared mount.
  mount --bind "$d/ns" "$d/ns"
  mount --make-private "$d/ns"
  touch "$d/ns/mnt"
  unshare --mount="$d/ns/mnt" --propagation private true
  for b in "${NODE_BINDS[@]}"; do
    mkdir -p "${b%%:*}" "$d/${b#*:}"
    nsenter --mount="$d/ns/mnt" mount --bind "$d/${b#*:}" "${b%%:*}"
  done
}

# start_in_node NAME BINARY ARGS...: like start, but inside the node's
# cgroup, network namespace and mount namespace.
start_in_node() {
  local name=$1; shift
  # shellcheck disable=SC2016
  start "$name" bash -c 'for h in $1; do echo $$ >"$h/cgroup.procs"; done; shift; exec nsenter "$@"' \
    enter "$(cgroup_hierarchies | sed "s|\$|/$NODE_CGROUP/node|" | tr '\n' ' ')" \
    --net="/run/netns/$NODE_NETNS" --mount="$dir/node/ns/mnt" -- "$@"
}

make_node_network() {
  local ns=$NODE_NETNS veth=mdveth$REAL_NODE_INDEX
  ip netns add "$ns"
  ip link add "$veth" type veth peer name eth0 netns "$ns"
  ip addr add "$NODE_HOST_IP/24" dev "$veth"
  ip link set "$veth" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$NODE_IP/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add default via "$NODE_HOST_IP"
  # The host reaches pods and ClusterIPs through the node, as a router would.
  ip route add "$POD_CIDR" via "$NODE_IP" dev "$veth"
  ip route add "$SERVICE_CIDR" via "$NODE_IP" dev "$veth"
  # Inside the node (these sysctls are per namespace): forward between the
  # veth and the pods' bridge, and let bridged traffic through iptables so a
  # pod can reach a Service that lands on itself.
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

write_node_pki() {
  (
    cd "$pki"
    # The kubelet (Node authorizer: system:node:<name> in system:nodes) and
    # kube-proxy (bound to system:node-proxier); EC keys, which take no time to make.
    local who
    for who in "kubelet:/O=system:nodes/CN=system:node:$REAL_NODE_NAME" "kube-proxy:/CN=system:kube-proxy"; do
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "${who#*:}" -keyout "${who%%:*}.key" -out "${who%%:*}.csr" 2>/dev/null
      printf 'extendedKeyUsage=clientAuth\n' >client.ext
      openssl x509 -req -in "${who%%:*}.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out "${who%%:*}.crt" 2>/dev/null
    done
    rm -f ./*.csr ./*.ext ./*.srl
  )
  local who b64='base64 -w0'
  for who in kubelet kube-proxy; do
    cat >"$dir/node/$who.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: modeldeploy-local
  cluster:
    server: https://$NODE_HOST_IP:$APISERVER_PORT
    certificate-authority-data: $($b64 "$pki/ca.crt")
users:
- name: $who
  user:
    client-certificate-data: $($b64 "$pki/$who.crt")
    client-key-data: $($b64 "$pki/$who.key")
contexts:
- name: default
  context: {cluster: modeldeploy-local, user: $who}
current-context: default
KC
  done
}

write_node_configs() {
  local d=$dir/node
  mkdir -p "$d/containerd" "$d/cni/net.d" "$d/kubelet" "$d/pod-logs"
  cat >"$d/containerd/config.toml" <<TOML
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$d/containerd/containerd.sock"
[debug]
  level = "warn"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "$NODE_IP"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$d/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
TOML
  cat >"$d/cni/net.d/10-modeldeploy.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "modeldeploy-$REAL_NODE_INDEX",
  "plugins": [
    {"type": "bridge", "bridge": "mdbr$REAL_NODE_INDEX", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$d/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  cat >"$d/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP
failSwapOn: false
containerRuntimeEndpoint: unix://$d/containerd/containerd.sock
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
podLogsDir: $d/pod-logs
volumePluginDir: $d/kubelet/volume-plugins
registerWithTaints:
- {key: $REAL_NODE_TAINT, value: "true", effect: NoSchedule}
maxPods: 30
serializeImagePulls: false
# A throwaway node on a shared disk: evict only when really short.
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
YAML
  cat >"$d/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $d/kube-proxy.kubeconfig}
hostnameOverride: $REAL_NODE_NAME
clusterCIDR: $POD_CIDR
# nf_conntrack_max is the host's (read-only inside a network namespace).
"conntrack": {maxPerCore: 0}
YAML
}

start_containerd() { start_in_node containerd containerd --config="$dir/node/containerd/config.toml"; }
start_kubelet() {
  start_in_node kubelet "$bin/kubelet" --config="$dir/node/kubelet/config.yaml" \
    --kubeconfig="$dir/node/kubelet.kubeconfig" --root-dir="$dir/node/kubelet" --cert-dir="$dir/node/kubelet/pki" \
    --hostname-override="$REAL_NODE_NAME" --node-ip="$NODE_IP" \
    --node-labels="modeldeploy.io/node-kind=real,kubernetes.io/hostname=$REAL_NODE_NAME" --v=1
}
start_kube_proxy() { start_in_node kube-proxy "$bin/kube-proxy" --config="$dir/node/kube-proxy.yaml" --v=1; }

why() { say "real node: $*"; mkdir -p "$dir/node"; echo "$*" >>"$dir/node/why"; }
node_ctr() { nsenter --mount="$dir/node/ns/mnt" ctr --address "$dir/node/containerd/containerd.sock" -n k8s.io "$@"; }

# real_node_up: start real-0 (expects the ports file sourced and the API
# server up). Fails with the reason; the caller keeps the kwok cluster.
real_node_up() {
  local missing=() c images
  for c in containerd runc ctr ip nsenter iptables; do command -v $c >/dev/null || missing+=("$c"); done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || missing+=("the CNI plugins (/usr/lib/cni)")
  ((${#missing[@]} == 0)) || { why "missing ${missing[*]} (hack/ensure-deps.sh installs them)"; return 1; }
  ((EUID == 0)) || { why "it needs root (network namespaces, cgroups, mounts)"; return 1; }
  [[ -n ${REAL_NODE_INDEX:-} ]] || { why "no free index (16 real nodes already claimed under $CLAIMS)"; return 1; }
  images=$("$here/node/build-images.sh") || { why "building its images failed"; return 1; }
  source "$images/images.env"
  make_node_cgroup
  make_node_network || { why "could not set up its network namespace $NODE_NETNS"; return 1; }
  make_node_mounts || { why "could not set up its mount namespace"; return 1; }
  write_node_pki
  write_node_configs
  start_containerd
  wait_for 30 "containerd" node_ctr version || return 1
  node_ctr images import "$images/pause.tar" >/dev/null
  node_ctr images import "$images/hello.tar" >/dev/null
  start_kubelet
  start_kube_proxy
}

# real_node_publish_apiserver: the `kubernetes` Service's endpoints, at the
# host's end of the node's link. With the real node the API server listens on
# every address and its certificate names that address and the Service IP,
# but --endpoint-reconciler-type=none leaves the Service without endpoints:
# written here, pods on real-0 (the operator's own, installed from
# manifests/) reach the API with the in-cluster configuration, as anywhere.
real_node_publish_apiserver() {
  "$kubectl" apply -f - >/dev/null <<EOF
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes-real-node
  namespace: default
  labels:
    kubernetes.io/service-name: kubernetes
    endpointslice.kubernetes.io/managed-by: hack.modeldeploy.io
addressType: IPv4
ports: [{name: https, port: $APISERVER_PORT, protocol: TCP}]
endpoints: [{addresses: ["$NODE_HOST_IP"], conditions: {ready: true}}]
EOF
}

real_node_ready() {
  [[ $("$kubectl" get node "$REAL_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# real_node_ready_at: when real-0 turned Ready (seconds since the epoch).
real_node_ready_at() {
  date -d "$("$kubectl" get node "$REAL_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].lastTransitionTime}')" +%s
}

# real_node_wait SECONDS: until real-0 is Ready; fails early when one of its processes exited.
real_node_wait() {
  local deadline=$((SECONDS + $1)) c
  until real_node_ready; do
    for c in containerd kubelet kube-proxy; do alive $c || { say "real node: $c exited"; return 1; }; done
    ((SECONDS < deadline)) || return 1
    sleep 0.3
  done
}

# real_node_failed WHY: say so with the node's logs, record it for the tests
# (which fail with it), and clear what was started; the kwok cluster stays.
real_node_failed() {
  local c msg
  msg="the real node $REAL_NODE_NAME is not available: $1"
  [[ -f $dir/node/why ]] && msg+=": $(cat "$dir/node/why")"
  for c in containerd kubelet kube-proxy; do
    [[ -s $logs/$c.log ]] && msg+=$'\n'"--- tail $logs/$c.log"$'\n'"$(tail -n 8 "$logs/$c.log")"
  done
  say "$msg"
  say "the kwok nodes work; tests on $REAL_NODE_NAME will fail with this message ($dir/real-node.error)"
  printf '%s\n' "$msg" >"$dir/real-node.error"
  real_node_down
}

# node_teardown N: what index N holds on the machine, whoever started it:
# every process in its cgroup tree (containerd, its shims, the containers,
# the kubelet, kube-proxy), its network namespace (which takes the veth, the
# bridge, the pods' veths and every iptables chain in it along) and its cgroup.
node_teardown() {
  local n=$1 h pid left hs
  hs=$(cgroup_hierarchies)
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    left=0
    for h in $hs; do
      [[ -d $h/modeldeploy-$n ]] || continue
      for pid in $(find "$h/modeldeploy-$n" -name cgroup.procs -exec cat {} + 2>/dev/null); do
        kill -KILL "$pid" 2>/dev/null && left=1
      done
    done
    ((left)) || break
    sleep 0.2
  done
  ip netns del "modeldeploy-$n" 2>/dev/null || true
  ip link del "mdveth$n" 2>/dev/null || true
  for h in $hs; do
    [[ -d $h/modeldeploy-$n ]] && find "$h/modeldeploy-$n" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# real_node_down: everything real_node_up made, whatever state it reached.
real_node_down() {
  local link n="" f
  for link in "$CLAIMS"/*; do
    [[ -L $link && $(readlink "$link") == "$dir" ]] && n=$(basename "$link")
  done
  [[ -n $n ]] || return 0
  # No graceful stop: the node's state is thrown away with it, so SIGKILL for all (node_teardown).
  # Mounts under the cluster's directory: the mount namespace's handle (the
  # kubelet's and containerd's mounts are in that namespace and go with it).
  # The processes go first so nothing holds them.
  local mounts
  mounts=$(awk -v d="$dir/" '{ p = $5; gsub(/\\040/, " ", p); if (index(p, d) == 1) print p }' /proc/self/mountinfo | sort -r)
  node_teardown "$n"
  while read -r f; do
    [[ -n $f ]] && { umount "$f" 2>/dev/null || umount -l "$f" 2>/dev/null || true; }
  done <<<"$mounts"
  rm -f "$CLAIMS/$n"
}
