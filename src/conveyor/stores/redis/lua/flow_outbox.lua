-- The outbox of finished flow children of one queue (see note_flow_child in lib.lua).
-- KEYS[1]  the queue's meta key
-- ARGV     "take", id...          the entries of these children
--          "due", before, limit   entries noted at or before `before` (the sweep's repair)
--          "ack", id...           forget these entries (delivered)
--          "later", at, id...     entries not deliverable yet: due again at `at` (so the
--                                 repair moves past them), their first noted-at kept
-- Returns  take/due: flat triples id, entry, noted-at; ack: how many were removed;
--          later: nothing
local action = ARGV[1]
local out = {}
local ids = {}
if action == "due" then
  ids = rcall("ZRANGEBYSCORE", P .. "flow:due", "-inf", ARGV[2], "LIMIT", 0, tonumber(ARGV[3]))
elseif action == "later" then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
if action == "ack" then
  if #ids == 0 then return 0 end
  rcall("ZREM", P .. "flow:due", unpack(ids))
  rcall("HDEL", P .. "flow:noted", unpack(ids))
  return rcall("HDEL", P .. "flow:outbox", unpack(ids))
end
if action == "later" then
  for _, id in ipairs(ids) do
    local score = rcall("ZSCORE", P .. "flow:due", id)
    if score then
      rcall("HSETNX", P .. "flow:noted", id, score)
      rcall("ZADD", P .. "flow:due", ARGV[2], id)
    end
  end
  return {}
end
for _, id in ipairs(ids) do
  local entry = rcall("HGET", P .. "flow:outbox", id)
  if entry then
    out[#out + 1] = id
    out[#out + 1] = entry
    out[#out + 1] = rcall("HGET", P .. "flow:noted", id) or rcall("ZSCORE", P .. "flow:due", id)
      or "0"
  end
end
return out
