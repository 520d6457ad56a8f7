-- The outbox of finished flow children of one queue (see note_flow_child in lib.lua).
-- KEYS[1]  the queue's meta key
-- ARGV     "take", id...          the entries of these children
--          "due", before, limit   entries noted at or before `before` (the sweep's repair)
--          "ack", id...           forget these entries (delivered)
-- Returns  take/due: flat triples id, entry, noted-at; ack: how many were removed
local action = ARGV[1]
local out = {}
local ids = {}
if action == "due" then
  ids = rcall("ZRANGEBYSCORE", P .. "flow:due", "-inf", ARGV[2], "LIMIT", 0, tonumber(ARGV[3]))
else
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
if action == "ack" then
  if #ids == 0 then return 0 end
  rcall("ZREM", P .. "flow:due", unpack(ids))
  return rcall("HDEL", P .. "flow:outbox", unpack(ids))
end
for _, id in ipairs(ids) do
  local entry = rcall("HGET", P .. "flow:outbox", id)
  if entry then
    out[#out + 1] = id
    out[#out + 1] = entry
    out[#out + 1] = rcall("ZSCORE", P .. "flow:due", id) or "0"
  end
end
return out
