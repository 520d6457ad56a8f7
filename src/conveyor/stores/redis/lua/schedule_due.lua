-- The schedules of this queue that are due, and when the next of the others is.
-- KEYS[1]  the queue's meta key
-- ARGV     now, limit
-- Returns  { { name, { field, value, ... } } per due schedule (earliest first),
--          the earliest next_fire after now, or "" }
local now = ARGV[1]
local names = rcall("ZRANGEBYSCORE", P .. "schedules", "-inf", now, "LIMIT", 0, ARGV[2])
local rows = {}
for _, name in ipairs(names) do
  rows[#rows + 1] = { name, rcall("HGETALL", P .. "schedule:" .. name) }
end
local later = rcall("ZRANGEBYSCORE", P .. "schedules", "(" .. now, "+inf", "WITHSCORES",
  "LIMIT", 0, 1)
return { rows, later[2] or "" }
