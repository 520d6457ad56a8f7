-- Enqueue jobs under debounce or throttle keys (see stores/dedupe.py).
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per job: mode ("debounce" | "throttle"), key, until (ms), id,
--          task, payload, options, priority, run_at, created_at, max_stalled, search keys
--          ("\n"-joined index keys) (12 each)
-- Returns  per job: the id its key now points to, 1 if it was inserted else 0
local now = ARGV[1]
local answers = {}
local any_ready = false
for i = 2, #ARGV, 12 do
  local mode, dkey, expires = ARGV[i], P .. "dedupe:" .. ARGV[i + 1], ARGV[i + 2]
  local id, task, payload, options = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local priority, run_at = ARGV[i + 7], ARGV[i + 8]
  local held = rcall("GET", dkey)
  local answer = nil
  if held and mode == "throttle" then
    if rcall("EXISTS", job_key(held)) == 1 then answer = held end
  elseif held then
    local f = rcall("HMGET", job_key(held), "state", "created_at", "seq")
    if f[1] == "scheduled" or f[1] == "waiting" then
      rcall("ZREM", P .. "ready", ready_member(f[3], held))
      rcall("ZREM", P .. "scheduled", held)
      rcall("HSET", job_key(held), "payload", payload, "options", options,
        "priority", priority, "run_at", run_at)
      set_keys(held, f[2], ARGV[i + 11]) -- the latest call's fields (pending: no error keys)
      if make_due(held, f[2], f[1], run_at, now, priority, f[3]) then any_ready = true end
      rcall("SET", dkey, held, "PXAT", expires)
      answer = held
    end
  end
  if answer then
    answers[#answers + 1] = answer
    answers[#answers + 1] = 0
  else
    local inserted, ready = insert_job(id, task, payload, options, priority, run_at,
      ARGV[i + 9], ARGV[i + 10], now, ARGV[i + 11])
    if ready then any_ready = true end
    rcall("SET", dkey, id, "PXAT", expires)
    answers[#answers + 1] = id
    answers[#answers + 1] = inserted and 1 or 0
  end
end
if any_ready then wake_workers() end
return answers
