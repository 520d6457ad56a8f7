-- Administrative transitions of one job or one queue.
-- KEYS[1]  the queue's meta key
-- ARGV     action, then per action:
--   "retry",  id, now             failed/cancelled -> waiting (waiting-children for a flow
--                                   parent with unreported children), attempts reset; 1 or 0
--   "retry_failed", limit, now    "retry" the `limit` longest-failed jobs; how many
--   "promote", id, now            scheduled -> waiting, run_at now; 1 or 0
--   "cancel", id, now, keep_ms    -> "cancelled" | "requested" | "finished" | "missing"
--   "remove", id                  -> 1, 0 (missing), "active" or "child" (a pending flow
--                                   child: refused)
--   "clean",  state, before, limit  delete jobs in state finished (else created)
--                                   before `before`; returns how many, or {"child", id}
--                                   (nothing deleted) if one is a pending flow child
--   "count_clean", state, before, limit   how many "clean" would delete
local action = ARGV[1]

-- A flow child that has not reported to its parent: deleting it would strand the parent.
local function pending_child(id, state)
  if state == "completed" or state == "failed" or state == "cancelled" then return false end
  return rcall("HEXISTS", job_key(id), "parent") == 1
end

-- Send a failed or cancelled job back to waiting, attempts reset; false if it is neither.
local function retry(id, now)
  local key = job_key(id)
  local f = rcall("HMGET", key, "state", "created_at", "priority", "seq")
  if f[1] ~= "failed" and f[1] ~= "cancelled" then return false end
  if f[1] == "failed" then unindex_failed(id) end
  rcall("ZREM", P .. "done:" .. f[1], id)
  rcall("ZREM", P .. "expiry", id)
  rcall("HDEL", key, "finished_at", "expires_at", "result", "error")
  rcall("HSET", key, "attempts", 0, "stalls", 0, "run_at", now)
  if tonumber(rcall("HGET", P .. "flow:" .. id, "pending") or "0") > 0 then
    -- a flow parent some of whose children have not reported waits for them again
    move_state(id, f[2], f[1], "waiting-children")
    return true
  end
  make_due(id, f[2], f[1], now, now, f[3], f[4])
  return true
end

-- The index "clean" reads for `state`: finished jobs by finished_at, others by created_at.
local function clean_index(state)
  if state == "completed" or state == "failed" or state == "cancelled" then
    return P .. "done:" .. state
  end
  return P .. "state:" .. state
end

if action == "retry" then
  if not retry(ARGV[2], ARGV[3]) then return 0 end
  wake_workers()
  return 1
elseif action == "retry_failed" then
  local ids = rcall("ZRANGE", P .. "done:failed", 0, tonumber(ARGV[2]) - 1)
  for _, id in ipairs(ids) do retry(id, ARGV[3]) end
  if #ids > 0 then wake_workers() end
  return #ids
elseif action == "promote" then
  local id, now = ARGV[2], ARGV[3]
  local f = rcall("HMGET", job_key(id), "state", "created_at", "priority", "seq")
  if f[1] ~= "scheduled" then return 0 end
  rcall("ZREM", P .. "scheduled", id)
  rcall("HSET", job_key(id), "run_at", now)
  make_due(id, f[2], "scheduled", now, now, f[3], f[4])
  wake_workers()
  return 1
elseif action == "count_clean" then
  return math.min(rcall("ZCOUNT", clean_index(ARGV[2]), "-inf", "(" .. ARGV[3]), tonumber(ARGV[4]))
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
  emit(id, "cancelled", now)
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
  local state = ARGV[2]
  local ids = rcall("ZRANGEBYSCORE", clean_index(state), "-inf", "(" .. ARGV[3], "LIMIT", 0,
    tonumber(ARGV[4]))
  for _, id in ipairs(ids) do
    if pending_child(id, state) then return { "child", id } end
  end
  for _, id in ipairs(ids) do delete_job(id) end
  return #ids
end
return redis.error_reply("unknown admin action " .. tostring(action))
