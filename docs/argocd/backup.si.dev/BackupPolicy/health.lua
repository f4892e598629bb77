-- Argo CD health check for backup.si.dev/BackupPolicy (backup-operator), in
-- Argo CD's resource_customizations layout: `obj` is the object, the script
-- returns hs = {status, message}. Plain Lua 5.1 (Argo CD runs gopher-lua).
--
-- It reads the conditions the operator writes (docs/status.md):
--   Stalled=True      -> Degraded     (only a human can help: bad spec, missing Secret, ...)
--   Reconciling=True  -> Progressing  (the operator is still acting on this generation)
--   Ready=False       -> Degraded, Ready=Unknown or missing -> Progressing
--   spec.suspend      -> Suspended
--   BackupHealthy=False -> Degraded   (armed, but the newest backup run failed)
--   otherwise         -> Healthy
-- A spec the operator has not observed yet (metadata.generation !=
-- status.observedGeneration) is Progressing, as is an object it has not
-- written a status for ("Waiting for controller").
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  local deletionHs = { status = "Progressing", message = "Pending deletion" }
  if obj.metadata.finalizers ~= nil and #obj.metadata.finalizers > 0 then
    deletionHs.message = "Pending deletion; blocked by finalizers: " .. table.concat(obj.metadata.finalizers, ", ")
  end
  return deletionHs
end

local hs = { status = "Progressing", message = "Waiting for controller" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  if condition.type ~= nil then
    conditions[condition.type] = condition
  end
end
local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
  return hs
end
local ready = conditions["Ready"]
if ready == nil or ready.status == "Unknown" then
  if ready ~= nil then
    hs.message = describe(ready)
  end
  return hs
end
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "BackupPolicy is suspended: no new runs start"
  return hs
end
local backup = conditions["BackupHealthy"]
if backup ~= nil and backup.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(backup)
  return hs
end
hs.status = "Healthy"
hs.message = describe(ready)
return hs
