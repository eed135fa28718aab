-- Argo CD health check for pilotlight.dev GpuFunction and Sandbox (and SandboxWarmPool).
-- Argo CD runs it with the object as `obj` and reads back {status, message}. It reads only
-- what the operator writes for kstatus: observedGeneration, Stalled, Reconciling, Ready
-- (and a Sandbox's Finished). Install it under both keys shown in charts/README.md.
local function conditions(o)
  local found = {}
  if o.status ~= nil and o.status.conditions ~= nil then
    for _, c in ipairs(o.status.conditions) do
      found[c.type] = c
    end
  end
  return found
end

local function said(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local health = { status = "Progressing", message = "waiting for the operator" }
if obj.status == nil then
  return health
end

if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  health.message = "the operator has not yet seen generation " .. tostring(obj.metadata.generation)
  return health
end

local c = conditions(obj)
if c.Stalled ~= nil and c.Stalled.status == "True" then
  return { status = "Degraded", message = said(c.Stalled) }
end
if c.Reconciling ~= nil and c.Reconciling.status == "True" then
  return { status = "Progressing", message = said(c.Reconciling) }
end
if c.Finished ~= nil and c.Finished.status == "True" then
  -- A sandbox that ended as it should (timeout, idle, terminate, its command exited 0).
  return { status = "Healthy", message = "finished, " .. said(c.Finished) }
end
if c.Ready ~= nil then
  if c.Ready.status == "True" then
    return { status = "Healthy", message = said(c.Ready) }
  end
  health.message = said(c.Ready)
end
return health
