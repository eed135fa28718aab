#!/usr/bin/env bash
# Starts a one-node Kubernetes 1.20 cluster on this machine, all state under $RN_DIR:
#   dockerd (own socket, data and exec roots; runc through build.sh's wrapper), a registry
#   on 127.0.0.1:5000 (Debian's docker-registry), etcd, kube-apiserver, kube-controller-manager,
#   kube-scheduler, kubelet (dockershim) and kube-proxy (iptables).
# Waits until the node is Ready and the default ServiceAccount exists, then writes $RN_DIR/env
# (KUBECONFIG, DOCKER_HOST, PATH with kubectl 1.20). Every process's PID is in $RN_DIR/pids/.
# Already up and healthy: says so and exits 0. Half up (a crash, a reboot): cleans up first.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
rn_require_root

R=$RN_DIR; P=$R/pki; L=$R/logs; pids=$R/pids
procs=(dockerd registry etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# The apiserver reaches the kubelet by the node's name, which must be this machine's loopback.
node=$(hostname)
t0=$(date +%s); step() { rn_log "+$(( $(date +%s) - t0 ))s $*"; }
kubectl() { "$NODE_BIN/kubectl" --kubeconfig "$P/admin.kubeconfig" "$@"; }
docker() { "$RN_DOCKER" -H "unix://$R/docker.sock" "$@"; }

alive() { local f=$pids/$1; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
healthy() {
  local p; for p in "${procs[@]}"; do alive "$p" || return 1; done
  kubectl get --raw /readyz >/dev/null 2>&1 && kubectl wait --for=condition=Ready "node/$node" --timeout=2s >/dev/null 2>&1
}
# wait_for WHAT SECONDS COMMAND...: polls COMMAND; on timeout names the log to read.
wait_for() {
  local what=$1 secs=$2 log=$3; shift 3; local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt $end ] || { tail -20 "$log" >&2; rn_die "$what not ready within ${secs}s (log: $log)"; }
    sleep 0.5
  done
}
# start NAME LOG COMMAND...: runs COMMAND in the background, its PID in $pids/NAME.
start() { local name=$1 log=$2; shift 2; nohup "$@" >"$log" 2>&1 & echo $! > "$pids/$name"; }

if [ -d "$pids" ] && [ -n "$(ls -A "$pids" 2>/dev/null)" ]; then
  if healthy; then rn_log "already up: node $node Ready (source $R/env)"; exit 0; fi
  rn_log "a half-started node is left from an earlier run: stopping it first"
  "$here/down.sh"
fi

for b in "$CP_BIN"/{etcd,kube-apiserver,kube-controller-manager,kube-scheduler} "$NODE_BIN"/{kubelet,kube-proxy,kubectl,pause,runc-wrap}; do
  [ -x "$b" ] || rn_die "missing $b (make control-plane, then tests/real-node/build.sh)"
done
for b in /usr/sbin/dockerd /usr/sbin/runc /usr/bin/docker-registry /usr/bin/socat /usr/sbin/conntrack /usr/bin/openssl; do
  [ -x "$b" ] || rn_die "missing $b (tests/real-node/build.sh installs it)"
done
getent hosts "$node" | grep -q '^127\.' || rn_die "this machine's name '$node' must resolve to 127.0.0.1 (/etc/hosts): the apiserver reaches the kubelet by it"
ip link show docker0 >/dev/null 2>&1 && rn_die "docker0 exists: another Docker engine runs here (one engine per machine owns 172.17.0.1)"
for port in $RN_API_PORT $RN_ETCD_CLIENT_PORT $RN_ETCD_PEER_PORT 5000 10250 10248 10249 10256; do
  ss -Hltn "sport = :$port" | grep -q . && rn_die "port $port is taken (another real node, or something else)"
done
mkdir -p "$R" "$P" "$L" "$pids"
# What down.sh puts back: IP forwarding and the FORWARD policy (dockerd sets DROP).
sysctl -n net.ipv4.ip_forward > "$R/ip-forward"
iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" {print $3}' > "$R/forward-policy"

# --- dockerd: its own roots and socket; cgroupfs (no systemd here); runc via the wrapper ---
start dockerd "$L/dockerd.log" /usr/sbin/dockerd -H "unix://$R/docker.sock" --data-root "$R/docker-data" \
  --exec-root "$R/docker-exec" --pidfile "$R/dockerd.pidfile" --exec-opt native.cgroupdriver=cgroupfs \
  --storage-driver overlay2 --bip "$RN_BRIDGE_IP/16" --insecure-registry "$RN_REGISTRY" \
  --add-runtime "kuberunc=$NODE_BIN/runc-wrap" --default-runtime kuberunc
wait_for dockerd 60 "$L/dockerd.log" docker info
step "dockerd up"
# kubelet 1.20's default sandbox image, made from build.sh's static pause: nothing is pulled.
docker image inspect k8s.gcr.io/pause:3.2 >/dev/null 2>&1 \
  || tar -C "$NODE_BIN" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' - k8s.gcr.io/pause:3.2 >/dev/null

# --- registry on loopback ---
mkdir -p "$R/registry-data"
printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}, delete: {enabled: true}}\nhttp: {addr: "%s"}\n' \
  "$R/registry-data" "$RN_REGISTRY" > "$R/registry.yml"
