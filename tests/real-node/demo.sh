#!/usr/bin/env bash
# make demo-real: the demo's story on the real node, as a platform team and a user would live it.
#   the chart installed with helm from the images in the node's registry; simulated GPUs
#   advertised to the real kubelet by tests/Pilotlight.DevicePluginSim; a GPU function applied
#   with kubectl, invoked at zero through the gateway's Service (cold start timed), invoked warm,
#   then scaled back to zero. Leaves the node and the release up to look at; `make real-node-down`
#   stops everything.
# Needs the node up and the images pushed (make real-node-images does both).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
rn_use_node
"$here/install.sh"
gateway=$(kubectl -n pilotlight-system get service pilotlight-gateway -o jsonpath='{.spec.clusterIP}')
say "installed (tests/real-node/install.sh); gateway Service at http://$gateway"

kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo apply -f - >/dev/null <<Y
apiVersion: pilotlight.dev/v1alpha1
kind: GpuFunction
metadata: {name: echo}
spec:
  image: $RN_REGISTRY/pilotlight/sample-model-server:$tag
  access: Public
  port: 8080
  healthPath: /healthz
  env: [{name: LOAD_SECONDS, value: "2"}]
  gpu: {type: L4, count: 1}
  scaling: {minReplicas: 0, maxReplicas: 2, scaledownWindow: 20s}
  startupTimeout: 5m
Y
for _ in $(seq 120); do
  [ "$(kubectl -n demo get gfn echo -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')" = ScaledToZero ] && break; sleep 1
done
say "GpuFunction demo/echo applied: $(kubectl -n demo get gfn echo -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')"

say "POST /demo/echo/predict at zero replicas (cold start on the real kubelet)"
curl -sS -o /dev/null -D - -w '%{http_code} in %{time_total}s\n' -X POST -d hello "http://$gateway/demo/echo/predict" | grep -E '^(X-Pilotlight-Cold-Start|[0-9]{3} in)' | sed 's/^/          /'
say "again, warm"
curl -sS -o /dev/null -w '          %{http_code} in %{time_total}s\n' -X POST -d again "http://$gateway/demo/echo/predict"
pod=$(kubectl -n demo get pods -l pilotlight.dev/function=echo -o jsonpath='{.items[0].metadata.name}')
say "pod $pod holds $(kubectl -n demo get pod "$pod" -o jsonpath='{.spec.containers[?(@.name=="function")].resources.limits.nvidia\.com/gpu}') GPU; the kubelet gave it $(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$(docker ps -q --filter "label=io.kubernetes.pod.name=$pod" --filter label=io.kubernetes.container.name=function)" | grep NVIDIA_VISIBLE_DEVICES)"
say "waiting for scale to zero (scaledownWindow 20s)"
for _ in $(seq 180); do
  [ "$(kubectl -n demo get gfn echo -o jsonpath='{.status.replicas}')" = 0 ] && break; sleep 1
done
say "replicas $(kubectl -n demo get gfn echo -o jsonpath='{.status.replicas}'): $(kubectl -n demo get gfn echo -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')"
say "done; the node and the release stay up (kubectl with: source $RN_DIR/env; stop with make real-node-down)"
