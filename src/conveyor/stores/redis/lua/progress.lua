-- Write progress and log lines of running jobs, under their leases.
-- KEYS[1]  the queue's meta key
-- ARGV     max_log_lines, then per update: id, token, progress ("" for none), n,
--          then n log lines as "<ms>\t<line>"
-- Returns  flat pairs id, status for updates that are "lost" or whose job is to "cancel"
local max_lines = tonumber(ARGV[1])
local out = {}
local i = 2
while i <= #ARGV do
  local id, token, progress, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local f = rcall("HMGET", job_key(id), "token", "state", "cancel_requested")
  if f[1] ~= token or f[2] ~= "active" then
    out[#out + 1] = id
    out[#out + 1] = "lost"
  else
    if progress ~= "" then
      rcall("HSET", job_key(id), "progress", progress)
      emit(id, "progress", nil, progress)
    end
    if n > 0 then
      local logs = P .. "logs:" .. id
      for j = i + 4, i + 3 + n do rcall("RPUSH", logs, ARGV[j]) end
      rcall("LTRIM", logs, -max_lines, -1)
    end
    if f[3] == "1" then
      out[#out + 1] = id
      out[#out + 1] = "cancel"
    end
  end
  i = i + 4 + n
end
return out
