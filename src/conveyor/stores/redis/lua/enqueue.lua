-- Insert jobs into one queue; a job whose id exists is left as it is.
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per job: id, task, payload, options, priority, run_at,
--          created_at, max_stalled (8 values each)
-- Returns  per job 1 if inserted, 0 if the id existed
local now = ARGV[1]
local created = {}
local any_ready = false
for i = 2, #ARGV, 8 do
  local id = ARGV[i]
  local key = job_key(id)
  if rcall("EXISTS", key) == 1 then
    created[#created + 1] = 0
  else
    local seq = rcall("INCR", P .. "seq")
    local priority, run_at, created_at = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    rcall("HSET", key, "task", ARGV[i + 1], "payload", ARGV[i + 2], "options", ARGV[i + 3],
      "priority", priority, "run_at", run_at, "created_at", created_at,
      "max_stalled", ARGV[i + 7], "attempts", 0, "stalls", 0, "seq", seq,
      "cancel_requested", "0", "state", "new")
    if make_due(id, created_at, "new", run_at, now, priority, seq) then any_ready = true end
    created[#created + 1] = 1
  end
end
if any_ready then wake_workers() end
return created
