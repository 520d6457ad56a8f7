-- Insert, replace or remove one schedule of this queue.
-- KEYS[1]  the queue's meta key
-- ARGV     "put", name, task, timing, payload, options, priority, max_stalled, missed,
--          grace_ms, next_fire, last_fire ("" for none), now
--          or "remove", name
--          or "pause", name, paused ("1" or "0"), now
-- Returns  1 if something changed (pause: if the schedule exists), else 0. A schedule
--          that keeps its timing keeps its next_fire and last_fire; every change bumps
--          its version. A paused schedule stays paused when put again, and is out of the
--          due index (P.."schedules") until resumed.
local op, name = ARGV[1], ARGV[2]
local key = P .. "schedule:" .. name
if op == "remove" then
  rcall("ZREM", P .. "schedules", name)
  return rcall("DEL", key)
end
if op == "pause" then
  if rcall("EXISTS", key) == 0 then return 0 end
  rcall("HSET", key, "paused", ARGV[3], "updated_at", ARGV[4])
  rcall("HINCRBY", key, "version", 1)
  if ARGV[3] == "1" then
    rcall("ZREM", P .. "schedules", name)
  else
    rcall("ZADD", P .. "schedules", rcall("HGET", key, "next_fire"), name)
  end
  return 1
end

local names = { "task", "timing", "payload", "options", "priority", "max_stalled", "missed",
  "grace_ms" }
local old = rcall("HMGET", key, unpack(names))
if old[2] then
  local same = true
  for i = 1, #names do
    if old[i] ~= ARGV[i + 2] then same = false end
  end
  if same then return 0 end
end
local fields = {}
for i = 1, #names do
  fields[#fields + 1] = names[i]
  fields[#fields + 1] = ARGV[i + 2]
end
local next_fire, last_fire = ARGV[11], ARGV[12]
if old[2] == ARGV[4] then
  local kept = rcall("HMGET", key, "next_fire", "last_fire")
  next_fire, last_fire = kept[1], kept[2] or ""
end
fields[#fields + 1] = "next_fire"
fields[#fields + 1] = next_fire
fields[#fields + 1] = "updated_at"
fields[#fields + 1] = ARGV[13]
rcall("HSET", key, unpack(fields))
if last_fire == "" then
  rcall("HDEL", key, "last_fire")
else
  rcall("HSET", key, "last_fire", last_fire)
end
rcall("HINCRBY", key, "version", 1)
if rcall("HGET", key, "paused") ~= "1" then rcall("ZADD", P .. "schedules", next_fire, name) end
return 1
