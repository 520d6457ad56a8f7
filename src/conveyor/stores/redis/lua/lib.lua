-- Shared helpers, prepended to every script of this folder when it is loaded.
-- Every script gets KEYS[1] = "<prefix>meta" of one queue; the other keys of that
-- queue are built from the prefix and all share the queue's {hash tag}, so a
-- script touches one cluster slot only.
--
-- Keys of a queue, with P = "cv:{<queue>}:":
--   P.."meta"            hash: paused, and the queue's limits (their keys: limits.lua)
--   P.."seq"             counter: enqueue order (FIFO within a priority and run_at)
--   P.."job:"..id        hash: the job's fields
--   P.."logs:"..id       list: "<ms>\t<line>"
--   P.."ready"           zset: waiting jobs, score = priority and run_at, member = seq:id
--   P.."scheduled"       zset: scheduled jobs by run_at
--   P.."active"          zset: active jobs by lease_until
--   P.."state:"..s       zset: jobs in state s by created_at (listing, counts)
--   P.."done:"..s        zset: finished jobs in state s by finished_at (count retention)
--   P.."expiry"          zset: finished jobs by expires_at (age retention)
--   P.."marker"          list: a token pushed when jobs are ready; workers block on it
--   P.."schedule:"..name hash: a schedule whose jobs go to this queue (redis/schedules.py)
--   P.."schedules"       zset: this queue's schedule names by next fire time
--   P.."dedupe:"..key    string: the job a debounce/throttle key points to (expires)
--   P.."events"          stream: job events (job, kind, data), capped near EVENTS_KEPT entries
--   P.."flow:"..id       hash: a flow parent's children and results (redis/flows.py)
--   P.."flow:outbox"     hash: finished flow children of this queue not yet delivered to
--                        their parent: id -> "<state>\n<parent link>\n<result or error>"
--   P.."flow:due"        zset: those children by finish time (the sweep repairs old ones),
--                        or by when to try again if their parent's flow was not written yet
--   P.."flow:noted"      hash: id -> finish time, of those tried again (their age)
--   P.."task:"..name     zset: every job of the task by created_at (search by task)
--   P.."ids"             zset, all scores 0: every job id, in byte order (search by prefix)
--   P.."search:"..key    zset: jobs with that index key (stores/search.py) by created_at: a
--                        searchable field, or the error type or a message word of a failed job
--   P.."timeline:"..id   list: the job's events but progress, "<ms>\t<kind>\t<data>", the
--                        newest EVENTS_PER_JOB (events_of)
-- A job hash's "keys" field lists its index keys, one a line (deleted with it).
local rcall = redis.call
local P = string.sub(KEYS[1], 1, -5)
local PRIORITY_SPAN = 4398046511104 -- 2^42 ms: run_at fits below it until 2109
local EVENTS_KEPT = 10000 -- stores.base.EVENTS_KEPT
local EVENTS_PER_JOB = 100 -- stores.base.EVENTS_PER_JOB

local function job_key(id) return P .. "job:" .. id end

-- Append a job event to the queue's capped stream, in the same script as the change, and
-- but for progress to the job's timeline (`now`: the clients' time; nil for progress).
local function emit(id, kind, now, data)
  rcall("XADD", P .. "events", "MAXLEN", "~", EVENTS_KEPT, "*", "job", id, "kind", kind,
    "data", data or "")
  if kind ~= "progress" then
    local timeline = P .. "timeline:" .. id
    local entry = string.format("%.0f", tonumber(now)) .. "\t" .. kind .. "\t" .. (data or "")
    if rcall("RPUSH", timeline, entry) > EVENTS_PER_JOB then
      rcall("LTRIM", timeline, -EVENTS_PER_JOB, -1)
    end
  end
end

