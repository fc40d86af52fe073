-- sesgate admission: one message, one tenant slot. Declared keys ({t:<id>}):
--   KEYS[1] brk  hash: frozen, state, open_until (ms), probes, warning ("1":
--                halve the GCRA rate), data (the feedback side's, unread here)
--   KEYS[2] sup  hash: lowercased address -> "reason|added_ms|expires_ms"
--   KEYS[3] st   hash: gcra (TAT ms), qh, qd, fh, fd ("<window>:<count>")
-- Derived keys (same tag, prefix ARGV[1] = "gw:{t:<id>}:"):
--   kn:<period>  hash: hmac -> expiry ms (known recipients; period = KnownTTL,
--                the current and the previous period are read)
--   d:<domain>   string: per-domain TAT ms
--   sent:<minute> string: recipients admitted that minute
-- ARGV: 1 prefix, 2 now_ms (0: Redis TIME), 3 rate/s, 4 burst, 5 per_recipient,
--   6 per_hour, 7 per_day, 8 fc_hour, 9 fc_day, 10 dom_rate/s, 11 dom_burst,
--   12 known_ttl_ms, 13 shadow mask, 14 sent_ttl_ms, 15 n, then n times
--   (address lowercased, hmac, domain).
-- Returns {admitted, reason, retry_ms, cache_ms, shadowed, new, {{i, reason, added, expires}...}}.
local P = ARGV[1]
local now = tonumber(ARGV[2])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local rate, burst, perrcpt = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5] == '1'
local perhour, perday = tonumber(ARGV[6]), tonumber(ARGV[7])
local fchour, fcday = tonumber(ARGV[8]), tonumber(ARGV[9])
local domrate, domburst = tonumber(ARGV[10]), tonumber(ARGV[11])
local knownttl, shadow, sentttl = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local n = tonumber(ARGV[15])

local function refuse(reason, retry, cache, supp)
  return {0, reason, math.ceil(retry), math.ceil(cache), '', 0, supp or {}}
end

-- 1. frozen, 2. breaker
local brk = redis.call('HMGET', KEYS[1], 'frozen', 'state', 'open_until', 'probes', 'warning')
if brk[1] then
  return refuse('frozen', 60000, 5000)
end
local state = brk[2] or 'closed'
if state == 'forced_open' then
  return refuse('breaker_open', 60000, 5000)
end
local probing = false
if state == 'open' then
  local until_ms = tonumber(brk[3]) or 0
  if now < until_ms then
    return refuse('breaker_open', until_ms - now, until_ms - now)
  end
  probing = true
elseif state == 'half_open' then
  probing = true
end
local probes = tonumber(brk[4]) or 0
-- the breaker's warning level halves the tenant's rate
if brk[5] == '1' then rate = rate / 2 end

-- 3. tenant suppression
local addrs, hashes, domains = {}, {}, {}
for i = 1, n do
  local b = 15 + (i - 1) * 3
  addrs[i], hashes[i], domains[i] = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
end
local supp = {}
local live = {}
local sv = redis.call('HMGET', KEYS[2], unpack(addrs))
for i = 1, n do
  local v = sv[i]
  local dropped = false
  if v then
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
  return refuse('suppressed', 0, 0, supp)
end
if probing and probes < m then
  local cache = 0
  if probes <= 0 then cache = 5000 end
  return refuse('breaker_open', 5000, cache, supp)
end

local shadowed = {}
-- over reports whether a limit that would refuse is enforced; a shadowed
-- one is recorded instead.
local function over(bit, name)
  if shadow % (2 * bit) >= bit then
    table.insert(shadowed, name)
    return false
  end
  return true
end

local hour = math.floor(now / 3600000)
local day = math.floor(now / 86400000)
local hour_end = (hour + 1) * 3600000 - now
local day_end = (day + 1) * 86400000 - now

-- windowed counters "<window>:<count>" in the st hash
local st = redis.call('HMGET', KEYS[3], 'gcra', 'qh', 'qd', 'fh', 'fd')
local function used(v, window)
  if not v then return 0 end
  local w, c = string.match(v, '^(%d+):(%d+)$')
  if tonumber(w) ~= window then return 0 end
  return tonumber(c)
end
local qh, qd, fh, fd = used(st[2], hour), used(st[3], day), used(st[4], hour), used(st[5], day)

