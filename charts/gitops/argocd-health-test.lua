-- Runs argocd-health.lua on statuses the operator writes and checks what Argo CD would show.
-- Usage: lua5.4 charts/gitops/argocd-health-test.lua  (exit status 1 on any mismatch)
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local source = assert(io.open(here .. "/argocd-health.lua")):read("a")

local function assess(o)
  local env = setmetatable({ obj = o }, { __index = _G })
  return assert(load(source, "argocd-health.lua", "t", env))()
end

local function cond(type, status, reason, message)
  return { type = type, status = status, reason = reason, message = message or "" }
end

local function object(generation, observed, list)
  return { metadata = { generation = generation }, status = { observedGeneration = observed, conditions = list } }
end

local cases = {
  { "no status yet", { metadata = { generation = 1 } }, "Progressing" },
  { "spec not yet observed", object(2, 1, { cond("Ready", "True", "PodsReady") }), "Progressing" },
  { "function serving", object(1, 1, { cond("Ready", "True", "PodsReady"), cond("Reconciling", "False", "PodsReady"), cond("Stalled", "False", "PodsReady") }), "Healthy" },
  { "function scaled to zero", object(3, 3, { cond("Ready", "True", "ScaledToZero"), cond("Reconciling", "False", "PodsReady"), cond("Stalled", "False", "PodsReady") }), "Healthy" },
  { "function waking or rolling out", object(1, 1, { cond("Ready", "False", "PodsStarting"), cond("Reconciling", "True", "PodsStarting"), cond("Stalled", "False", "PodsReady") }), "Progressing" },
  { "function with an unknown GPU type", object(1, 1, { cond("Ready", "False", "InvalidSpec", "H900 is not in the catalog"), cond("Reconciling", "False", "PodsReady"), cond("Stalled", "True", "InvalidSpec", "H900 is not in the catalog") }), "Degraded" },
  { "function unschedulable", object(1, 1, { cond("Ready", "False", "Unschedulable"), cond("Reconciling", "False", "PodsReady"), cond("Stalled", "True", "Unschedulable", "0/3 nodes are available") }), "Degraded" },
  { "function serving while an extra replica waits for a node", object(1, 1, { cond("Ready", "True", "PodsReady", "1/2 replicas ready"), cond("Reconciling", "True", "Unschedulable", "0/3 nodes are available"), cond("Stalled", "False", "PodsReady"), cond("ScaledUp", "False", "Unschedulable", "0/3 nodes are available") }), "Progressing" },
  { "function whose model never loads", object(1, 1, { cond("Ready", "False", "StartupTimeout"), cond("Reconciling", "False", "PodsReady"), cond("Stalled", "True", "StartupTimeout", "pod llm-x did not become ready within startupTimeout 5s"), cond("ScaledUp", "False", "StartupTimeout") }), "Degraded" },
  { "sandbox starting", object(1, 1, { cond("Ready", "False", "PodStarting"), cond("Finished", "False", "Running"), cond("Reconciling", "True", "PodStarting"), cond("Stalled", "False", "PodStarting") }), "Progressing" },
  { "sandbox running", object(1, 1, { cond("Ready", "True", "Running"), cond("Finished", "False", "Running"), cond("Reconciling", "False", "Running"), cond("Stalled", "False", "Running") }), "Healthy" },
  { "sandbox expired", object(1, 1, { cond("Ready", "False", "Expired"), cond("Finished", "True", "Expired"), cond("Reconciling", "False", "Expired"), cond("Stalled", "False", "Expired") }), "Healthy" },
  { "sandbox pod failed", object(1, 1, { cond("Ready", "False", "PodFailed"), cond("Finished", "True", "PodFailed", "exit code 4"), cond("Reconciling", "False", "PodFailed"), cond("Stalled", "True", "PodFailed", "exit code 4") }), "Degraded" },
}

local failures = 0
for _, case in ipairs(cases) do
  local name, o, want = case[1], case[2], case[3]
  local got = assess(o)
  if got.status ~= want then
    failures = failures + 1
    print(string.format("FAIL %s: %s (%s), expected %s", name, got.status, got.message or "", want))
  else
    print(string.format("ok   %-40s %-12s %s", name, got.status, got.message or ""))
  end
end
print(string.format("%d cases, %d failed", #cases, failures))
os.exit(failures == 0 and 0 or 1)
