# Shared settings of the real-node scripts (sourced, not run).
# Everything built is cached outside the work tree; everything a running node
# writes lives under $RN_DIR, so `down.sh --purge` can remove it all.

rn_cache=${PILOTLIGHT_CACHE:-$HOME/.cache/pilotlight}
# The node's own binaries (kubelet, kube-proxy, kubectl 1.20, pause, runc wrapper).
rn_node=$rn_cache/node/v1.20.2
NODE_BIN=${NODE_BIN:-$rn_node/bin}
# The control plane comes from tests/control-plane/build.sh (never rebuilt here).
CP_BIN=${CP_BIN:-$rn_cache/control-plane/v1.20.2/bin}
RN_DIR=${RN_DIR:-/tmp/pilotlight-real-node}

# Fixed addresses: one real node per machine. The apiserver listens on every
# interface (pods reach it on the docker bridge); the rest listen on loopback.
RN_API_PORT=16443
RN_ETCD_CLIENT_PORT=32379
RN_ETCD_PEER_PORT=32380
RN_REGISTRY=127.0.0.1:5000
RN_BRIDGE_IP=172.17.0.1
RN_BRIDGE_CIDR=172.17.0.0/16
RN_SERVICE_CIDR=10.96.0.0/16
# Debian's docker.io, not the newer client some machines put first on PATH.
RN_DOCKER=/usr/bin/docker

rn_log() { echo "${0##*/}: $*" >&2; }
rn_die() { echo "${0##*/}: error: $*" >&2; exit 1; }
rn_require_root() { [ "$(id -u)" -eq 0 ] || rn_die "must run as root (kubelet, dockerd and kube-proxy change mounts, cgroups and iptables)"; }

# For scripts that use a running node: needs root and up.sh's env; sets root (the repository),
# tag (the chart's appVersion, the images' tag) and say (a line with the seconds since start, on stderr).
rn_use_node() {
  rn_require_root
  [ -f "$RN_DIR/env" ] || rn_die "the node is not up (make real-node-images)"
  . "$RN_DIR/env"
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  tag=$(awk -F'"' '/^appVersion:/ {print $2}' "$root/charts/pilotlight/Chart.yaml")
  rn_t0=$(date +%s.%N)
}
say() { printf '[%6.1fs] %s\n' "$(echo "$(date +%s.%N) - ${rn_t0:-0}" | bc)" "$*" >&2; }
