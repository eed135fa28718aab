#!/usr/bin/env bash
# Builds (once) what a real one-node cluster needs beyond the control plane, and
# caches it outside the work tree in $PILOTLIGHT_CACHE/node/v1.20.2/bin:
#   kubelet, kube-proxy, kubectl  v1.20.2, from Debian's `kubernetes` source package
#                                 (the version of tests/control-plane/build.sh)
#   pause                         a static pod-sandbox program (no image is pulled)
#   runc-wrap                     runc, minus negative oom_score_adj (see below)
# and installs the Debian packages the node and the image builds use. A second
# run finds everything and returns at once. Needs root, cgroups and a deb-src
# entry (added for the machine's own Debian mirror when missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

node_bins=(kubelet kube-proxy kubectl)
packages=(docker.io socat conntrack iptables openssl curl rsync gcc libc6-dev golang-go
          golang-github-modern-go-reflect2-dev debootstrap docker-registry)

rn_require_root
[ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ] || [ -f /sys/fs/cgroup/cgroup.controllers ] \
  || rn_die "no memory cgroup under /sys/fs/cgroup: the kubelet cannot run here"
[ -x "$CP_BIN/kube-apiserver" ] || rn_log "note: no control plane in $CP_BIN yet (make control-plane builds it); up.sh needs it"

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  rn_log "installing ${missing[*]}"
  # Without an init system docker.io's postinst must not start a dockerd of its
  # own (it would take docker0): forbid service starts during the install.
  policy=/usr/sbin/policy-rc.d; own_policy=""
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; own_policy=1; fi
  rc=0
  { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } || rc=$?
  [ -z "$own_policy" ] || rm -f $policy
  [ $rc -eq 0 ] || rn_die "could not install ${missing[*]} (apt-get failed with $rc)"
fi

have_node() { local b; for b in "${node_bins[@]}" pause runc-wrap; do [ -x "$NODE_BIN/$b" ] || return 1; done; }
if have_node; then echo "$NODE_BIN"; exit 0; fi

mkdir -p "$rn_node"
exec 9>"$rn_node/.build.lock"
flock 9   # a parallel caller waits for this build instead of racing it
if have_node; then echo "$NODE_BIN"; exit 0; fi
mkdir -p "$NODE_BIN"

# --- kubelet, kube-proxy, kubectl ---
if ! [ -x "$NODE_BIN/kubelet" ] || ! [ -x "$NODE_BIN/kube-proxy" ] || ! [ -x "$NODE_BIN/kubectl" ]; then
  grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ || grep -qs '^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    || rn_die "no deb-src entry in /etc/apt/sources.list*: run tests/control-plane/build.sh (it adds one for the machine's mirror) or add one for bookworm main"
  src=$rn_node/src
  rm -rf "$src"; mkdir -p "$src"; cd "$src"
  rn_log "fetching the kubernetes source package"
  apt-get source --download-only kubernetes >&2 || rn_die "apt-get source kubernetes failed (is the deb-src entry for bookworm?)"
  tar xzf kubernetes_*.orig.tar.gz
  cd kubernetes-1.20.2
  # Go 1.19 breaks the vendored reflect2 1.0.1; Debian's 1.0.2 works (as in the control-plane build).
  rsync -a --delete --exclude go.mod /usr/share/gocode/src/github.com/modern-go/reflect2/ vendor/github.com/modern-go/reflect2/
  # The control plane's Go build cache holds most of the shared packages already.
  export GOPATH=$PWD/.go CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE=$rn_cache/control-plane/gocache
  mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
  rn_log "building ${node_bins[*]} (several minutes on 2 cores)"
  make WHAT="cmd/kubelet cmd/kube-proxy cmd/kubectl" >&2
  for b in "${node_bins[@]}"; do install -m 0755 "_output/local/bin/linux/amd64/$b" "$NODE_BIN/"; done
  cd /; rm -rf "$src"
fi

# --- pause: the pod sandbox's only process. kubelet 1.20 runs k8s.gcr.io/pause:3.2
# by default; up.sh imports this binary under that name, so nothing is pulled. ---
if ! [ -x "$NODE_BIN/pause" ]; then
  cat > "$rn_node/pause.c" <<'C'
/* Sleeps until told to stop; reaps orphans, as PID 1 of a pod must. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_stop(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction stop = {0}, child = {0};
  stop.sa_handler = on_stop;
  sigaction(SIGINT, &stop, 0);
  sigaction(SIGTERM, &stop, 0);
  child.sa_handler = on_child;
  child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &child, 0);
  for (;;) pause();
}
C
  gcc -Os -static -s -o "$NODE_BIN/pause" "$rn_node/pause.c"
fi

# --- runc-wrap: this VM's capability bounding set lacks CAP_SYS_RESOURCE, so not even
# root may lower a process's oom_score_adj below 0. The kubelet asks -998 for every pod
# sandbox and -997 for Guaranteed containers; runc's init then dies writing it
# ("can't get final child's PID from pipe: EOF") and no pod starts. The wrapper rewrites
# a negative oomScoreAdj in the OCI bundle to 0, then runs the real runc. Only the OOM
# killer's order between pods differs from a normal node. ---
if ! [ -x "$NODE_BIN/runc-wrap" ]; then
  cat > "$NODE_BIN/runc-wrap.tmp" <<'W'
#!/bin/sh
# runc with negative oom_score_adj clamped to 0 (tests/real-node/build.sh says why).
bundle=""; prev=""
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle=$arg ;; esac
  case "$arg" in --bundle=*) bundle=${arg#--bundle=} ;; esac
  prev=$arg
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  sed -i -E 's/"oomScoreAdj": *-[0-9]+/"oomScoreAdj":0/' "$bundle/config.json"
fi
exec /usr/sbin/runc "$@"
W
  chmod 0755 "$NODE_BIN/runc-wrap.tmp"; mv "$NODE_BIN/runc-wrap.tmp" "$NODE_BIN/runc-wrap"
fi
rn_log "done"
echo "$NODE_BIN"
