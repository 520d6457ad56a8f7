-- Queue limits, enforced by the claim in exchange.lua (prepended to it after lib.lua;
-- the semantics are in stores/limits.py). Keys of a queue with limits, P as in lib.lua:
--   P.."meta"            hash fields: concurrency, rate, period_ms, backoff_until
--   P.."tasklimits"      hash: task -> at most this many of its jobs active at once
--   P.."running:"..task  set: ids of a limited task's claimed jobs; each claim drops the
--                        ones no longer active, so it stays near the task's limit in size
--   P.."parked:"..task   zset: ready jobs of a task that was full, by their ready score;
--                        moved back to ready only as that task's slots free up
--   P.."claims"          zset: the rate limit's sliding log, one member per claimed job

-- How many jobs the queue's limits let a claim take now (math.huge: no limit), and when
-- a claim stopped by the rate limit or a back-off may try again ("" if unknown).
local function limits_room(now, concurrency, rate, period_ms, backoff_until)
  if backoff_until and tonumber(backoff_until) > now then return 0, backoff_until end
  local room, wake_at = math.huge, ""
  if concurrency then room = tonumber(concurrency) - rcall("ZCARD", P .. "active") end
  if rate then
    local period = tonumber(period_ms or 1000)
    rcall("ZREMRANGEBYSCORE", P .. "claims", "-inf", now - period)
    local free = tonumber(rate) - rcall("ZCARD", P .. "claims")
    if free <= 0 then
      local oldest = rcall("ZRANGE", P .. "claims", 0, 0, "WITHSCORES")
      if #oldest > 0 then wake_at = string.format("%.0f", tonumber(oldest[2]) + period) end
    end
    room = math.min(room, free)
  end
  return math.max(room, 0), wake_at
end

local function log_claims(now, token, count)
  for i = 1, count do rcall("ZADD", P .. "claims", now, token .. ":" .. i) end
end

-- Active jobs of a limited task (dropping the ids that are no longer active).
local function running_count(task)
  local key = P .. "running:" .. task
  local n = 0
  for _, id in ipairs(rcall("SMEMBERS", key)) do
    if rcall("HGET", job_key(id), "state") == "active" then n = n + 1 else rcall("SREM", key, id) end
  end
  return n
end

-- Move up to n parked jobs of a task back to ready. Entries of jobs no longer waiting
-- (cancelled, removed, moved) are dropped and do not count against n.
local function unpark(task, n)
  local moved = 0
  while moved < n do
    local popped = rcall("ZPOPMIN", P .. "parked:" .. task, n - moved)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do
      local member = popped[j]
      local id = string.sub(member, 18)
      local f = rcall("HMGET", job_key(id), "state", "priority", "run_at", "seq")
      if f[1] == "waiting" and ready_member(f[4], id) == member then
        rcall("ZADD", P .. "ready", ready_score(f[2], f[3]), member)
        moved = moved + 1
      end
    end
  end
  return moved
end

-- Pop up to `room` ready members in claim order; a job of a task at its limit is parked.
local function pop_ready(room)
  local members = {}
  local flat = rcall("HGETALL", P .. "tasklimits")
  if #flat == 0 then
    local popped = rcall("ZPOPMIN", P .. "ready", room)
    for j = 1, #popped, 2 do members[#members + 1] = popped[j] end
    return members
  end
  local free = {}
  for i = 1, #flat, 2 do
    free[flat[i]] = tonumber(flat[i + 1]) - running_count(flat[i])
    if free[flat[i]] > 0 then unpark(flat[i], free[flat[i]]) end
  end
  while #members < room do
    local popped = rcall("ZPOPMIN", P .. "ready", room - #members)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do
      local id = string.sub(popped[j], 18)
      local task = rcall("HGET", job_key(id), "task")
      local left = free[task]
      if left == nil or left > 0 then
        if left ~= nil then
          free[task] = left - 1
          rcall("SADD", P .. "running:" .. task, id)
        end
        members[#members + 1] = popped[j]
      else
        rcall("ZADD", P .. "parked:" .. task, popped[j + 1], popped[j])
      end
    end
  end
  return members
end
