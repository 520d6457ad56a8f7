-- Give held jobs back as if never claimed (graceful shutdown); a job asked to
-- cancel ends cancelled instead.
-- KEYS[1]  the queue's meta key
-- ARGV     now, keep_ms, then per lease: id, token
-- Returns  how many leases still held their job and were released
local now, keep_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local released = 0
local any_ready = false
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local key = job_key(id)
  local f = rcall("HMGET", key, "token", "state", "created_at", "cancel_requested", "run_at",
    "priority", "seq")
  if f[1] == token and f[2] == "active" then
    clear_lease(id)
    local attempts = rcall("HINCRBY", key, "attempts", -1)
    if attempts < 0 then rcall("HSET", key, "attempts", 0) end
    if f[4] == "1" then
      finish(id, f[3], "active", "cancelled", now, now + keep_ms)
      emit(id, "cancelled", now)
      note_flow_child(id, now)
    elseif make_due(id, f[3], "active", f[5], now, f[6], f[7]) then
      any_ready = true
    end
    released = released + 1
  end
end
if any_ready then wake_workers() end
return released
