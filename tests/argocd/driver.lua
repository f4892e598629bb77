-- Runs an Argo CD health check (resource_customizations/<group>/<kind>/health.lua)
-- on one object as Argo CD does: the object as the global `obj`, the script's
-- returned table read as the health. The object comes as a Lua table literal
-- (`return {...}`, written by the test from the JSON the API server served).
--   lua5.4 driver.lua health.lua object.lua  -> "<status>\n<message>\n"
local script, object = arg[1], arg[2]
obj = dofile(object)
local hs = dofile(script)
if type(hs) ~= "table" then
  io.stderr:write("health check returned ", type(hs), ", not a table\n")
  os.exit(2)
end
local allowed = { Healthy = true, Progressing = true, Degraded = true, Suspended = true, Missing = true, Unknown = true }
if not allowed[hs.status] then
  io.stderr:write("health check returned status ", tostring(hs.status), ", which Argo CD does not know\n")
  os.exit(2)
end
io.write(hs.status, "\n", hs.message or "", "\n")
