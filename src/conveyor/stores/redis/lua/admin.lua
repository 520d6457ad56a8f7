-- Administrative transitions of one job or one queue.
-- KEYS[1]  the queue's meta key
-- ARGV     action, then per action:
--   "retry",  id, now             failed/cancelled -> waiting, attempts reset; 1 or 0
--   "cancel", id, now, keep_ms    -> "cancelled" | "requested" | "finished" | "missing"
--   "remove", id                  -> 1, 0 (missing) or "active"
--   "clean",  state, before, limit  delete jobs in state finished (else created)
--                                   before `before`; returns how many
local action = ARGV[1]
if action == "retry" then
  local id, now = ARGV[2], ARGV[3]
  local key = job_key(id)
  local f = rcall("HMGET", key, "state", "created_at", "priority", "seq")
  if f[1] ~= "failed" and f[1] ~= "cancelled" then return 0 end
  rcall("ZREM", P .. "done:" .. f[1], id)
  rcall("ZREM", P .. "expiry", id)
  rcall("HDEL", key, "finished_at", "expires_at", "result", "error")
  rcall("HSET", key, "attempts", 0, "stalls", 0, "run_at", now)
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
  delete_job(ARGV[2])
  return 1
elseif action == "clean" then
  local state, before, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local index = P .. "state:" .. state
  if state == "completed" or state == "failed" or state == "cancelled" then
    index = P .. "done:" .. state
  end
  local ids = rcall("ZRANGEBYSCORE", index, "-inf", "(" .. before, "LIMIT", 0, limit)
  for _, id in ipairs(ids) do delete_job(id) end
  return #ids
end
return redis.error_reply("unknown admin action " .. tostring(action))
