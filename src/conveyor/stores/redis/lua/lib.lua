-- Shared helpers, prepended to every script of this folder when it is loaded.
-- Every script gets KEYS[1] = "<prefix>meta" of one queue; the other keys of that
-- queue are built from the prefix and all share the queue's {hash tag}, so a
-- script touches one cluster slot only.
--
-- Keys of a queue, with P = "cv:{<queue>}:":
--   P.."meta"            hash: paused, and the queue's limits (their keys: limits.lua)
--   P.."seq"             counter: enqueue order (FIFO within a priority and run_at)
--   P.."job:"..id        hash: the job's fields but its payload
--   P.."args:"..id       string: the job's payload (arguments), a key of its own so that the
--                        hash of a waiting job stays a listpack (Redis packs a hash whose
--                        values are all short; one long value turns it into a hashtable,
--                        about 450 bytes more). Jobs written before it have a "payload"
--                        field instead, which every read falls back to.
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
-- A job hash's "keys" field lists its index keys, one a line (deleted with it), and its
-- "timeline" field its events but progress, "<ms>\t<kind>\t<data>" one a line (data is
-- JSON or empty: never a newline), the newest EVENTS_PER_JOB (events_of). A field, not a
-- list of its own: a key per job costs more memory and more time to make and delete.
local rcall = redis.call
local P = string.sub(KEYS[1], 1, -5)
local PRIORITY_SPAN = 4398046511104 -- 2^42 ms: run_at fits below it until 2109
local EVENTS_KEPT = 10000 -- stores.base.EVENTS_KEPT
local EVENTS_PER_JOB = 100 -- stores.base.EVENTS_PER_JOB

local function job_key(id) return P .. "job:" .. id end
local function args_key(id) return P .. "args:" .. id end