start registry "$L/registry.log" /usr/bin/docker-registry serve "$R/registry.yml"

# --- PKI: a CA, the apiserver's serving cert, its client cert for the kubelet, SA keys, random tokens ---
if [ ! -f "$P/admin.kubeconfig" ]; then
  (
    cd "$P"; umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=pilotlight-real-node-ca 2>/dev/null
    printf 'subjectAltName=DNS:localhost,DNS:%s,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:%s,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n' \
      "$node" "$RN_BRIDGE_IP" > apiserver.ext
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 30 -extfile apiserver.ext 2>/dev/null
    echo 'extendedKeyUsage=clientAuth' > client.ext
    openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr \
      -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out kubelet-client.crt -days 30 -extfile client.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    admin=$(openssl rand -hex 16); kubelet=$(openssl rand -hex 16); proxy=$(openssl rand -hex 16)
    {
      echo "$admin,admin,admin,system:masters"
      echo "$kubelet,system:node:$node,node-$node,system:nodes"
      echo "$proxy,system:kube-proxy,kube-proxy"
    } > tokens.csv
    for who in admin:$admin kubelet:$kubelet kube-proxy:$proxy; do
      printf 'apiVersion: v1\nkind: Config\nclusters: [{name: real-node, cluster: {server: "https://127.0.0.1:%s", certificate-authority: %s/ca.crt}}]\nusers: [{name: %s, user: {token: %s}}]\ncontexts: [{name: real-node, context: {cluster: real-node, user: %s}}]\ncurrent-context: real-node\n' \
        "$RN_API_PORT" "$P" "${who%%:*}" "${who#*:}" "${who%%:*}" > "${who%%:*}.kubeconfig"
    done
  )
fi

# --- control plane ---
start etcd "$L/etcd.log" "$CP_BIN/etcd" --data-dir "$R/etcd" --listen-client-urls "http://127.0.0.1:$RN_ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$RN_ETCD_CLIENT_PORT" --listen-peer-urls "http://127.0.0.1:$RN_ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$RN_ETCD_PEER_PORT" --initial-cluster "default=http://127.0.0.1:$RN_ETCD_PEER_PORT"
# Every interface: pods reach the API at the bridge address (the `kubernetes` Service's
# endpoint, which may not be a loopback address).
start kube-apiserver "$L/kube-apiserver.log" "$CP_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$RN_ETCD_CLIENT_PORT" \
  --bind-address=0.0.0.0 --advertise-address="$RN_BRIDGE_IP" --secure-port="$RN_API_PORT" \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" --client-ca-file="$P/ca.crt" \
  --token-auth-file="$P/tokens.csv" --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --kubelet-client-certificate="$P/kubelet-client.crt" --kubelet-client-key="$P/kubelet-client.key" \
  --kubelet-preferred-address-types=Hostname --service-account-key-file="$P/sa.pub" \
  --service-account-signing-key-file="$P/sa.key" --service-account-issuer=https://kubernetes.default.svc \
  --service-cluster-ip-range="$RN_SERVICE_CIDR"
