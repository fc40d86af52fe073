-- sesgate admission: one message, one tenant slot; the steps of the store
-- package doc, in order. The keys are listed in this package's doc.
-- KEYS: 1 the breaker hash, 2 the tenant's suppression hash, 3 the state hash.
-- Constants (UPPER_CASE: reasons, breaker states, durations, key and field
-- names) come from Go: admitScript (admit.go) binds them as locals ahead of
-- this text, once, so they cost nothing per call. ARGV, computed by
-- admitArgs and named below in its order: the message and the tenant's
-- limits, then per recipient the address lowercased, its HMAC (first-contact
-- budget only) and its domain (per-domain rate only).
-- Returns {admitted, reason, retry_ms, cache_ms, {shadowed limit...}, new,
-- {{recipient index, reason, added_ms, expires_ms}...}, remaining}, where
-- remaining is "hour:day:first hour:first day" (store.Remaining: -1 for a
-- limit the tenant does not have) once the counters were read, else ''.

-- the call: time (0: Redis TIME), recipients, the tenant's key prefix
local now, n, P = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
-- the tenant's limits (0: none), the store's memory (ms)
local rate, burst, perrcpt = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local perhour, perday = tonumber(ARGV[7]), tonumber(ARGV[8])
local fchour, fcday = tonumber(ARGV[9]), tonumber(ARGV[10])
local domrate, domburst = tonumber(ARGV[11]), tonumber(ARGV[12])
local knownttl, sentttl = tonumber(ARGV[13]), tonumber(ARGV[14])
-- the shadowed limits: the sum of their bits (B_*)
local shadow = tonumber(ARGV[15])
-- the first-contact window (store/window.go; wmax 0: none), timeout in ms
local winit, wmin, wmax = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
local wthresh, wtimeout = tonumber(ARGV[19]), tonumber(ARGV[20])

if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * SECOND + math.floor(tonumber(t[2]) / MS_US)
end

-- what the windowed limits have left: set once the counters are read
local remaining = ''

local function refuse(reason, retry, cache, supp)
  return {0, reason, math.ceil(retry), math.ceil(cache), {}, 0, supp or {}, remaining}
end

-- 1. frozen, 2. breaker
local brk = redis.call('HMGET', KEYS[1], F_FROZEN, F_STATE, F_OPEN_UNTIL, F_PROBES, F_WARNING)
if brk[1] then
  return refuse(FROZEN, FROZEN_RETRY, FROZEN_CACHE)
end
local state = brk[2] or CLOSED
if state == FORCED_OPEN then
  return refuse(BREAKER_OPEN, FROZEN_RETRY, FROZEN_CACHE)
end
local probing = false
if state == OPEN then
  local until_ms = tonumber(brk[3]) or 0
  if now < until_ms then
    return refuse(BREAKER_OPEN, until_ms - now, until_ms - now)
  end
  probing = true
elseif state == HALF_OPEN then
  probing = true
end
local probes = tonumber(brk[4]) or 0
-- the breaker's warning level slows the tenant's rate
if brk[5] == YES then rate = rate * WARNING_RATE end

-- 3. tenant suppression
local addrs, hashes, domains = {}, {}, {}
local first = #ARGV - 3 * n -- the slot before the first recipient's
for i = 1, n do
  local b = first + (i - 1) * 3
  addrs[i], hashes[i], domains[i] = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
end
local supp = {}
local live = {}
local sv = redis.call('HMGET', KEYS[2], unpack(addrs))
for i = 1, n do
  local v = sv[i]
  local dropped = false
  if v then
    -- store.Suppression.EncodeValue: "reason|added_ms|expires_ms", 0: never
    local reason, added, exp = string.match(v, '^([^|]*)|(%d+)|(%d+)$')
    exp = tonumber(exp) or 0
    if reason and (exp == 0 or now < exp) then
      table.insert(supp, {i, reason, tonumber(added), exp})
      dropped = true
    end
  end
  if not dropped then table.insert(live, i) end
end
local m = #live
if m == 0 then
  return refuse(SUPPRESSED, 0, 0, supp)
end
if probing and probes < m then
  local cache = 0
  if probes <= 0 then cache = PROBE_RETRY end
  return refuse(BREAKER_OPEN, PROBE_RETRY, cache, supp)
end

