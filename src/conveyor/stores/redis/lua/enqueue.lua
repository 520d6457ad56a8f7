-- Insert jobs into one queue; a job whose id exists is left as it is.
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per job: id, task, payload, options, priority, run_at,
--          created_at, max_stalled, search keys ("\n"-joined index keys) (9 values each)
-- Returns  per job 1 if inserted, 0 if the id existed
local now = ARGV[1]
local created = {}
local any_ready = false
for i = 2, #ARGV, 9 do
  local inserted, ready = insert_job(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
    ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], now, ARGV[i + 8])
  if ready then any_ready = true end
  created[#created + 1] = inserted and 1 or 0
end
if any_ready then wake_workers() end
return created