-- 4. first-contact budget
local newc = 0
local fc = fchour > 0 or fcday > 0
local period = math.floor(now / knownttl)
local kcur = P .. 'kn:' .. period
if fc then
  local live_hashes = {}
  for j, i in ipairs(live) do live_hashes[j] = hashes[i] end
  local cur = redis.call('HMGET', kcur, unpack(live_hashes))
  local prev = redis.call('HMGET', P .. 'kn:' .. (period - 1), unpack(live_hashes))
  for j = 1, m do
    local exp = math.max(tonumber(cur[j]) or 0, tonumber(prev[j]) or 0)
    if exp <= now then newc = newc + 1 end
  end
end
if fchour > 0 and newc > 0 and fh + newc > fchour and over(8, 'first_contact_per_hour') then
  return {0, 'first_contact_per_hour', math.ceil(hour_end), 0, '', newc, supp}
end
if fcday > 0 and newc > 0 and fd + newc > fcday and over(16, 'first_contact_per_day') then
  return {0, 'first_contact_per_day', math.ceil(day_end), 0, '', newc, supp}
end

-- 5. quotas in recipients
if perhour > 0 and qh + m > perhour and over(2, 'per_hour') then
  local cache = 0
  if qh >= perhour then cache = hour_end end
  return refuse('per_hour', hour_end, cache, supp)
end
if perday > 0 and qd + m > perday and over(4, 'per_day') then
  local cache = 0
  if qd >= perday then cache = day_end end
  return refuse('per_day', day_end, cache, supp)
end

-- 6. GCRA rate
local newtat = nil
if rate > 0 then
  local cost = 1
  if perrcpt then cost = m end
  local T = 1000 / rate
  local tau = burst * T
  local tat = tonumber(st[1]) or 0
  if tat < now then tat = now end
  if tat > now + tau then tat = now + tau end -- clock moved back: clamp
  if cost > burst and over(1, 'rate') then
    return refuse('too_many', 0, 0, supp)
  end
  local allow = tat + cost * T - tau
  if allow > now + 0.001 and over(1, 'rate') then
    local cache = tat + T - tau - now
    if cache < 0 then cache = 0 end
    return refuse('rate', allow - now, cache, supp)
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
      table.insert(dkeys, P .. 'd:' .. d)
    end
    count[d] = count[d] + 1
  end
  local T = 1000 / domrate
  local tau = domburst * T
  local tats = redis.call('MGET', unpack(dkeys))
  for j, d in ipairs(order) do
    local tat = tonumber(tats[j]) or 0
    if tat < now then tat = now end
    if tat > now + tau then tat = now + tau end
    if count[d] > domburst and over(32, 'per_domain_rate') then
      return refuse('too_many', 0, 0, supp)
    end
    local allow = tat + count[d] * T - tau
    if allow > now + 0.001 and over(32, 'per_domain_rate') then
      return refuse('per_domain_rate', allow - now, 0, supp)
    end
    table.insert(domtat, {dkeys[j], tat + count[d] * T})
  end
end

-- 8. commit
local upd = {}
if perhour > 0 then table.insert(upd, 'qh'); table.insert(upd, hour .. ':' .. (qh + m)) end
if perday > 0 then table.insert(upd, 'qd'); table.insert(upd, day .. ':' .. (qd + m)) end
if fchour > 0 and newc > 0 then table.insert(upd, 'fh'); table.insert(upd, hour .. ':' .. (fh + newc)) end
if fcday > 0 and newc > 0 then table.insert(upd, 'fd'); table.insert(upd, day .. ':' .. (fd + newc)) end
if newtat then table.insert(upd, 'gcra'); table.insert(upd, string.format('%.3f', newtat)) end
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
    redis.call('PEXPIRE', kcur, (period + 2) * knownttl + 60000 - now)
  end
end
for _, e in ipairs(domtat) do
  redis.call('SET', e[1], string.format('%.3f', e[2]), 'PX', math.ceil(e[2] - now) + 1000)
end
if probing then
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probes', probes - m)
end
local sk = P .. 'sent:' .. math.floor(now / 60000)
if redis.call('INCRBY', sk, m) == m then
  redis.call('PEXPIRE', sk, sentttl)
end
return {1, '', 0, 0, table.concat(shadowed, ','), newc, supp}