local shadowed = {}
-- over reports whether a limit that would refuse is enforced; a shadowed
-- one is recorded instead.
local function over(name, bit)
  if shadow % (2 * bit) >= bit then
    table.insert(shadowed, name)
    return false
  end
  return true
end

local hour = math.floor(now / HOUR)
local day = math.floor(now / DAY)
local hour_end = (hour + 1) * HOUR - now
local day_end = (day + 1) * DAY - now

-- windowed counters "<window>:<count>" in the state hash
local st = redis.call('HMGET', KEYS[3], F_TAT, F_QH, F_QD, F_FH, F_FD)
local function used(v, window)
  if not v then return 0 end
  local w, c = string.match(v, '^(%d+):(%d+)$')
  if tonumber(w) ~= window then return 0 end
  return tonumber(c)
end
local qh, qd, fh, fd = used(st[2], hour), used(st[3], day), used(st[4], hour), used(st[5], day)
-- left: what a limit (0: none) leaves after count recipients
local function left(limit, count)
  if limit <= 0 then return UNLIMITED end
  return math.max(0, limit - count)
end
-- what the four limits leave after hour and day recipients, first contacts
local function leaves(h, d, nh, nd)
  return string.format('%d:%d:%d:%d', left(perhour, h), left(perday, d), left(fchour, nh), left(fcday, nd))
end
remaining = leaves(qh, qd, fh, fd)

-- 4. first-contact budget
local newc = 0
local newmask = {} -- j (index into live) -> true for a first contact
local fc = fchour > 0 or fcday > 0 or wmax > 0
local period = math.floor(now / knownttl)
local kcur = P .. K_KNOWN .. period
if fc then
  local live_hashes = {}
  for j, i in ipairs(live) do live_hashes[j] = hashes[i] end
  local cur = redis.call('HMGET', kcur, unpack(live_hashes))
  local prev = redis.call('HMGET', P .. K_KNOWN .. (period - 1), unpack(live_hashes))
  for j = 1, m do
    local exp = math.max(tonumber(cur[j]) or 0, tonumber(prev[j]) or 0)
    if exp <= now then
      newc = newc + 1
      newmask[j] = true
    end
  end
end
if fchour > 0 and newc > 0 and fh + newc > fchour and over(L_FC_HOUR, B_FC_HOUR) then
  return {0, L_FC_HOUR, math.ceil(hour_end), 0, {}, newc, supp, remaining}
end
if fcday > 0 and newc > 0 and fd + newc > fcday and over(L_FC_DAY, B_FC_DAY) then
  return {0, L_FC_DAY, math.ceil(day_end), 0, {}, newc, supp, remaining}
end

-- 4b. first-contact window: outstanding first contacts plus this
-- message's must fit, unless nothing is outstanding
local kout = P .. K_WOUT
if wmax > 0 and newc > 0 then
  local kwin = P .. K_WIN
  local gone = redis.call('ZREMRANGEBYSCORE', kout, '-inf', now)
  if gone > 0 then redis.call('HINCRBY', kwin, F_W_EXPIRED, gone) end
  local out = redis.call('ZCARD', kout)
  local cwnd = tonumber(redis.call('HGET', kwin, F_W_WINDOW)) or winit
  cwnd = math.min(math.max(cwnd, math.max(wmin, 1)), wmax)
  if out > 0 and out + newc > math.floor(cwnd) and over(L_FC_WINDOW, B_FC_WINDOW) then
    redis.call('HINCRBY', kwin, F_W_HELD, 1)
    local retry = WINDOW_RETRY
    local oldest = redis.call('ZRANGE', kout, 0, 0, 'WITHSCORES')
    if oldest[2] then retry = math.max(1, math.min(retry, tonumber(oldest[2]) - now)) end
    return {0, L_FC_WINDOW, math.ceil(retry), 0, {}, newc, supp, remaining}
  end
end

-- 5. quotas in recipients
if perhour > 0 and qh + m > perhour and over(L_HOUR, B_HOUR) then
  local cache = 0
  if qh >= perhour then cache = hour_end end
  return refuse(L_HOUR, hour_end, cache, supp)
end
if perday > 0 and qd + m > perday and over(L_DAY, B_DAY) then
  local cache = 0
  if qd >= perday then cache = day_end end
  return refuse(L_DAY, day_end, cache, supp)
end

