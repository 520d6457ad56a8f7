-- Apply finished children's results to their parents, which live in this queue.
-- Idempotent: a child is counted once (HSETNX of its state), whoever delivers it.
-- KEYS[1]  the queue's meta key
-- ARGV     now, whole ("1" when a flow is always written whole: one server, one MULTI/EXEC),
--          then per child: parent id, child id, state, value (result or error),
--          the error to give the parent if this child fails it, and that error's index
--          keys ("\n"-joined) (6 values each)
-- Returns  { per child 1 applied, 0 already applied or its parent is gone (nothing to
--            apply it to), -1 no such flow yet (a cluster add written halfway);
--            parents this call failed that are themselves children (to deliver next) }
local now = tonumber(ARGV[1])
local whole = ARGV[2] == "1"
local codes, failed = {}, {}
local any_ready = false
for i = 3, #ARGV, 6 do
  local parent, child, state = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local flow = P .. "flow:" .. parent
  if rcall("EXISTS", flow) == 0 then
    -- A parent is written with its flow: a missing flow with the job there (another job
    -- reusing its id) or on one server means the parent was removed or trimmed.
    local gone = whole or rcall("EXISTS", job_key(parent)) == 1
    codes[#codes + 1] = gone and 0 or -1
  elseif rcall("HSETNX", flow, "s:" .. child, state) == 0 then
    codes[#codes + 1] = 0
  else
    codes[#codes + 1] = 1
    rcall("HSET", flow, "v:" .. child, ARGV[i + 3])
    local pending = rcall("HINCRBY", flow, "pending", -1)
    local key = job_key(parent)
    local f = rcall("HMGET", key, "state", "created_at", "priority", "seq")
    local g = rcall("HMGET", flow, "policy", "keep_ms")
    if f[1] == "waiting-children" then
      if state ~= "completed" and g[1] == "fail" then
        rcall("HSET", key, "error", ARGV[i + 4])
        finish(parent, f[2], "waiting-children", "failed", now, now + tonumber(g[2]))
        emit(parent, "failed", now, ARGV[i + 4])
        index_failed(parent, f[2], ARGV[i + 5])
        if rcall("HEXISTS", key, "parent") == 1 then
          note_flow_child(parent, now)
          failed[#failed + 1] = parent
        end
      elseif pending <= 0 then
        rcall("HSET", key, "run_at", now)
        make_due(parent, f[2], "waiting-children", now, now, f[3], f[4])
        any_ready = true
      end
    end
  end
end
if any_ready then wake_workers() end
return { codes, failed }
