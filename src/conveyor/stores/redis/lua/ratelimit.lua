-- Rate-limit checks: every policy of one request in one script, all or nothing.
-- The same rule is written in Python (stores/ratelimit.py, RULES); the conformance suite
-- (tests/conformance/test_ratelimit.py) holds both to it. Times are the caller's clock;
-- key expiry (server time) only frees memory once a state means nothing any more.
-- KEYS      one per policy: cv:rl:{<subject>}:<policy>:<algorithm code>, holding
--           g: "<arrival time, µs>"   f: "<window>:<count>"
--           s: "<window>:<count>:<previous window's count>"   c: zset token -> lease expiry
-- ARGV[1]   "check" (charge every key if all admit), "peek" (change nothing),
--           "release" (drop the token's slots), "refund" (undo a charge: a check split
--           over cluster slots whose later part was refused)
-- ARGV[2]   now (ms)
-- ARGV[3]   the lease token (concurrency keys)
-- ARGV[4..] per key, 6 each: algorithm code, limit, window (ms; the lease for c),
--           interval (µs, g), burst (g), cost
-- Returns   check/peek: admitted (1|0), then per key: allowed (1|0), value, extra
--           (stores/ratelimit.py HitState); release/refund: 0
local rcall = redis.call
local op, now, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local MARGIN = 1000 -- ms a key outlives its meaning
local WIDTH = 6

local function arg(i, k) return tonumber(ARGV[3 + (i - 1) * WIDTH + k]) end

local function read_window(key)
  local v = rcall("GET", key)
  if not v then return nil end
  local a, b, c = string.match(v, "^(%-?%d+):(%d+):?(%d*)$")
  return tonumber(a), tonumber(b), tonumber(c) or 0
end

-- Each returns: allowed, a function that writes the charged state, and the observed
-- (value, extra) once charged and as it stands.
local rules = {}

function rules.g(i)
  local interval, burst, cost = arg(i, 4), arg(i, 5), arg(i, 6)
  local now_us = now * 1000
  local base = math.max(tonumber(rcall("GET", KEYS[i]) or 0), now_us)
  local after = base + cost * interval
  local function write()
    local ttl = math.ceil((after - now_us) / 1000) + MARGIN
    rcall("SET", KEYS[i], string.format("%d", after), "PX", ttl)
  end
  return after - now_us <= burst * interval, write, {after, 0}, {base, 0}
end

function rules.f(i)
  local limit, window, cost = arg(i, 2), arg(i, 3), arg(i, 6)
  local index, count = math.floor(now / window), 0
  local stored, stored_count = read_window(KEYS[i])
  if stored and stored >= index then index, count = stored, stored_count end
  local function write()
    rcall("SET", KEYS[i], string.format("%d:%d", index, count + cost),
      "PX", (index + 1) * window - now + MARGIN)
  end
  return count + cost <= limit, write, {count + cost, 0}, {count, 0}
end

function rules.s(i)
  local limit, window, cost = arg(i, 2), arg(i, 3), arg(i, 6)
  local index, current, previous = math.floor(now / window), 0, 0
  local stored, stored_count, stored_previous = read_window(KEYS[i])
  if stored == index - 1 then
    previous = stored_count
  elseif stored and stored >= index then
    index, current, previous = stored, stored_count, stored_previous
  end
  local elapsed = math.max(0, now - index * window)
  local used = previous * (window - elapsed) + (current + cost) * window
  local function write()
    rcall("SET", KEYS[i], string.format("%d:%d:%d", index, current + cost, previous),
      "PX", (index + 2) * window - now + MARGIN)
  end
  return used <= limit * window, write, {current + cost, previous}, {current, previous}
end

function rules.c(i)
  local limit, lease = arg(i, 2), arg(i, 3)
  local key = KEYS[i]
  local live = rcall("ZCOUNT", key, "(" .. now, "+inf")
  local mine = tonumber(rcall("ZSCORE", key, token) or 0)
  local holds = mine > now
  local first = rcall("ZRANGEBYSCORE", key, "(" .. now, "+inf", "WITHSCORES", "LIMIT", 0, 1)
  local earliest = first[2] and tonumber(first[2]) or 0
  local until_ms = now + lease
  local function write()
    rcall("ZREMRANGEBYSCORE", key, "-inf", now)
    rcall("ZADD", key, until_ms, token)
    local last = rcall("ZRANGE", key, -1, -1, "WITHSCORES")
    rcall("PEXPIRE", key, tonumber(last[2]) - now + MARGIN)
  end
  -- Once charged: the token's slot ends at until_ms (it may have held one ending sooner).
  local charged = {}
  for _, v in ipairs(rcall("ZRANGEBYSCORE", key, "(" .. now, "+inf", "WITHSCORES")) do
    charged[#charged + 1] = v
  end
  local soonest = until_ms
  for j = 1, #charged, 2 do
    if charged[j] ~= token then soonest = math.min(soonest, tonumber(charged[j + 1])) end
  end
  local count = holds and live or live + 1
  return live < limit or holds, write, {count, soonest}, {live, earliest}
end

local function refund(i, code)
  local key, cost = KEYS[i], arg(i, 6)
  if code == "c" then
    rcall("ZREM", key, token)
  elseif code == "g" then
    local tat = tonumber(rcall("GET", key) or 0)
    if tat > 0 then rcall("SET", key, string.format("%d", tat - cost * arg(i, 4)), "KEEPTTL") end
  else
    local index, count, previous = read_window(key)
    if index then
      local text = string.format("%d:%d", index, math.max(0, count - cost))
      if code == "s" then text = text .. string.format(":%d", previous) end
      rcall("SET", key, text, "KEEPTTL")
    end
  end
end

if op == "release" or op == "refund" then
  for i = 1, #KEYS do
    local code = ARGV[4 + (i - 1) * WIDTH]
    if op == "refund" then refund(i, code) elseif code == "c" then rcall("ZREM", KEYS[i], token) end
  end
  return 0
end

local verdicts, admitted = {}, true
for i = 1, #KEYS do
  local allowed, write, charged, standing = rules[ARGV[4 + (i - 1) * WIDTH]](i)
  verdicts[i] = {allowed, write, charged, standing}
  if not allowed then admitted = false end
end
local charge = admitted and op == "check"
local reply = {admitted and 1 or 0}
for i = 1, #KEYS do
  local v = verdicts[i]
  if charge then v[2]() end
  local seen = charge and v[3] or v[4]
  reply[#reply + 1] = v[1] and 1 or 0
  reply[#reply + 1] = seen[1]
  reply[#reply + 1] = seen[2]
end
return reply