wait_for kube-apiserver 90 "$L/kube-apiserver.log" kubectl get --raw /readyz
step "apiserver ready"
kubectl get clusterrolebinding pilotlight-real-node-proxier >/dev/null 2>&1 \
  || kubectl create clusterrolebinding pilotlight-real-node-proxier --clusterrole=system:node-proxier --user=system:kube-proxy >/dev/null
start kube-controller-manager "$L/kube-controller-manager.log" "$CP_BIN/kube-controller-manager" \
  --kubeconfig="$P/admin.kubeconfig" --leader-elect=false --port=0 --secure-port=0 \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" --use-service-account-credentials=true
start kube-scheduler "$L/kube-scheduler.log" "$CP_BIN/kube-scheduler" --kubeconfig="$P/admin.kubeconfig" \
  --leader-elect=false --port=0 --secure-port=0

# --- kubelet (dockershim) ---
mkdir -p "$R/kubelet" "$R/dockershim" "$R/kubelet-plugins"
# No cluster DNS: pods resolve against their own loopback, so no lookup leaves the machine.
echo 'nameserver 127.0.0.1' > "$R/pod-resolv.conf"
# Image GC off (locally built images must stay); eviction thresholds low (a test machine's disk).
start kubelet "$L/kubelet.log" "$NODE_BIN/kubelet" --kubeconfig="$P/kubelet.kubeconfig" --hostname-override="$node" \
  --node-ip="$RN_BRIDGE_IP" --container-runtime=docker --docker-endpoint="unix://$R/docker.sock" \
  --pod-infra-container-image=k8s.gcr.io/pause:3.2 --root-dir="$R/kubelet" --cert-dir="$R/kubelet/pki" \
  --experimental-dockershim-root-directory="$R/dockershim" --volume-plugin-dir="$R/kubelet-plugins" \
  --cgroup-driver=cgroupfs --fail-swap-on=false --resolv-conf="$R/pod-resolv.conf" \
  --address=127.0.0.1 --healthz-bind-address=127.0.0.1 --read-only-port=0 \
  --anonymous-auth=false --client-ca-file="$P/ca.crt" --authorization-mode=Webhook \
  --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
  --eviction-hard='memory.available<100Mi,nodefs.available<1%,imagefs.available<1%'

# --- kube-proxy: ClusterIP Services, the `kubernetes` one included (10.96.0.1 -> bridge:16443) ---
sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1 2>/dev/null \
  || { modprobe br_netfilter 2>/dev/null; sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.ipv4.ip_forward=1; }
start kube-proxy "$L/kube-proxy.log" "$NODE_BIN/kube-proxy" --kubeconfig="$P/kube-proxy.kubeconfig" --hostname-override="$node" \
  --proxy-mode=iptables --cluster-cidr="$RN_BRIDGE_CIDR" --conntrack-max-per-core=0 --oom-score-adj=0 \
  --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256

wait_for "node $node" 120 "$L/kubelet.log" kubectl wait --for=condition=Ready "node/$node" --timeout=1s
wait_for "default ServiceAccount" 60 "$L/kube-controller-manager.log" kubectl get serviceaccount default
wait_for registry 10 "$L/registry.log" curl -fsS "http://$RN_REGISTRY/v2/"
for p in "${procs[@]}"; do alive "$p" || rn_die "$p exited (log: $L/$p.log)"; done
printf 'export KUBECONFIG=%s DOCKER_HOST=unix://%s PATH=%s:$PATH\n' "$P/admin.kubeconfig" "$R/docker.sock" "$NODE_BIN" > "$R/env"
step "node $node Ready; source $R/env"
