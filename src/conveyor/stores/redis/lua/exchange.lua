-- The worker's round trip: record finished outcomes, then claim ready jobs.
-- KEYS[1]  the queue's meta key
-- ARGV     now, worker, lease_until, claim (max jobs), token, n (outcomes), then
--          per outcome: id, token, state, finished_at, result, error, run_at,
--          expires_at, keep, progress, error keys (the index keys of a failed job's
--          error, "\n"-joined) (11 values each; "" for none)
-- Returns  { accepted (1/0 per outcome), claimed (9 values per job: id, task,
--          payload, options, attempts, run_at, created_at, priority, fence), next_due,
--          wake_at (when a claim the queue's limits stopped may try again, or "") }
-- The queue's limits (limits.lua, prepended after lib.lua) bound the claim.
local now, worker, lease_until = ARGV[1], ARGV[2], ARGV[3]
local claim, token, n = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])

local accepted = {}
local trims = {}
local batch = new_batch() -- the index writes of completed and failed jobs, flushed below
for i = 7, 6 + n * 11, 11 do
  local id, held, state = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = job_key(id)
  local f = rcall("HMGET", key, "token", "state", "created_at", "cancel_requested",
    "priority", "seq", "parent", "timeline")
  if f[1] ~= held or f[2] ~= "active" then
    accepted[#accepted + 1] = 0
  elseif state == "waiting" or state == "scheduled" then
    local created_at, finished_at, run_at, expires_at = f[3], ARGV[i + 3], ARGV[i + 6], ARGV[i + 7]
    rcall("HSET", key, "error", ARGV[i + 5], "run_at", run_at)
    if ARGV[i + 9] ~= "" then rcall("HSET", key, "progress", ARGV[i + 9]) end
    local cancel = f[4] == "1"
    clear_lease(id)
    if cancel then
      finish(id, created_at, "active", "cancelled", finished_at, expires_at)
      emit(id, "cancelled", now)
      note_flow_child(id, now, f[7])
    else
      if make_due(id, created_at, "active", run_at, now, f[5], f[6]) then wake_workers() end
      emit(id, "retrying", now, ARGV[i + 5])
    end
    accepted[#accepted + 1] = 1
  else
    -- The hot path (a job completed or failed for good): as few calls per job as possible.
    local created_at, finished_at, expires_at = f[3], ARGV[i + 3], ARGV[i + 7]
    local fields = { "state", state, "finished_at", finished_at,
      "timeline", timeline_with(f[8], state, now, ARGV[i + 5]) }
    local gone = { "token", "lease_until", "cancel_requested" }
    local optional = { { "result", ARGV[i + 4] }, { "error", ARGV[i + 5] },
      { "progress", ARGV[i + 9] }, { "expires_at", expires_at } }
    for _, pair in ipairs(optional) do
      if pair[2] ~= "" then
        fields[#fields + 1] = pair[1]
        fields[#fields + 1] = pair[2]
      elseif pair[1] == "error" then
        gone[#gone + 1] = "error"
      end
    end
    rcall("HSET", key, unpack(fields))
    rcall("HDEL", key, unpack(gone))
    later(batch, "ZREM", P .. "active", id)
    later(batch, "ZREM", P .. "state:active", id)
    later(batch, "ZADD", P .. "state:" .. state, created_at, id)
    later(batch, "ZADD", P .. "done:" .. state, finished_at, id)
    if expires_at ~= "" then later(batch, "ZADD", P .. "expiry", expires_at, id) end
    emit_stream(id, state, ARGV[i + 5]) -- the timeline is in the HSET above
    if state == "failed" then index_failed(id, created_at, ARGV[i + 10]) end
    note_flow_child(id, now, f[7])
    do
      local keep = ARGV[i + 8]
      if keep ~= "" then
        if trims[state] == nil or tonumber(keep) < trims[state] then trims[state] = tonumber(keep) end
      end
    end
    accepted[#accepted + 1] = 1
  end
end
flush(batch) -- before the trims and the claim read those indexes
for state, keep in pairs(trims) do trim_done(state, keep) end

local claimed = {}
local next_due = ""
local wake_at = ""
local meta = claim > 0 and rcall("HMGET", KEYS[1], "paused", "concurrency", "rate", "period_ms",
  "backoff_until")
if claim > 0 and meta[1] ~= "1" then
  local due = rcall("ZRANGEBYSCORE", P .. "scheduled", "-inf", now, "LIMIT", 0, 1000)
  for _, id in ipairs(due) do
    local f = rcall("HMGET", job_key(id), "created_at", "run_at", "priority", "seq")
    rcall("ZREM", P .. "scheduled", id)
    make_due(id, f[1], "scheduled", f[2], now, f[3], f[4])
  end
  if meta[3] then
    -- Times come from the clients, and a client's call may run after a later one's: the
    -- rate's log only moves forward (and so do the claims' started_at), or a window could
    -- hold more than the rate.
    local newest = rcall("ZRANGE", P .. "claims", -1, -1, "WITHSCORES")
    if #newest > 0 and tonumber(newest[2]) > tonumber(now) then
      now = string.format("%.0f", tonumber(newest[2]))
    end
  end
  local allowed
  allowed, wake_at = limits_room(tonumber(now), meta[2], meta[3], meta[4], meta[5])
  local members = {}
  if allowed > 0 then members = pop_ready(math.min(claim, allowed)) end
  local payloads = {}
  if #members > 0 then
    local keys = {}
    for i, member in ipairs(members) do keys[i] = args_key(string.sub(member, 18)) end
    payloads = rcall("MGET", unpack(keys))
  end
  for i, member in ipairs(members) do
    local id = string.sub(member, 18)
    local key = job_key(id)
    local f = rcall("HMGET", key, "task", "payload", "options", "run_at", "created_at", "priority",
      "attempts", "fence")
    if payloads[i] then f[2] = payloads[i] end -- else a job older than args: keys (lib.lua)
    local attempts, fence = tonumber(f[7] or 0) + 1, tonumber(f[8] or 0) + 1
    rcall("HSET", key, "state", "active", "token", token, "worker", worker,
      "lease_until", lease_until, "started_at", now, "cancel_requested", "0",
      "attempts", attempts, "fence", fence)
    later(batch, "ZREM", P .. "state:waiting", id)
    later(batch, "ZADD", P .. "state:active", f[5], id)
    later(batch, "ZADD", P .. "active", lease_until, id)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = f[1]
    claimed[#claimed + 1] = f[2]
    claimed[#claimed + 1] = f[3]
    claimed[#claimed + 1] = attempts
    claimed[#claimed + 1] = f[4]
    claimed[#claimed + 1] = f[5]
    claimed[#claimed + 1] = f[6]
    claimed[#claimed + 1] = fence
  end
  flush(batch)
  if meta[3] then log_claims(now, token, #members) end
  -- Wake another worker only if the limits leave room: else idle workers would spin.
  if allowed > #members and rcall("ZCARD", P .. "ready") > 0 then wake_workers() end
  if #claimed == 0 then
    local first = rcall("ZRANGE", P .. "scheduled", 0, 0, "WITHSCORES")
    if #first > 0 then next_due = first[2] end
  end
end
return { accepted, claimed, next_due, wake_at }
