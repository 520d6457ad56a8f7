-- Back a queue off (QueueBackoff): no claim before `until`; release.lua, appended to
-- this script, then gives the leases back in the same step.
-- KEYS[1]  the queue's meta key
-- ARGV     until, then release.lua's: now, keep_ms, per lease: id, token
-- Returns  release.lua's answer
local backoff_until = table.remove(ARGV, 1)
local current = rcall("HGET", KEYS[1], "backoff_until")
if not current or tonumber(current) < tonumber(backoff_until) then
  rcall("HSET", KEYS[1], "backoff_until", backoff_until)
end