-- Lines of a "\n"-joined text (index keys), as a list.
local function lines(text)
  local out = {}
  if text and text ~= "" then
    for line in string.gmatch(text, "[^\n]+") do out[#out + 1] = line end
  end
  return out
end

-- Give a job the index keys of its searchable fields ("\n"-joined, or ""), replacing any.
local function set_keys(id, created_at, keys)
  for _, key in ipairs(lines(rcall("HGET", job_key(id), "keys"))) do
    rcall("ZREM", P .. "search:" .. key, id)
  end
  if keys == nil or keys == "" then
    rcall("HDEL", job_key(id), "keys")
    return
  end
  rcall("HSET", job_key(id), "keys", keys)
  for _, key in ipairs(lines(keys)) do rcall("ZADD", P .. "search:" .. key, created_at, id) end
end

-- Index a new job: by task, by id, and under its index keys ("\n"-joined, or "").
local function index_job(id, task, created_at, keys)
  rcall("ZADD", P .. "task:" .. task, created_at, id)
  rcall("ZADD", P .. "ids", 0, id)
  if keys ~= nil and keys ~= "" then set_keys(id, created_at, keys) end
end

-- A job that just failed: index its error keys ("\n"-joined, from stores.search.error_keys).
local function index_failed(id, created_at, error_keys)
  if error_keys == nil or error_keys == "" then return end
  local keys = rcall("HGET", job_key(id), "keys")
  rcall("HSET", job_key(id), "keys", (keys and keys ~= "") and (keys .. "\n" .. error_keys)
    or error_keys)
  for _, key in ipairs(lines(error_keys)) do
    rcall("ZADD", P .. "search:" .. key, created_at, id)
  end
end

-- A failed job that is no longer failed (retried): drop its error keys ("e:", "w:").
local function unindex_failed(id)
  local kept = {}
  for _, key in ipairs(lines(rcall("HGET", job_key(id), "keys"))) do
    local kind = string.sub(key, 1, 2)
    if kind == "e:" or kind == "w:" then
      rcall("ZREM", P .. "search:" .. key, id)
    else
      kept[#kept + 1] = key
    end
  end
  if #kept > 0 then
    rcall("HSET", job_key(id), "keys", table.concat(kept, "\n"))
  else
    rcall("HDEL", job_key(id), "keys")
  end
end

local function ready_score(priority, run_at)
  return string.format("%.0f", (1000 - tonumber(priority)) * PRIORITY_SPAN + tonumber(run_at))
end

local function ready_member(seq, id) return string.format("%016d", tonumber(seq)) .. ":" .. id end

local function move_state(id, created_at, old, new)
  rcall("ZREM", P .. "state:" .. old, id)
  rcall("ZADD", P .. "state:" .. new, created_at, id)
  rcall("HSET", job_key(id), "state", new)
end

-- Make a job due: waiting if run_at has come, else scheduled.
local function make_due(id, created_at, old, run_at, now, priority, seq)
  if tonumber(run_at) <= tonumber(now) then
    move_state(id, created_at, old, "waiting")
    rcall("ZADD", P .. "ready", ready_score(priority, run_at), ready_member(seq, id))
    return true
  end
  move_state(id, created_at, old, "scheduled")
  rcall("ZADD", P .. "scheduled", run_at, id)
  return false
end

-- Insert a job unless its id exists. Returns inserted, ready (ready: it is waiting now).
-- keys: its searchable fields' index keys, "\n"-joined ("" for none).
local function insert_job(id, task, payload, options, priority, run_at, created_at, max_stalled,
                          now, keys)
  local key = job_key(id)
  if rcall("EXISTS", key) == 1 then return false, false end
  local seq = rcall("INCR", P .. "seq")
  rcall("HSET", key, "task", task, "payload", payload, "options", options,
    "priority", priority, "run_at", run_at, "created_at", created_at,
    "max_stalled", max_stalled, "attempts", 0, "stalls", 0, "seq", seq,
    "cancel_requested", "0", "state", "new")
  index_job(id, task, created_at, keys)
  return true, make_due(id, created_at, "new", run_at, now, priority, seq)
end

local function wake_workers()
  rcall("LPUSH", P .. "marker", "1")
  rcall("LTRIM", P .. "marker", 0, 0)
end

local function finish(id, created_at, old, state, now, expires_at)
  move_state(id, created_at, old, state)
  rcall("ZADD", P .. "done:" .. state, now, id)
  rcall("HSET", job_key(id), "finished_at", now)
  if expires_at ~= nil and expires_at ~= "" then
    rcall("HSET", job_key(id), "expires_at", expires_at)
    rcall("ZADD", P .. "expiry", expires_at, id)
  end
end

local function clear_lease(id)
  rcall("ZREM", P .. "active", id)
  rcall("HDEL", job_key(id), "token", "lease_until")
  rcall("HSET", job_key(id), "cancel_requested", "0")
end

-- A flow child that reached a final state notes its result for its parent (which may
-- live on another slot); redis/flows.py delivers it. Call after the job hash is final.
local function note_flow_child(id, now)
  local key = job_key(id)
  local parent = rcall("HGET", key, "parent")
  if not parent then return end
  local f = rcall("HMGET", key, "state", "result", "error")
  local value = (f[1] == "completed" and f[2] or f[3]) or ""
  rcall("HSET", P .. "flow:outbox", id, f[1] .. "\n" .. parent .. "\n" .. value)
  rcall("ZADD", P .. "flow:due", now, id)
end

-- Take ids out of their task and key indexes, in a few variadic calls ("entries": per id,
-- its HMGET of "task", "keys").
local function unindex_jobs(ids, entries)
  local by_index = {}
  for i, id in ipairs(ids) do
    local f = entries[i]
    local names = { "task:" .. (f[1] or "") }
    for _, key in ipairs(lines(f[2])) do names[#names + 1] = "search:" .. key end
    for _, name in ipairs(names) do
      local group = by_index[name]
      if group == nil then
        group = {}
        by_index[name] = group
      end
      group[#group + 1] = id
    end
  end
  for name, group in pairs(by_index) do
    for first = 1, #group, 1000 do -- unpack() has a stack limit; stay well under it
      rcall("ZREM", P .. name, unpack(group, first, math.min(first + 999, #group)))
    end
  end
end

local function delete_job(id)
  local f = rcall("HMGET", job_key(id), "state", "seq", "task", "keys")
  local state = f[1]
  if not state then return false end
  rcall("ZREM", P .. "state:" .. state, id)
  rcall("ZREM", P .. "done:" .. state, id)
  rcall("ZREM", P .. "ready", ready_member(f[2], id))
  rcall("ZREM", P .. "scheduled", id)
  rcall("ZREM", P .. "active", id)
  rcall("ZREM", P .. "expiry", id)
  rcall("ZREM", P .. "ids", id)
  unindex_jobs({ id }, { { f[3], f[4] } })
  rcall("DEL", job_key(id), P .. "logs:" .. id, P .. "flow:" .. id, P .. "timeline:" .. id)
  return true
end

-- Keep the newest `keep` finished jobs of a state; the rest go in a few variadic calls.
local function trim_done(state, keep)
  local done = P .. "done:" .. state
  local excess = rcall("ZCARD", done) - tonumber(keep)
  if excess <= 0 then return end
  local ids = rcall("ZRANGE", done, 0, excess - 1)
  local keys, flows, entries = {}, {}, {}
  for i, id in ipairs(ids) do
    keys[3 * i - 2] = job_key(id)
    keys[3 * i - 1] = P .. "logs:" .. id
    keys[3 * i] = P .. "timeline:" .. id
    flows[i] = P .. "flow:" .. id
    entries[i] = rcall("HMGET", job_key(id), "task", "keys")
  end
  unindex_jobs(ids, entries)
  for first = 1, #ids, 1000 do -- unpack() has a stack limit; stay well under it
    local last = math.min(first + 999, #ids)
    rcall("ZREM", P .. "state:" .. state, unpack(ids, first, last))
    rcall("ZREM", P .. "expiry", unpack(ids, first, last))
    rcall("ZREM", P .. "ids", unpack(ids, first, last))
    rcall("DEL", unpack(keys, 3 * first - 2, 3 * last))
    rcall("DEL", unpack(flows, first, last))
  end
  rcall("ZREMRANGEBYRANK", done, 0, excess - 1)
end
