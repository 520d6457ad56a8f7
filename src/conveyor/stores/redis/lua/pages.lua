-- One page of a listing or a search in one queue: walk one index newest first from a
-- cursor, keep the entries every other criterion holds for (stores/search.py).
-- KEYS[1]  the queue's meta key
-- ARGV     index: "state:<s>", "task:<name>" or "search:<key>" (zsets by created_at),
--            "ids" (every id, in byte order: a prefix search) or "id" (one exact id),
--          value: the prefix for "ids", the id for "id", else "",
--          cursor created_at and id ("", "": from the newest), limit, budget (entries to
--          examine at most), fields (1: return each match's hash),
--          then the filters: state, task, id prefix ("" for none), then the index keys the
--          job must also have
-- Returns  { matches: per match { created_at ("0" for "ids"), id, hash fields or {} },
--            where the walk stopped: created_at, id; or "", "" when it read to the end }
-- Ties on created_at are in byte order of the id, as Redis orders equal scores, so a
-- cursor seeks exactly (rank_below) and a page never repeats or skips an older job.
local index, value = ARGV[1], ARGV[2]
local after_at, after_id = ARGV[3], ARGV[4]
local limit, budget, fields = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == "1"
local want_state, want_task, want_prefix = ARGV[8], ARGV[9], ARGV[10]
local want_keys = {}
for i = 11, #ARGV do want_keys[#want_keys + 1] = ARGV[i] end
local key = P .. index
local BATCH = 100

-- a < b in byte order (Lua's own comparison follows the server's locale).
local function bytes_below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- How many entries of a zset come before (score `at`, member `id`).
local function rank_below(at, id)
  local lo = rcall("ZCOUNT", key, "-inf", "(" .. at)
  local hi = lo + rcall("ZCOUNT", key, at, at)
  while lo < hi do -- binary search among the members of that score
    local mid = math.floor((lo + hi) / 2)
    if bytes_below(rcall("ZRANGE", key, mid, mid)[1], id) then lo = mid + 1 else hi = mid end
  end
  return lo
end

local needs_hash = want_state ~= "" or want_task ~= "" or #want_keys > 0
local function matches(id)
  if want_prefix ~= "" and string.sub(id, 1, #want_prefix) ~= want_prefix then return false end
  if not needs_hash then return true end
  local f = rcall("HMGET", job_key(id), "state", "task", "keys")
  if not f[1] then return false end
  if want_state ~= "" and f[1] ~= want_state then return false end
  if want_task ~= "" and f[2] ~= want_task then return false end
  local have = "\n" .. (f[3] or "") .. "\n"
  for _, k in ipairs(want_keys) do
    if not string.find(have, "\n" .. k .. "\n", 1, true) then return false end
  end
  return true
end

local found, examined = {}, 0
local last_at, last_id = "", ""
-- Examine one entry; false when the page is full or the budget spent (the walk stops
-- before it, so there is more to read).
local function take(at, id)
  if #found >= limit or examined >= budget then return false end
  examined = examined + 1
  last_at, last_id = at, id
  if matches(id) then
    found[#found + 1] = { at, id, fields and job_fields(id) or {} }
  end
  return true
end

local stopped = false
if index == "id" then
  if rcall("EXISTS", job_key(value)) == 1 then
    take(rcall("HGET", job_key(value), "created_at"), value)
  end
elseif index == "ids" then
  local max, min = "[" .. value .. "\255", "[" .. value
  if after_id ~= "" then max = "(" .. after_id end
  while not stopped do
    local chunk = rcall("ZRANGE", key, max, min, "BYLEX", "REV", "LIMIT", 0, BATCH)
    for _, id in ipairs(chunk) do
      if not take("0", id) then
        stopped = true
        break
      end
    end
    if #chunk < BATCH then break end
    max = "(" .. chunk[#chunk]
  end
else
  local pos = rcall("ZCARD", key) - 1
  if after_id ~= "" then pos = rank_below(after_at, after_id) - 1 end
  while pos >= 0 and not stopped do
    local from = math.max(0, pos - BATCH + 1)
    local chunk = rcall("ZRANGE", key, from, pos, "WITHSCORES")
    for j = #chunk - 1, 1, -2 do
      if not take(chunk[j + 1], chunk[j]) then
        stopped = true
        break
      end
    end
    pos = from - 1
  end
end
if not stopped then last_at, last_id = "", "" end
return { found, last_at, last_id }
