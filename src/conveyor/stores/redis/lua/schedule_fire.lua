-- Fire schedules of this queue: per schedule, a compare-and-set on its version and
-- next_fire, and if it holds, the insert of the tick's jobs (deterministic ids: a
-- replayed fire inserts nothing) and the move to its following tick.
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per fire: name, version, expected next_fire, new next_fire,
--          last_fire ("" for none), n (jobs), then per job: id, task, payload,
--          options, priority, run_at, created_at, max_stalled, search keys (9 values each)
-- Returns  per fire 1 if applied, 0 if the schedule changed meanwhile
local now = ARGV[1]
local applied = {}
local any_ready = false
local i = 2
while i <= #ARGV do
  local name, version, expected = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local next_fire, last_fire, n = ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5])
  local key = P .. "schedule:" .. name
  local f = rcall("HMGET", key, "version", "next_fire")
  if f[1] == version and f[2] == expected then
    for j = i + 6, i + 5 + n * 9, 9 do
      local _, ready = insert_job(ARGV[j], ARGV[j + 1], ARGV[j + 2], ARGV[j + 3], ARGV[j + 4],
        ARGV[j + 5], ARGV[j + 6], ARGV[j + 7], now, ARGV[j + 8])
      if ready then any_ready = true end
    end
    rcall("HSET", key, "next_fire", next_fire)
    if last_fire ~= "" then rcall("HSET", key, "last_fire", last_fire) end
    rcall("ZADD", P .. "schedules", next_fire, name)
    applied[#applied + 1] = 1
  else
    applied[#applied + 1] = 0
  end
  i = i + 6 + n * 9
end
if any_ready then wake_workers() end
return applied
