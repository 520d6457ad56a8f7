-- The metrics history (stores/history.py): minute counts in a hash per (kind, hour), hour
-- sums in a hash per (kind, day).
-- KEYS[1]  "cv:{history}:hours", a zset: "<kind>:<hour>" of every minute hash, by hour
-- Keys, with H = "cv:{history}:" (one hash tag: one cluster slot):
--   H..kind..":"..hour      hash: "<minute>\x1f<labels>" -> count (labels \x1f-joined)
--   H..kind..":d:"..day     hash: "<hour>\x1f<labels>" -> the hour's count
--   H.."days"               zset: "<kind>:d:<day>" of every hour hash, by day
-- ARGV     "add", then per row: kind, minute, labels, value (4 values each)
--          or "trim", before_minute: drop the minutes before it and the hours that end
--          before it
-- Returns  add: nothing; trim: how many (series, minute) counts were dropped
local rcall = redis.call
local H = string.sub(KEYS[1], 1, -6)
local DAYS = H .. "days"
local action = ARGV[1]

local function text(n) return string.format("%.0f", n) end

if action == "add" then
  for i = 2, #ARGV, 4 do
    local kind, minute, labels, value = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
    local hour = math.floor(minute / 60)
    local day = math.floor(hour / 24)
    rcall("HINCRBY", H .. kind .. ":" .. text(hour), ARGV[i + 1] .. "\031" .. labels, value)
    rcall("ZADD", KEYS[1], hour, kind .. ":" .. text(hour))
    rcall("HINCRBY", H .. kind .. ":d:" .. text(day), text(hour) .. "\031" .. labels, value)
    rcall("ZADD", DAYS, day, kind .. ":d:" .. text(day))
  end
  return {}
end

-- Drop the hashes of `index` scored below `cut`; in those scored `cut`, the fields whose
-- leading number is below `below`. Returns how many fields went.
local function trim(index, cut, below)
  local dropped = 0
  for _, name in ipairs(rcall("ZRANGEBYSCORE", index, "-inf", "(" .. cut)) do
    dropped = dropped + rcall("HLEN", H .. name)
    rcall("DEL", H .. name)
    rcall("ZREM", index, name)
  end
  for _, name in ipairs(rcall("ZRANGEBYSCORE", index, cut, cut)) do
    for _, field in ipairs(rcall("HKEYS", H .. name)) do
      if tonumber(string.match(field, "^(%d+)")) < below then
        rcall("HDEL", H .. name, field)
        dropped = dropped + 1
      end
    end
    if rcall("EXISTS", H .. name) == 0 then rcall("ZREM", index, name) end
  end
  return dropped
end

local before = tonumber(ARGV[2])
local dropped = trim(KEYS[1], math.floor(before / 60), before)
local hours_cut = math.floor(before / 60) -- an hour goes with its last minute
trim(DAYS, math.floor(hours_cut / 24), hours_cut)
return dropped
