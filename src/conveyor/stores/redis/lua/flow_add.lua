-- Insert the jobs of a flow that belong to one queue (redis/flows.py calls it once per
-- queue, the root's queue last, so a root that exists means its whole flow was written).
-- KEYS[1]  the queue's meta key
-- ARGV     now, then per job: id, task, payload, options, priority, run_at, created_at,
--          max_stalled, search keys ("\n"-joined index keys) (insert_job's nine values,
--          scripts.insert_args), then parent ("" for the root: else the JSON link
--          [queue, id] of its parent), children (JSON [[queue, id], ...], "" for a leaf),
--          count of children, policy, keep_ms (14 values each)
-- Returns  per job 1 if inserted, 0 if its id existed
local now = ARGV[1]
local created = {}
local any_ready = false
for i = 2, #ARGV, 14 do
  local id, parent, children = ARGV[i], ARGV[i + 9], ARGV[i + 10]
  local inserted = false
  if children == "" then
    local ready
    inserted, ready = insert_job(id, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4],
      ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], now, ARGV[i + 8])
    if ready then any_ready = true end
  elseif rcall("EXISTS", job_key(id)) == 0 then
    -- A parent: never claimed until its last child reports (flow_deliver.lua).
    inserted = true
    rcall("SET", args_key(id), ARGV[i + 2])
    rcall("HSET", job_key(id), "task", ARGV[i + 1], "options", ARGV[i + 3],
      "priority", ARGV[i + 4], "run_at", ARGV[i + 5], "created_at", ARGV[i + 6],
      "max_stalled", ARGV[i + 7], "attempts", 0, "stalls", 0,
      "seq", rcall("INCR", P .. "seq"), "cancel_requested", "0", "state", "waiting-children")
    rcall("ZADD", P .. "state:waiting-children", ARGV[i + 6], id)
    index_job(id, ARGV[i + 1], ARGV[i + 6], ARGV[i + 8])
    rcall("DEL", P .. "flow:" .. id)
    rcall("HSET", P .. "flow:" .. id, "order", children, "pending", ARGV[i + 11],
      "policy", ARGV[i + 12], "keep_ms", ARGV[i + 13])
  end
  if inserted and parent ~= "" then rcall("HSET", job_key(id), "parent", parent) end
  created[#created + 1] = inserted and 1 or 0
end
if any_ready then wake_workers() end
return created
