-- Insert jobs into one queue; a job whose id exists is left as it is.
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per job: id, task, payload, options, priority, run_at,
--          created_at, max_stalled, search keys ("\n"-joined index keys) (9 values each:
--          scripts.insert_args)
-- Returns  per job 1 if inserted, 0 if the id existed
local now = ARGV[1]
local created = {}
local any_ready = false
-- One job (a one-by-one enqueue) has nothing to gather: its writes go out as they come.
local batch = #ARGV > 10 and new_batch() or nil
-- Every id into the ids index first, in one call: when each one was new there, none can
-- have a job, and no job needs its own EXISTS (the usual case); else each is looked up.
local added, count = 0, 0
for first = 2, #ARGV, 9 * 500 do
  local pairs_ = {}
  for i = first, math.min(first + 9 * 499, #ARGV - 8), 9 do
    pairs_[#pairs_ + 1] = 0
    pairs_[#pairs_ + 1] = ARGV[i]
    count = count + 1
  end
  added = added + rcall("ZADD", P .. "ids", "NX", unpack(pairs_))
end
local in_ids = added == count and "checked" or "added"
for i = 2, #ARGV, 9 do
  local inserted, ready = insert_into(batch, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], now, ARGV[i + 8], in_ids)
  if ready then any_ready = true end
  created[#created + 1] = inserted and 1 or 0
end
if batch then flush(batch) end
if any_ready then wake_workers() end
return created
