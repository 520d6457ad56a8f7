-- Delete finished jobs whose retention age ran out, at most a batch per call.
-- KEYS[1]  the queue's meta key
-- ARGV     now, batch
-- Returns  how many jobs were deleted
local ids = rcall("ZRANGEBYSCORE", P .. "expiry", "-inf", ARGV[1], "LIMIT", 0, tonumber(ARGV[2]))
local deleted = 0
for _, id in ipairs(ids) do
  if delete_job(id) then deleted = deleted + 1 else rcall("ZREM", P .. "expiry", id) end
end
return deleted
