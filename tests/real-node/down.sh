#!/usr/bin/env bash
# Stops the node up.sh started, each process by its recorded PID, and removes what they leave
# on the machine: containers, mounts under $RN_DIR, iptables rules and chains of the kubelet,
# kube-proxy and docker, docker0, the kubepods/docker cgroups, /var/log/pods,
# /var/log/containers and /var/lib/kubelet/device-plugins. Keeps $RN_DIR's state (images, registry, etcd) unless --purge.
# Safe to run twice, and on a half-started node.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
rn_require_root
R=$RN_DIR; pids=$R/pids
purge=""; [ "${1:-}" = --purge ] && purge=1

# stop NAME: SIGTERM, up to 10 s, then SIGKILL; only the PID recorded for NAME.
stop() {
  local f=$pids/$1 pid i; [ -f "$f" ] || return 0; pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null && rn_log "$1 ($pid) did not stop in 10 s: killed"
  fi
  rm -f "$f"
}
unmount_all() { findmnt -rn -o TARGET | grep "^$R/" | sort -r | xargs -r -n1 umount -l 2>/dev/null; }

# The node first, so nothing restarts pods while they are removed.
stop device-plugin; stop kubelet; stop kube-proxy
[ -x "$NODE_BIN/kube-proxy" ] && "$NODE_BIN/kube-proxy" --cleanup >/dev/null 2>&1
if [ -S "$R/docker.sock" ] && [ -f "$pids/dockerd" ]; then
  ids=$("$RN_DOCKER" -H "unix://$R/docker.sock" ps -aq 2>/dev/null)
  [ -z "$ids" ] || "$RN_DOCKER" -H "unix://$R/docker.sock" rm -f $ids >/dev/null 2>&1
fi
unmount_all   # secret and projected volumes: tmpfs mounts under the kubelet's root dir
# dockerd stops the containerd it started; that containerd's PID is recorded by itself.
containerd_pid=$(cat "$R/docker-exec/containerd/containerd.pid" 2>/dev/null || true)
stop dockerd
if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null \
   && grep -q "$R" "/proc/$containerd_pid/cmdline" 2>/dev/null; then
  kill "$containerd_pid"; sleep 1; kill -9 "$containerd_pid" 2>/dev/null
fi
unmount_all   # the kubelet's root bind mount, docker's netns and overlay mounts
for p in registry kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$p"; done

# iptables: only the rules and chains the kubelet, kube-proxy and docker added.
for table in filter nat mangle; do
  rules=$(iptables-save -t $table 2>/dev/null) || continue
  grep -q -E 'KUBE-|DOCKER|docker0' <<<"$rules" || continue
  grep -v -E 'KUBE-|DOCKER|docker0' <<<"$rules" | iptables-restore -T $table
done
# dockerd set FORWARD to DROP; up.sh recorded what it was.
[ -f "$R/forward-policy" ] && iptables -P FORWARD "$(cat "$R/forward-policy")" 2>/dev/null
ip link show docker0 >/dev/null 2>&1 && ip link del docker0
for h in /sys/fs/cgroup/*/; do
  for top in kubepods docker; do
    [ -d "$h$top" ] && find "$h$top" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done
rm -rf /var/log/pods /var/log/containers
# kubelet 1.20 keeps its device-plugin sockets here whatever its --root-dir.
rm -rf /var/lib/kubelet/device-plugins; rmdir /var/lib/kubelet 2>/dev/null || true
[ -f "$R/ip-forward" ] && sysctl -qw "net.ipv4.ip_forward=$(cat "$R/ip-forward")"
rm -f "$R/env" "$R/forward-policy" "$R/ip-forward"
if [ -n "$purge" ]; then
  rm -rf "$R"
  rn_log "stopped; $R removed"
else
  rn_log "stopped (state kept in $R; --purge removes it)"
fi
