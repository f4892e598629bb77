-- Argo CD health check for backup.si.dev/RestoreRequest (backup-operator), in
-- Argo CD's resource_customizations layout: `obj` is the object, the script
-- returns hs = {status, message}. Plain Lua 5.1 (Argo CD runs gopher-lua).
--
-- It reads the conditions the operator writes (docs/status.md), then
-- status.phase for a status written before they existed:
--   Stalled=True (phase Blocked or Failed)              -> Degraded
--   Reconciling=True (phase Pending, Restoring, Validating) -> Progressing
--   phase Succeeded                                      -> Healthy
-- A request the operator has not written a status for is Progressing
-- ("Waiting for controller").
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  local deletionHs = { status = "Progressing", message = "Pending deletion" }
  if obj.metadata.finalizers ~= nil and #obj.metadata.finalizers > 0 then
    deletionHs.message = "Pending deletion; blocked by finalizers: " .. table.concat(obj.metadata.finalizers, ", ")
  end
  return deletionHs
end

local hs = { status = "Progressing", message = "Waiting for controller" }
if obj.status == nil or (obj.status.phase == nil and obj.status.conditions == nil) then
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and obj.status.observedGeneration ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type ~= nil then
      conditions[condition.type] = condition
    end
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

local phase = obj.status.phase
local message = obj.status.message or ""
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message
elseif phase == "Failed" or phase == "Blocked" then
  hs.status = "Degraded"
  hs.message = message
elseif phase ~= nil and phase ~= "" then
  hs.message = phase
  if message ~= "" then
    hs.message = phase .. ": " .. message
  end
end
return hs
