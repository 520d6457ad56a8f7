-- The audit log (stores/audit.py): entries by sequence number, trimmed as they come.
-- KEYS[1]  "cv:{audit}:log", a zset: "<seq>|<at>|<entry JSON>" by seq
-- Keys     "cv:{audit}:seq", the counter of entries (one hash tag: one cluster slot)
-- ARGV     at, entry JSON, keep (entries), cutoff (entries older than it go, ms)
-- Returns  the new entry's seq
local rcall = redis.call
local seq = rcall("INCR", string.sub(KEYS[1], 1, -4) .. "seq")
rcall("ZADD", KEYS[1], seq, seq .. "|" .. ARGV[1] .. "|" .. ARGV[2])
rcall("ZREMRANGEBYRANK", KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
local cutoff = tonumber(ARGV[4])
while true do
  local oldest = rcall("ZRANGE", KEYS[1], 0, 99)
  local gone = 0
  for _, member in ipairs(oldest) do
    if tonumber(string.match(member, "^%d+|(%d+)|")) >= cutoff then break end
    rcall("ZREM", KEYS[1], member)
    gone = gone + 1
  end
  if gone < 100 then break end
end
return seq
