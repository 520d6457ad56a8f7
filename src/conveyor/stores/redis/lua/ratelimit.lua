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
-- Hot path: no closures, a few tables per call. Arrival times (µs, ~2^51) are written
-- with "%d": Lua's own number-to-text keeps only 14 digits.
local rcall = redis.call
local op, now, token = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local MARGIN = 1000 -- ms a key outlives its meaning
local WIDTH = 6
local n = #KEYS

local function read_window(key)
  local v = rcall("GET", key)
  if not v then return nil end
  local a, b, c = string.match(v, "^(%-?%d+):(%d+):?(%d*)$")
  return tonumber(a), tonumber(b), tonumber(c) or 0
end

if op == "release" or op == "refund" then
  for i = 1, n do
    local at = 3 + (i - 1) * WIDTH
    local code, key, cost = ARGV[at + 1], KEYS[i], tonumber(ARGV[at + 6])
    if code == "c" then
      rcall("ZREM", key, token)
    elseif op == "refund" and code == "g" then
      local tat = tonumber(rcall("GET", key) or 0)
      if tat > 0 then
        rcall("SET", key, string.format("%d", tat - cost * tonumber(ARGV[at + 4])), "KEEPTTL")
      end
    elseif op == "refund" then
      local index, count, previous = read_window(key)
      if index then
        local text = index .. ":" .. math.max(0, count - cost)
        if code == "s" then text = text .. ":" .. previous end
        rcall("SET", key, text, "KEEPTTL")
      end
    end
  end
  return 0
end

-- Per key: allowed, the charged state (a, b, c), then (value, extra) charged and standing.
local allowed, sa, sb, sc, cv, ce, v, e = {}, {}, {}, {}, {}, {}, {}, {}
local admitted = true
for i = 1, n do
  local at = 3 + (i - 1) * WIDTH
  local code, limit, window = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local cost = tonumber(ARGV[at + 6])
  local ok
  if code == "g" then
    local interval = tonumber(ARGV[at + 4])
    local now_us = now * 1000
    local base = math.max(tonumber(rcall("GET", KEYS[i]) or 0), now_us)
    local after = base + cost * interval
    ok = after - now_us <= tonumber(ARGV[at + 5]) * interval
    sa[i], cv[i], ce[i], v[i], e[i] = after, after, 0, base, 0
  elseif code == "c" then
    local key = KEYS[i]
    local live = rcall("ZRANGEBYSCORE", key, "(" .. now, "+inf", "WITHSCORES")
    local count, holds, others, soonest = #live / 2, false, nil, nil
    for j = 1, #live, 2 do
      local until_ms = tonumber(live[j + 1])
      if not soonest or until_ms < soonest then soonest = until_ms end
      if live[j] == token then
        holds = true
      elseif not others or until_ms < others then
        others = until_ms
      end
    end
    local until_ms = now + window
    ok = count < limit or holds
    sa[i] = until_ms
    cv[i] = holds and count or count + 1
    ce[i] = others and math.min(others, until_ms) or until_ms
    v[i], e[i] = count, soonest or 0
  else
    local index, current, previous = math.floor(now / window), 0, 0
    local stored, stored_count, stored_previous = read_window(KEYS[i])
    if code == "f" then
      if stored and stored >= index then index, current = stored, stored_count end
      ok = current + cost <= limit
      cv[i], ce[i], e[i] = current + cost, 0, 0
    else
      if stored == index - 1 then
        previous = stored_count
      elseif stored and stored >= index then
        index, current, previous = stored, stored_count, stored_previous
      end
      local elapsed = math.max(0, now - index * window)
      ok = previous * (window - elapsed) + (current + cost) * window <= limit * window
      cv[i], ce[i], e[i] = current + cost, previous, previous
    end
    sa[i], sb[i], sc[i], v[i] = index, current + cost, previous, current
  end
  allowed[i] = ok
  if not ok then admitted = false end
end

local charge = admitted and op == "check"
local reply = {admitted and 1 or 0}
for i = 1, n do
  local at = 3 + (i - 1) * WIDTH
  local code, key = ARGV[at + 1], KEYS[i]
  if charge then
    if code == "g" then
      rcall("SET", key, string.format("%d", sa[i]),
        "PX", math.ceil((sa[i] - now * 1000) / 1000) + MARGIN)
    elseif code == "f" then
      rcall("SET", key, sa[i] .. ":" .. sb[i],
        "PX", (sa[i] + 1) * tonumber(ARGV[at + 3]) - now + MARGIN)
    elseif code == "s" then
      rcall("SET", key, sa[i] .. ":" .. sb[i] .. ":" .. sc[i],
        "PX", (sa[i] + 2) * tonumber(ARGV[at + 3]) - now + MARGIN)
    else
      rcall("ZREMRANGEBYSCORE", key, "-inf", now)
      rcall("ZADD", key, sa[i], token)
      local last = rcall("ZRANGE", key, -1, -1, "WITHSCORES")
      rcall("PEXPIRE", key, tonumber(last[2]) - now + MARGIN)
    end
    v[i], e[i] = cv[i], ce[i]
  end
  reply[#reply + 1] = allowed[i] and 1 or 0
  reply[#reply + 1] = v[i]
  reply[#reply + 1] = e[i]
end
return reply
