-- Set a queue's limits (limits.lua says where they live).
-- KEYS[1]  the queue's meta key
-- ARGV     "queue", concurrency, rate, period_ms     ("" for no limit)
--          "task", task, limit                        ("" removes it: its parked jobs
--                                                      go back to ready; setting it
--                                                      counts the task's active jobs)
local action = ARGV[1]
if action == "queue" then
  local fields = { "concurrency", "rate", "period_ms" }
  for i, name in ipairs(fields) do
    if ARGV[i + 1] == "" then rcall("HDEL", KEYS[1], name)
    else rcall("HSET", KEYS[1], name, ARGV[i + 1]) end
  end
  wake_workers()
  return 1
end
local task, limit = ARGV[2], ARGV[3]
if limit ~= "" then
  rcall("HSET", P .. "tasklimits", task, limit)
  -- The claim adds to running:<task> only the jobs it takes while the limit exists: count
  -- the task's jobs already active (claimed with no limit set) before any claim reads it.
  local running = P .. "running:" .. task
  rcall("DEL", running)
  for _, id in ipairs(rcall("ZRANGE", P .. "active", 0, -1)) do
    if rcall("HGET", job_key(id), "task") == task then rcall("SADD", running, id) end
  end
  wake_workers()
  return 1
end
rcall("HDEL", P .. "tasklimits", task)
local parked = P .. "parked:" .. task
local members = rcall("ZRANGE", parked, 0, -1, "WITHSCORES")
for j = 1, #members, 2 do
  local id = string.sub(members[j], 18)
  if rcall("HGET", job_key(id), "state") == "waiting" then
    rcall("ZADD", P .. "ready", members[j + 1], members[j])
  end
end
rcall("DEL", parked, P .. "running:" .. task)
wake_workers()
return 1
