-- Extend the leases of held jobs.
-- KEYS[1]  the queue's meta key
-- ARGV     lease_until, then per lease: id, token
-- Returns  flat pairs id, status for leases that are "lost" or whose job is to "cancel"
local lease_until = ARGV[1]
local out = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = rcall("HMGET", job_key(id), "token", "state", "cancel_requested")
  if f[1] ~= token or f[2] ~= "active" then
    out[#out + 1] = id
    out[#out + 1] = "lost"
  else
    rcall("HSET", job_key(id), "lease_until", lease_until)
    rcall("ZADD", P .. "active", lease_until, id)
    if f[3] == "1" then
      out[#out + 1] = id
      out[#out + 1] = "cancel"
    end
  end
end
return out
