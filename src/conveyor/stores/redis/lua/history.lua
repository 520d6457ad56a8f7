-- The metrics history (stores/history.py): minute counts in one hash per (kind, hour).
-- KEYS[1]  "cv:{history}:hours", a zset: "<kind>:<hour>" of every hash, by hour
-- Keys, with H = "cv:{history}:" (one hash tag: one cluster slot):
--   H..kind..":"..hour   hash: "<minute>\x1f<labels>" -> count (labels \x1f-joined)
-- ARGV     "add", then per row: kind, minute, labels, value (4 values each)
--          or "trim", before_minute
-- Returns  add: nothing; trim: how many (series, minute) counts were dropped
local rcall = redis.call
local H = string.sub(KEYS[1], 1, -6)
local action = ARGV[1]

if action == "add" then
  for i = 2, #ARGV, 4 do
    local kind, minute = ARGV[i], tonumber(ARGV[i + 1])
    local hour = string.format("%.0f", math.floor(minute / 60))
    rcall("HINCRBY", H .. kind .. ":" .. hour, ARGV[i + 1] .. "\031" .. ARGV[i + 2], ARGV[i + 3])
    rcall("ZADD", KEYS[1], hour, kind .. ":" .. hour)
  end
  return {}
end

local before = tonumber(ARGV[2])
local cut = math.floor(before / 60)
local dropped = 0
for _, name in ipairs(rcall("ZRANGEBYSCORE", KEYS[1], "-inf", "(" .. cut)) do
  dropped = dropped + rcall("HLEN", H .. name)
  rcall("DEL", H .. name)
  rcall("ZREM", KEYS[1], name)
end
-- The hour the cut falls in keeps its minutes from the cut on.
for _, name in ipairs(rcall("ZRANGEBYSCORE", KEYS[1], cut, cut)) do
  local flat = rcall("HKEYS", H .. name)
  for _, field in ipairs(flat) do
    if tonumber(string.match(field, "^(%d+)")) < before then
      rcall("HDEL", H .. name, field)
      dropped = dropped + 1
    end
  end
  if rcall("EXISTS", H .. name) == 0 then rcall("ZREM", KEYS[1], name) end
end
return dropped
