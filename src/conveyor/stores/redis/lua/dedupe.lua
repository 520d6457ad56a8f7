-- Enqueue jobs under debounce or throttle keys (see stores/dedupe.py).
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per job: mode ("debounce" | "throttle"), key, until (ms), id,
--          task, payload, options, priority, run_at, created_at, max_stalled, search keys
--          ("\n"-joined index keys) (12 each)
-- Returns  per job: the id its key now points to, 1 if it was inserted else 0
-- A key holds "<id>\n<until>": whether it still holds is decided by `until` against
-- the caller's clock (`now`); its server TTL only frees it a minute after that.
local now = ARGV[1]
local GC_SLACK_MS = 60000

local function held_by(dkey)
  local value = rcall("GET", dkey)
  if not value then return nil end
  local id, till = string.match(value, "^(.*)\n(%d+)$")
  if not id then return value end -- written before the window was kept in the value
  if tonumber(till) <= tonumber(now) then return nil end
  return id
end

local function point(dkey, id, expires)
  rcall("SET", dkey, id .. "\n" .. expires, "PX",
    math.max(1, tonumber(expires) - tonumber(now)) + GC_SLACK_MS)
end
local answers = {}
local any_ready = false
for i = 2, #ARGV, 12 do
  local mode, dkey, expires = ARGV[i], P .. "dedupe:" .. ARGV[i + 1], ARGV[i + 2]
  local id, task, payload, options = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local priority, run_at = ARGV[i + 7], ARGV[i + 8]
  local held = held_by(dkey)
  local answer = nil
  if held and mode == "throttle" then
    if rcall("EXISTS", job_key(held)) == 1 then answer = held end
  elseif held then
    local f = rcall("HMGET", job_key(held), "state", "created_at", "seq")
    if f[1] == "scheduled" or f[1] == "waiting" then
      rcall("ZREM", P .. "ready", ready_member(f[3], held))
      rcall("ZREM", P .. "scheduled", held)
      rcall("SET", args_key(held), payload)
      rcall("HDEL", job_key(held), "payload") -- kept there by jobs older than args: keys
      rcall("HSET", job_key(held), "options", options, "priority", priority, "run_at", run_at)
      set_keys(held, f[2], ARGV[i + 11]) -- the latest call's fields (pending: no error keys)
      if make_due(held, f[2], f[1], run_at, now, priority, f[3]) then any_ready = true end
      point(dkey, held, expires)
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
    point(dkey, id, expires)
    answers[#answers + 1] = id
    answers[#answers + 1] = inserted and 1 or 0
  end
end
if any_ready then wake_workers() end
return answers
