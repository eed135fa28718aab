#!/usr/bin/env bash
# Provides kube-apiserver, kube-controller-manager, kube-scheduler and etcd for
# the integration tests, in this order of preference:
#   1. $KUBEBUILDER_ASSETS (setup-envtest users already have binaries there);
#   2. a cache outside the work tree from an earlier run of this script;
#   3. a build from Debian's own `kubernetes` source package (v1.20.2), ~7 min
#      on 2 cores, cached in $PILOTLIGHT_CACHE so CI and developers pay once.
# Prints the directory holding the binaries on its last line of stdout.
set -euo pipefail

cache=${PILOTLIGHT_CACHE:-$HOME/.cache/pilotlight}
out=$cache/control-plane/v1.20.2
bins=(kube-apiserver kube-controller-manager kube-scheduler)

have_all() {
  local dir=$1 b
  for b in "${bins[@]}" etcd; do [ -x "$dir/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && have_all "$KUBEBUILDER_ASSETS"; then
  echo "$KUBEBUILDER_ASSETS"; exit 0
fi
if have_all "$out/bin"; then echo "$out/bin"; exit 0; fi

# One build at a time: a second caller (a parallel test run, make test while
# make demo builds) waits for the first instead of deleting its sources.
mkdir -p "$cache/control-plane"
exec 9>"$cache/control-plane/.build.lock"
flock 9
if have_all "$out/bin"; then echo "$out/bin"; exit 0; fi

sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
log() { echo "build-control-plane: $*" >&2; }

# deb-src for the same mirror the machine already uses for binaries.
src_list=/etc/apt/sources.list.d/pilotlight-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  log "adding deb-src entry for $mirror"
  printf 'Types: deb-src\nURIs: %s\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" | $sudo tee "$src_list" >/dev/null
fi
log "installing build dependencies"
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq golang-go etcd-server rsync openssl \
  golang-github-modern-go-reflect2-dev >&2

work=$cache/control-plane/src
rm -rf "$work"; mkdir -p "$work"; cd "$work"
log "fetching the kubernetes source package"
apt-get source --download-only kubernetes >&2
tar xzf kubernetes_*.orig.tar.gz
cd kubernetes-1.20.2
# Go 1.19 crashes the vendored reflect2 v1.0.1 on the first custom-resource
# write; Debian ships the fixed 1.0.2.
rsync -a --delete --exclude go.mod /usr/share/gocode/src/github.com/modern-go/reflect2/ vendor/github.com/modern-go/reflect2/
export GOPATH=$PWD/.go CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE=$cache/control-plane/gocache
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
log "building ${bins[*]} (several minutes)"
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2

mkdir -p "$out/bin"
for b in "${bins[@]}"; do cp "_output/local/bin/linux/amd64/$b" "$out/bin/"; done
ln -sfn "$(command -v etcd)" "$out/bin/etcd"
cd / && rm -rf "$work"
log "done"
echo "$out/bin"
