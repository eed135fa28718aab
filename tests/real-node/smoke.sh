#!/usr/bin/env bash
# Smoke check of the real node and the images: one pod shaped like a function pod, the
# sample model server with the runtime shim in front of it, both pulled from the node's
# registry and hardened as the chart runs them (non-root, read-only root filesystem, no
# capabilities, no privilege escalation). Passes when the pod is Ready and both answer
# over HTTP on the pod's IP: the model server directly, and through the shim.
# Needs: up.sh, then the images pushed (docker/build.sh with REGISTRY=127.0.0.1:5000 PUSH=1).
#   smoke.sh [TAG]   (default: the chart's appVersion)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
root=$(cd "$here/../.." && pwd)
[ -f "$RN_DIR/env" ] || rn_die "the node is not up (tests/real-node/up.sh)"
. "$RN_DIR/env"
tag=${1:-$(awk -F'"' '/^appVersion:/ {print $2}' "$root/charts/pilotlight/Chart.yaml")}
ns=pilotlight-smoke
for image in runtime-shim sample-model-server; do
  curl -fsS "http://$RN_REGISTRY/v2/pilotlight/$image/manifests/$tag" -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' >/dev/null \
    || rn_die "$RN_REGISTRY/pilotlight/$image:$tag is not in the registry (DOTNET_IMAGES=$RN_REGISTRY/dotnet REGISTRY=$RN_REGISTRY PUSH=1 docker/build.sh)"
done
t0=$(date +%s)
cleanup() { kubectl delete namespace $ns --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT
kubectl create namespace $ns --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n $ns apply -f - >/dev/null <<Y
apiVersion: v1
kind: Pod
metadata: {name: function}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  volumes: [{name: tmp, emptyDir: {}}]
  containers:
  - name: model
    image: $RN_REGISTRY/pilotlight/sample-model-server:$tag
    imagePullPolicy: Always
    env: [{name: PORT, value: "8080"}, {name: LISTEN_ADDRESS, value: "0.0.0.0"}, {name: LOAD_SECONDS, value: "1"}]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
    securityContext: &hardened {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
  - name: shim
    image: $RN_REGISTRY/pilotlight/runtime-shim:$tag
    imagePullPolicy: Always
    env: [{name: PILOTLIGHT_LISTEN_PORT, value: "8099"}, {name: PILOTLIGHT_UPSTREAM, value: "http://127.0.0.1:8080"}]
    ports: [{containerPort: 8099}]
    readinessProbe: {httpGet: {path: /ready, port: 8099}, periodSeconds: 1}
    securityContext: *hardened
    volumeMounts: [{name: tmp, mountPath: /tmp}]
Y
if ! kubectl -n $ns wait --for=condition=Ready pod/function --timeout=180s >/dev/null; then
  kubectl -n $ns describe pod function | tail -25 >&2
  kubectl -n $ns logs function --all-containers --tail=20 >&2 || true
  rn_die "the function pod did not become Ready"
fi
ip=$(kubectl -n $ns get pod function -o jsonpath='{.status.podIP}')
rn_log "+$(( $(date +%s) - t0 ))s pod Ready at $ip"
get() { curl -fsS --max-time 5 "$1" || rn_die "GET $1 failed"; }
echo "model /healthz:        $(get "http://$ip:8080/healthz")"
echo "shim /ready:           $(get "http://$ip:8099/ready" | head -c 200)"
body=$(get "http://$ip:8099/smoke/hello")
echo "through the shim:      $(head -c 200 <<<"$body")"
[ -n "$body" ] || rn_die "empty answer through the shim"
restarts=$(kubectl -n $ns get pod function -o jsonpath='{range .status.containerStatuses[*]}{.restartCount}{" "}{end}')
[ "$(tr -d ' 0' <<<"$restarts")" = "" ] || rn_die "containers restarted: $restarts"
kubectl -n $ns delete pod function --grace-period=2 --timeout=60s >/dev/null
rn_log "+$(( $(date +%s) - t0 ))s smoke: OK"