-- 6. GCRA rate
local newtat = nil
if rate > 0 then
  local cost = 1
  if perrcpt == YES then cost = m end
  local T = SECOND / rate
  local tau = burst * T
  local tat = tonumber(st[1]) or 0
  if tat < now then tat = now end
  if tat > now + tau then tat = now + tau end -- clock moved back: clamp
  if cost > burst and over(L_RATE, B_RATE) then
    return refuse(TOO_MANY, 0, 0, supp)
  end
  local allow = tat + cost * T - tau
  if allow > now + TOLERANCE and over(L_RATE, B_RATE) then
    local cache = tat + T - tau - now
    if cache < 0 then cache = 0 end
    return refuse(L_RATE, allow - now, cache, supp)
  end
  newtat = tat + cost * T
end

-- 7. per-recipient-domain rate
local domtat = {}
if domrate > 0 then
  local count, order, dkeys = {}, {}, {}
  for _, i in ipairs(live) do
    local d = domains[i]
    if not count[d] then
      count[d] = 0
      table.insert(order, d)
      table.insert(dkeys, P .. K_DOMAIN .. d)
    end
    count[d] = count[d] + 1
  end
  local T = SECOND / domrate
  local tau = domburst * T
  local tats = redis.call('MGET', unpack(dkeys))
  for j, d in ipairs(order) do
    local tat = tonumber(tats[j]) or 0
    if tat < now then tat = now end
    if tat > now + tau then tat = now + tau end
    if count[d] > domburst and over(L_DOMAIN, B_DOMAIN) then
      return refuse(TOO_MANY, 0, 0, supp)
    end
    local allow = tat + count[d] * T - tau
    if allow > now + TOLERANCE and over(L_DOMAIN, B_DOMAIN) then
      return refuse(L_DOMAIN, allow - now, 0, supp)
    end
    table.insert(domtat, {dkeys[j], tat + count[d] * T})
  end
end

-- 8. commit
local upd = {}
-- recipients of the hour and day are counted quota or not (the operator's
-- usage): two fields of the HSET below, no extra call
if m > 0 then
  table.insert(upd, F_QH); table.insert(upd, hour .. ':' .. (qh + m))
  table.insert(upd, F_QD); table.insert(upd, day .. ':' .. (qd + m))
end
if fchour > 0 and newc > 0 then table.insert(upd, F_FH); table.insert(upd, hour .. ':' .. (fh + newc)) end
if fcday > 0 and newc > 0 then table.insert(upd, F_FD); table.insert(upd, day .. ':' .. (fd + newc)) end
if newtat then table.insert(upd, F_TAT); table.insert(upd, string.format('%.3f', newtat)) end
if #upd > 0 then redis.call('HSET', KEYS[3], unpack(upd)) end
if fc then
  local kv = {}
  local exp = string.format('%.0f', now + knownttl)
  for _, i in ipairs(live) do
    table.insert(kv, hashes[i])
    table.insert(kv, exp)
  end
  -- the period hash lives until every expiry written into it has passed
  if redis.call('HSET', kcur, unpack(kv)) > 0 then
    redis.call('PEXPIRE', kcur, (period + 2) * knownttl + KNOWN_GRACE - now)
  end
end
if wmax > 0 and newc > 0 then
  -- the new recipients are outstanding until an event settles them
  local zs = {}
  local exp = now + wtimeout
  for j, i in ipairs(live) do
    if newmask[j] then
      table.insert(zs, exp)
      table.insert(zs, hashes[i])
    end
  end
  redis.call('ZADD', kout, unpack(zs))
  redis.call('PEXPIRE', kout, wtimeout + KNOWN_GRACE)
end
for _, e in ipairs(domtat) do
  redis.call('SET', e[1], string.format('%.3f', e[2]), 'PX', math.ceil(e[2] - now) + TAT_GRACE)
end
if probing then
  redis.call('HSET', KEYS[1], F_STATE, HALF_OPEN, F_PROBES, probes - m)
end
local sk = P .. K_SENT .. math.floor(now / SENT_BUCKET)
if redis.call('INCRBY', sk, m) == m then
  redis.call('PEXPIRE', sk, sentttl)
end
remaining = leaves(qh + m, qd + m, fh + newc, fd + newc)
return {1, '', 0, 0, shadowed, newc, supp, remaining}
