-- Return jobs whose lease expired to waiting, or fail them once they stalled
-- more than max_stalled times (a job asked to cancel ends cancelled).
-- KEYS[1]  the queue's meta key
-- ARGV     now, keep_failed_ms, exclusive_ms, worker, stalled_error, stalled_error_keys
--          exclusive_ms > 0: skip (return nothing) if another worker swept this
--          queue less than exclusive_ms ago, so one worker per interval does it;
--          stalled_error: the failed job's error (stores.base.STALLED_ERROR), whose
--          "{stalls}" gets the count; stalled_error_keys: its index keys ("\n"-joined)
-- Returns  flat triples id, task, outcome ("waiting", "failed" or "cancelled")
local now, keep_ms, exclusive_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if exclusive_ms > 0 then
  if not rcall("SET", P .. "sweeping", ARGV[4], "NX", "PX", exclusive_ms) then return {} end
end
local out = {}
local expired = rcall("ZRANGEBYSCORE", P .. "active", "-inf", "(" .. now, "LIMIT", 0, 1000)
for _, id in ipairs(expired) do
  local key = job_key(id)
  local f = rcall("HMGET", key, "stalls", "max_stalled", "created_at", "cancel_requested",
    "run_at", "priority", "seq", "task")
  local stalls = tonumber(f[1]) + 1
  clear_lease(id)
  rcall("HSET", key, "stalls", stalls)
  local attempts = rcall("HINCRBY", key, "attempts", -1)
  if attempts < 0 then rcall("HSET", key, "attempts", 0) end
  local outcome
  emit(id, "stalled", now)
  if f[4] == "1" then
    outcome = "cancelled"
    finish(id, f[3], "active", "cancelled", now, now + keep_ms)
    emit(id, "cancelled", now)
    note_flow_child(id, now)
  elseif stalls <= tonumber(f[2]) then
    outcome = "waiting"
    make_due(id, f[3], "active", f[5], now, f[6], f[7])
    wake_workers()
  else
    outcome = "failed"
    local err = string.gsub(ARGV[5], "{stalls}", tostring(stalls))
    rcall("HSET", key, "error", err)
    finish(id, f[3], "active", "failed", now, now + keep_ms)
    emit(id, "failed", now, err)
    index_failed(id, f[3], ARGV[6])
    note_flow_child(id, now)
  end
  out[#out + 1] = id
  out[#out + 1] = f[8]
  out[#out + 1] = outcome
end
return out
