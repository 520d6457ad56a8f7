-- Administrative transitions of one job or one queue.
-- KEYS[1]  the queue's meta key
-- ARGV     action, then per action:
--   "retry",  id, now             failed/cancelled -> waiting (waiting-children for a flow
--                                   parent with unreported children), attempts reset; 1 or 0
--   "cancel", id, now, keep_ms    -> "cancelled" | "requested" | "finished" | "missing"
--   "remove", id                  -> 1, 0 (missing), "active" or "child" (a pending flow
--                                   child: refused)
--   "clean",  state, before, limit  delete jobs in state finished (else created)
--                                   before `before`; returns how many, or {"child", id}
--                                   (nothing deleted) if one is a pending flow child
local action = ARGV[1]

-- A flow child that has not reported to its parent: deleting it would strand the parent.
local function pending_child(id, state)
  if state == "completed" or state == "failed" or state == "cancelled" then return false end
  return rcall("HEXISTS", job_key(id), "parent") == 1
end

if action == "retry" then
  local id, now = ARGV[2], ARGV[3]
  local key = job_key(id)
  local f = rcall("HMGET", key, "state", "created_at", "priority", "seq")
  if f[1] ~= "failed" and f[1] ~= "cancelled" then return 0 end
  rcall("ZREM", P .. "done:" .. f[1], id)
  rcall("ZREM", P .. "expiry", id)
  rcall("HDEL", key, "finished_at", "expires_at", "result", "error")
  rcall("HSET", key, "attempts", 0, "stalls", 0, "run_at", now)
  if tonumber(rcall("HGET", P .. "flow:" .. id, "pending") or "0") > 0 then
    -- a flow parent some of whose children have not reported waits for them again
    move_state(id, f[2], f[1], "waiting-children")
    return 1
  end
  make_due(id, f[2], f[1], now, now, f[3], f[4])
  wake_workers()
  return 1
elseif action == "cancel" then
  local id, now, keep_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
  local key = job_key(id)
  local f = rcall("HMGET", key, "state", "created_at", "seq")
  local state = f[1]
  if not state then return "missing" end
  if state == "completed" or state == "failed" or state == "cancelled" then return "finished" end
  if state == "active" then
    rcall("HSET", key, "cancel_requested", "1")
    return "requested"
  end
  rcall("ZREM", P .. "ready", ready_member(f[3], id))
  rcall("ZREM", P .. "scheduled", id)
  finish(id, f[2], state, "cancelled", now, now + keep_ms)
  emit(id, "cancelled")
  note_flow_child(id, now)
  return "cancelled"
elseif action == "remove" then
  local state = rcall("HGET", job_key(ARGV[2]), "state")
  if not state then return 0 end
  if state == "active" then return "active" end
  if pending_child(ARGV[2], state) then return "child" end
  delete_job(ARGV[2])
  return 1
elseif action == "clean" then
  local state, before, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local index = P .. "state:" .. state
  if state == "completed" or state == "failed" or state == "cancelled" then
    index = P .. "done:" .. state
  end
  local ids = rcall("ZRANGEBYSCORE", index, "-inf", "(" .. before, "LIMIT", 0, limit)
  for _, id in ipairs(ids) do
    if pending_child(id, state) then return { "child", id } end
  end
  for _, id in ipairs(ids) do delete_job(id) end
  return #ids
end
return redis.error_reply("unknown admin action " .. tostring(action))
