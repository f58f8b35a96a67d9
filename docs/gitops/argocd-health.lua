-- Argo CD resource health for stratum.dev/ImageBuild (Lua 5.1, as Argo CD runs it).
--
-- Install it in argocd-cm under `resource.customizations.health.stratum.dev_ImageBuild`
-- (examples/gitops/argocd/argocd-cm.yaml). Tested by tests/tests/gitops_health.rs.
--
-- It reads what the operator writes (crds/src/conditions.rs), in kstatus order:
--   1. no status, or status.observedGeneration behind metadata.generation: the operator has not
--      acted on the current spec yet                                      -> Progressing
--   2. Stalled=True: the build failed (or was cancelled) and will not progress by itself
--                                                    -> Degraded (Suspended for spec.cancel)
--   3. Ready=True: the image of this generation is pushed and verified  -> Healthy
--   4. Reconciling=True, or a phase before the end: a build is pending, queued or running
--                                                                         -> Progressing
--   5. anything else (an operator version this script does not know)   -> Unknown

local hs = {}

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

-- "Reason: message", or whichever of the two is set.
local function describe(c)
  if c == nil then
    return ""
  end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  return reason .. message
end

local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Stratum operator to pick up the build"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Stratum operator to build generation " .. tostring(generation)
    .. " (status describes generation " .. tostring(status.observedGeneration or "none") .. ")"
  return hs
end

local stalled = condition(status, "Stalled")
local ready = condition(status, "Ready")
local reconciling = condition(status, "Reconciling")

if stalled ~= nil and stalled.status == "True" then
  if status.phase == "Cancelled" then
    -- spec.cancel stopped it; setting spec.cancel back to false builds again.
    hs.status = "Suspended"
  else
    hs.status = "Degraded"
  end
  hs.message = describe(stalled)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  if status.image ~= nil then
    hs.message = "Pushed " .. status.image
  end
  return hs
end

local running = {
  Pending = true, Queued = true, Fetching = true, Building = true, Pushing = true,
}
if (reconciling ~= nil and reconciling.status == "True") or running[status.phase] then
  hs.status = "Progressing"
  local what = reconciling or ready
  if what ~= nil then
    hs.message = describe(what)
  else
    hs.message = status.phase
  end
  return hs
end

hs.status = "Unknown"
hs.message = "Unrecognised ImageBuild status (phase " .. tostring(status.phase) .. ")"
return hs