-- A job's hash as HGETALL returns it, its payload among the fields.
local function job_fields(id)
  local flat = rcall("HGETALL", job_key(id))
  if #flat == 0 then return flat end
  local payload = rcall("GET", args_key(id))
  if payload then
    flat[#flat + 1] = "payload"
    flat[#flat + 1] = payload
  end
  return flat
end

-- A job's timeline (its "timeline" field, or nil) with one more event, the oldest dropped
-- past EVENTS_PER_JOB.
local function timeline_with(timeline, kind, now, data)
  local entry = string.format("%.0f", tonumber(now)) .. "\t" .. kind .. "\t" .. (data or "")
  if not timeline or timeline == "" then return entry end
  local text = timeline .. "\n" .. entry
  local _, breaks = string.gsub(text, "\n", "")
  if breaks >= EVENTS_PER_JOB then text = string.sub(text, string.find(text, "\n", 1, true) + 1) end
  return text
end

-- Append a job event to the queue's capped stream, in the same script as the change.
local function emit_stream(id, kind, data)
  rcall("XADD", P .. "events", "MAXLEN", "~", EVENTS_KEPT, "*", "job", id, "kind", kind,
    "data", data or "")
end

-- A job event: to the stream, and but for progress to the job's timeline (`now`: the
-- clients' time; nil for progress).
local function emit(id, kind, now, data)
  emit_stream(id, kind, data)
  if kind ~= "progress" then
    local key = job_key(id)
    rcall("HSET", key, "timeline", timeline_with(rcall("HGET", key, "timeline"), kind, now, data))
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

-- Index writes gathered over many jobs, so that each index gets one variadic call
-- (a call from Lua costs about as much as the command itself). Flush before anything
-- reads those indexes. A nil batch writes at once: for one job, gathering costs more
-- than it saves (a one-by-one enqueue script: about 18 -> 15 us).
local function new_batch() return { args = {}, order = {} } end

local function later(batch, command, key, a, b)
  if batch == nil then
    if b == nil then rcall(command, key, a) else rcall(command, key, a, b) end
    return
  end
  local name = command .. " " .. key
  local args = batch.args[name]
  if args == nil then
    args = {}
    batch.args[name] = args
    batch.order[#batch.order + 1] = { command, key, name }
  end
  args[#args + 1] = a
  if b ~= nil then args[#args + 1] = b end
end

-- Keys to set, gathered into one MSET (every key of a queue is on one slot).
local function later_set(batch, key, value)
  if batch == nil then
    rcall("SET", key, value)
    return
  end
  local args = batch.args["MSET"]
  if args == nil then
    args = {}
    batch.args["MSET"] = args
    batch.order[#batch.order + 1] = { "MSET", nil, "MSET" }
  end
  args[#args + 1] = key
  args[#args + 1] = value
end

local function flush(batch)
  for _, entry in ipairs(batch.order) do
    local args = batch.args[entry[3]]
    for first = 1, #args, 1000 do -- unpack() has a stack limit; 1000 keeps pairs whole
      local last = math.min(first + 999, #args)
      if entry[2] == nil then
        rcall(entry[1], unpack(args, first, last))
      else
        rcall(entry[1], entry[2], unpack(args, first, last))
      end
    end
  end
  batch.args, batch.order = {}, {}
end

-- Insert a job unless its id exists, its index writes into `batch` (nil: at once).
-- Returns inserted, ready (ready: it is waiting now). keys: its searchable fields' index
-- keys, "\n"-joined ("" for none). Fields at their default (attempts, stalls 0, no cancel
-- request) are not written: a hash of few fields is smaller. in_ids: nil, or the id is in
-- the ids index already ("checked": and no job has it, "added": a job may).
local function insert_into(batch, id, task, payload, options, priority, run_at, created_at,
                           max_stalled, now, keys, in_ids)
  local key = job_key(id)
  if in_ids ~= "checked" and rcall("EXISTS", key) == 1 then return false, false end
  local seq = rcall("INCR", P .. "seq")
  local ready = tonumber(run_at) <= tonumber(now)
  local state = ready and "waiting" or "scheduled"
  rcall("HSET", key, "task", task, "options", options,
    "priority", priority, "run_at", run_at, "created_at", created_at,
    "max_stalled", max_stalled, "seq", seq, "state", state)
  later_set(batch, args_key(id), payload)
  later(batch, "ZADD", P .. "task:" .. task, created_at, id)
  if in_ids == nil then later(batch, "ZADD", P .. "ids", 0, id) end
  later(batch, "ZADD", P .. "state:" .. state, created_at, id)
  if ready then
    later(batch, "ZADD", P .. "ready", ready_score(priority, run_at), ready_member(seq, id))
  else
    later(batch, "ZADD", P .. "scheduled", run_at, id)
  end
  if keys ~= nil and keys ~= "" then
    rcall("HSET", key, "keys", keys)
    for _, k in ipairs(lines(keys)) do later(batch, "ZADD", P .. "search:" .. k, created_at, id) end
  end
  return true, ready
end

local function insert_job(id, task, payload, options, priority, run_at, created_at, max_stalled,
                          now, keys)
  return insert_into(nil, id, task, payload, options, priority, run_at, created_at,
    max_stalled, now, keys)
end

-- Wake a worker blocked on the queue's marker. A token already there wakes the next
-- worker that blocks, and no worker is blocked on a list that holds one: push only onto
-- an empty list (one call where the list has its token, as under one-by-one enqueues).
local function wake_workers()
  if rcall("LLEN", P .. "marker") == 0 then rcall("LPUSH", P .. "marker", "1") end
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
-- `parent`: its "parent" field if already read (false: none), else nil.
local function note_flow_child(id, now, parent)
  local key = job_key(id)
  if parent == nil then parent = rcall("HGET", key, "parent") end
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
  rcall("DEL", job_key(id), args_key(id), P .. "logs:" .. id, P .. "flow:" .. id)
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
    keys[3 * i - 1] = args_key(id)
    keys[3 * i] = P .. "logs:" .. id
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
