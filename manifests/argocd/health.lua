-- Argo CD health of a modeldeploy.io/ModelDeployment, read from the status
-- the operator writes (kstatus conditions and the phase). Lua 5.1, as Argo CD
-- runs it (gopher-lua). tests/e2e/test_argocd_health.py evaluates this file
-- on live objects through a rollout.
local hs = { status = "Progressing", message = "Waiting for the operator to report a status" }
local status = obj.status
if status == nil then
  return hs
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if status.observedGeneration == nil or (generation ~= nil and status.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local function condition(kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function message_of(c)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  if c ~= nil then
    return c.message or c.reason or ""
  end
  return ""
end

-- Stalled: a person must act (invalid spec, image pull failure, progress
-- deadline, or a canary rolled back to the stable version).
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end

-- Paused: a canary waits for approval (or for a person after inconclusive
-- analysis). Suspended, not Progressing: it will not move on by itself.
if status.phase == "Paused" then
  hs.status = "Suspended"
  if status.rollout ~= nil and status.rollout.pausedReason ~= nil then
    hs.message = status.rollout.pausedReason
  else
    hs.message = message_of(nil)
  end
  return hs
end

-- A smoke-test check (spec.rollout.checks) runs as a Job: Progressing, by
-- itself, naming the check and its Job (kubectl logs job/<name>).
if status.phase == "CheckRunning" and status.rollout ~= nil and status.rollout.check ~= nil then
  local check = status.rollout.check
  hs.message = "CheckRunning: check " .. tostring(check.name) .. " (" .. tostring(check.at) .. ") runs as Job " ..
    tostring(check.job)
  return hs
end

local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready)
  return hs
end

-- A revision that had been serving lost ready replicas.
if status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = message_of(ready)
  return hs
end

-- Everything else converges on its own: creating, rolling out, canary steps,
-- a canary seeing only copies of requests (phase Shadow) and a blue-green
-- preview coming up before its switch (phase Preview; waiting for approval
-- it is Paused, above).
hs.message = message_of(ready)
return hs
