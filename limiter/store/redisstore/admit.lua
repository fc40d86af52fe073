-- sesgate admission: a batch of messages of one tenant slot, decided in
-- order, each exactly as if it had been admitted alone after the ones
-- before it (the steps of the store package doc). The tenant's state is
-- read once, kept in Lua tables while the messages are decided, and written
-- once at the end. The keys are listed in this package's doc.
-- KEYS: 1 the breaker hash, 2 the tenant's suppression hash, 3 the state hash.
-- Constants (UPPER_CASE: reasons, breaker states, durations, key and field
-- names) come from Go: admitScript (admit.go) binds them as locals ahead of
-- this text, once, so they cost nothing per call. ARGV, computed by
-- batchArgs and named below in its order: the batch and the tenant's
-- limits, then per message its recipient count and per recipient the
-- address lowercased, its HMAC (first-contact budget only) and its domain
-- (per-domain rate only).
-- Returns one reply per message: {admitted, reason, retry_ms, cache_ms,
-- {shadowed limit...}, new, {{recipient index, reason, added_ms,
-- expires_ms}...}, remaining}, where remaining is "hour:day:first
-- hour:first day" (store.Remaining: -1 for a limit the tenant does not
-- have) once the counters were read, else ''.

-- the call: time (0: Redis TIME), messages, the tenant's key prefix
local now, K, P = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
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

-- the messages: where each one's recipients start in ARGV, and how many
local starts, counts = {}, {}
local slot = ARGC + 1
for k = 1, K do
  counts[k] = tonumber(ARGV[slot])
  starts[k] = slot + 1
  slot = slot + 1 + 3 * counts[k]
end

local out = {}
-- none is the empty list of a reply: one table for every reply that has
-- nothing to list, not one per message
local none = {}

-- 1. frozen, 2. breaker: refusals every message of the batch shares
local brk = redis.call('HMGET', KEYS[1], F_FROZEN, F_STATE, F_OPEN_UNTIL, F_PROBES, F_WARNING)
local function all(reason, retry, cache)
  for k = 1, K do out[k] = {0, reason, math.ceil(retry), math.ceil(cache), none, 0, none, ''} end
  return out
end
if brk[1] then
  return all(FROZEN, FROZEN_RETRY, FROZEN_CACHE)
end
local state = brk[2] or CLOSED
if state == FORCED_OPEN then
  return all(BREAKER_OPEN, FROZEN_RETRY, FROZEN_CACHE)
end
local probing = false
if state == OPEN then
  local until_ms = tonumber(brk[3]) or 0
  if now < until_ms then
    return all(BREAKER_OPEN, until_ms - now, until_ms - now)
  end
  probing = true
elseif state == HALF_OPEN then
  probing = true
end
local probes = tonumber(brk[4]) or 0
-- the breaker's warning level slows the tenant's rate
if brk[5] == YES then rate = rate * WARNING_RATE end

-- 3. tenant suppression: one HMGET of every address of the batch
local uaddr, seen = {}, {}
for k = 1, K do
  for i = 0, counts[k] - 1 do
    local a = ARGV[starts[k] + 3 * i]
    if not seen[a] then
      seen[a] = true
      uaddr[#uaddr + 1] = a
    end
  end
end
local suppressed = {} -- address -> {reason, added_ms, expires_ms}, live entries only
local sv = redis.call('HMGET', KEYS[2], unpack(uaddr))
for j, a in ipairs(uaddr) do
  local v = sv[j]
  if v then
    -- store.Suppression.EncodeValue: "reason|added_ms|expires_ms", 0: never
    local reason, added, exp = string.match(v, '^([^|]*)|(%d+)|(%d+)$')
    exp = tonumber(exp) or 0
    if reason and (exp == 0 or now < exp) then
      suppressed[a] = {reason, tonumber(added), exp}
    end
  end
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
local tat = tonumber(st[1]) or 0 -- the rate's TAT as stored (rounded to %.3f)
-- an admitted message's TAT before that rounding: rounded (a string.format
-- and a tonumber) only if a later message of the batch reads it
local tatraw = nil
-- left: what a limit (0: none) leaves after count recipients
local function left(limit, count)
  if limit <= 0 then return UNLIMITED end
  return math.max(0, limit - count)
end
-- what the four limits leave after hour and day recipients, first contacts
local function leaves(h, d, nh, nd)
  return string.format('%d:%d:%d:%d', left(perhour, h), left(perday, d), left(fchour, nh), left(fcday, nd))
end

-- 4. the known recipients and 7. the per-domain TATs of every message's
-- live recipients, gathered in one pass: one HMGET of the current known
-- hash and, for those it does not know, one of the previous period's; one
-- MGET of the domains
local fc = fchour > 0 or fcday > 0 or wmax > 0
local period = math.floor(now / knownttl)
local kcur = P .. K_KNOWN .. period
local known = {} -- HMAC -> expiry (ms)
local kttl = true -- whether the current period's hash has its expiry
local domtat, domkey = {}, {} -- domain -> TAT as stored (%.3f), key
local domraw = {} -- domain -> an admitted message's TAT before rounding (as tatraw)
local uh, ud, dkeys = {}, {}, {}
if fc or domrate > 0 then
  for k = 1, K do
    for i = 0, counts[k] - 1 do
      local b = starts[k] + 3 * i
      if not suppressed[ARGV[b]] then
        local h, d = ARGV[b + 1], ARGV[b + 2]
        if fc and not known[h] then
          known[h] = 0
          uh[#uh + 1] = h
        end
        if domrate > 0 and not domkey[d] then
          domkey[d] = P .. K_DOMAIN .. d
          ud[#ud + 1] = d
          dkeys[#dkeys + 1] = domkey[d]
        end
      end
    end
  end
end
if #uh > 0 then
  -- F_K_TTL first: the hash has its expiry once that field is there
  local cur = redis.call('HMGET', kcur, F_K_TTL, unpack(uh))
  kttl = cur[1] ~= false
  local rest = {}
  for j, h in ipairs(uh) do
    known[h] = tonumber(cur[j + 1]) or 0
    if known[h] <= now then rest[#rest + 1] = h end
  end
  -- an expiry in the current period's hash is later than any in the
  -- previous one's: max(cur, prev) needs prev only where cur is past
  if #rest > 0 then
    local prev = redis.call('HMGET', P .. K_KNOWN .. (period - 1), unpack(rest))
    for j, h in ipairs(rest) do
      known[h] = math.max(known[h], tonumber(prev[j]) or 0)
    end
  end
end
if #dkeys > 0 then
  local tats = redis.call('MGET', unpack(dkeys))
  for j, d in ipairs(ud) do domtat[d] = tonumber(tats[j]) or 0 end
end

-- what the admitted messages change, written once at the end
local sum = 0 -- recipients admitted
local fh_set, fd_set, tat_set, probed = false, false, false, false
local kexp = string.format('%.0f', now + knownttl)
local knew = {} -- HMACs to write into the current period's hash
local domset = {} -- domain -> unrounded TAT to write
local domorder = {}
local kout = P .. K_WOUT

local shadowed
-- over reports whether a limit that would refuse is enforced; a shadowed
-- one is recorded instead.
local function over(name, bit)
  if shadow % (2 * bit) >= bit then
    if shadowed == none then shadowed = {} end
    shadowed[#shadowed + 1] = name
    return false
  end
  return true
end

-- each message in turn, admitted or refused against the state the
-- messages before it left: a refusal sets its reply and breaks out of the
-- message's block (repeat ... until true), so no closure is made per
-- message (Lua 5.1 allows a function 60 upvalues; this one would need more)
for k = 1, K do repeat
  local first, n = starts[k], counts[k]
  local supp, live = none, {}
  for i = 1, n do
    local e = suppressed[ARGV[first + 3 * (i - 1)]]
    if e then
      if supp == none then supp = {} end
      supp[#supp + 1] = {i, e[1], e[2], e[3]}
    else
      live[#live + 1] = i
    end
  end
  local m = #live
  if m == 0 then
    out[k] = {0, SUPPRESSED, 0, 0, none, 0, supp, ''}
    break
  end
  if probing and probes < m then
    local cache = 0
    if probes <= 0 then cache = PROBE_RETRY end
    out[k] = {0, BREAKER_OPEN, PROBE_RETRY, cache, none, 0, supp, ''}
    break
  end
  shadowed = none

  -- 4. first-contact budget
  local newc = 0
  local newh = none -- the first contacts' HMACs (the window's)
  if wmax > 0 then newh = {} end
  if fc then
    for _, i in ipairs(live) do
      local h = ARGV[first + 3 * (i - 1) + 1]
      if known[h] <= now then
        newc = newc + 1
        if wmax > 0 then newh[newc] = h end
      end
    end
  end
  if fchour > 0 and newc > 0 and fh + newc > fchour and over(L_FC_HOUR, B_FC_HOUR) then
    out[k] = {0, L_FC_HOUR, math.ceil(hour_end), 0, none, newc, supp, leaves(qh, qd, fh, fd)}
    break
  end
  if fcday > 0 and newc > 0 and fd + newc > fcday and over(L_FC_DAY, B_FC_DAY) then
    out[k] = {0, L_FC_DAY, math.ceil(day_end), 0, none, newc, supp, leaves(qh, qd, fh, fd)}
    break
  end

  -- 4b. first-contact window: outstanding first contacts plus this
  -- message's must fit, unless nothing is outstanding
  if wmax > 0 and newc > 0 then
    local kwin = P .. K_WIN
    local gone = redis.call('ZREMRANGEBYSCORE', kout, '-inf', now)
    if gone > 0 then redis.call('HINCRBY', kwin, F_W_EXPIRED, gone) end
    local outn = redis.call('ZCARD', kout)
    local cwnd = tonumber(redis.call('HGET', kwin, F_W_WINDOW)) or winit
    cwnd = math.min(math.max(cwnd, math.max(wmin, 1)), wmax)
    if outn > 0 and outn + newc > math.floor(cwnd) and over(L_FC_WINDOW, B_FC_WINDOW) then
      redis.call('HINCRBY', kwin, F_W_HELD, 1)
      local retry = WINDOW_RETRY
      local oldest = redis.call('ZRANGE', kout, 0, 0, 'WITHSCORES')
      if oldest[2] then retry = math.max(1, math.min(retry, tonumber(oldest[2]) - now)) end
      out[k] = {0, L_FC_WINDOW, math.ceil(retry), 0, none, newc, supp, leaves(qh, qd, fh, fd)}
      break
    end
  end

  -- 5. quotas in recipients
  if perhour > 0 and qh + m > perhour and over(L_HOUR, B_HOUR) then
    local cache = 0
    if qh >= perhour then cache = hour_end end
    out[k] = {0, L_HOUR, math.ceil(hour_end), math.ceil(cache), none, 0, supp, leaves(qh, qd, fh, fd)}
    break
  end
  if perday > 0 and qd + m > perday and over(L_DAY, B_DAY) then
    local cache = 0
    if qd >= perday then cache = day_end end
    out[k] = {0, L_DAY, math.ceil(day_end), math.ceil(cache), none, 0, supp, leaves(qh, qd, fh, fd)}
    break
  end

  -- 6. GCRA rate
  local newtat = nil
  if rate > 0 then
    local cost = 1
    if perrcpt == YES then cost = m end
    local T = SECOND / rate
    local tau = burst * T
    if tatraw then
      tat, tatraw = tonumber(string.format('%.3f', tatraw)), nil
    end
    local t = tat
    if t < now then t = now end
    if t > now + tau then t = now + tau end -- clock moved back: clamp
    if cost > burst and over(L_RATE, B_RATE) then
      out[k] = {0, TOO_MANY, 0, 0, none, 0, supp, leaves(qh, qd, fh, fd)}
      break
    end
    local allow = t + cost * T - tau
    if allow > now + TOLERANCE and over(L_RATE, B_RATE) then
      local cache = t + T - tau - now
      if cache < 0 then cache = 0 end
      out[k] = {0, L_RATE, math.ceil(allow - now), math.ceil(cache), none, 0, supp, leaves(qh, qd, fh, fd)}
      break
    end
    newtat = t + cost * T
  end

  -- 7. per-recipient-domain rate
  local dnew, dorder = none, none -- domain -> its new TAT; the domains in order
  if domrate > 0 then
    local count = {}
    dnew, dorder = {}, {}
    for _, i in ipairs(live) do
      local d = ARGV[first + 3 * (i - 1) + 2]
      if not count[d] then
        count[d] = 0
        dorder[#dorder + 1] = d
      end
      count[d] = count[d] + 1
    end
    local T = SECOND / domrate
    local tau = domburst * T
    for _, d in ipairs(dorder) do
      if domraw[d] then
        domtat[d], domraw[d] = tonumber(string.format('%.3f', domraw[d])), nil
      end
      local t = domtat[d]
      if t < now then t = now end
      if t > now + tau then t = now + tau end
      if count[d] > domburst and over(L_DOMAIN, B_DOMAIN) then
        out[k] = {0, TOO_MANY, 0, 0, none, 0, supp, leaves(qh, qd, fh, fd)}
        break
      end
      local allow = t + count[d] * T - tau
      if allow > now + TOLERANCE and over(L_DOMAIN, B_DOMAIN) then
        out[k] = {0, L_DOMAIN, math.ceil(allow - now), 0, none, 0, supp, leaves(qh, qd, fh, fd)}
        break
      end
      dnew[d] = t + count[d] * T
    end
    if out[k] then break end
  end

  -- admitted: the state the next message sees, each stored value exactly
  -- as a reread would give it
  sum = sum + m
  qh, qd = qh + m, qd + m
  if fchour > 0 and newc > 0 then fh, fh_set = fh + newc, true end
  if fcday > 0 and newc > 0 then fd, fd_set = fd + newc, true end
  if newtat then tatraw, tat_set = newtat, true end
  for _, d in ipairs(dorder) do
    if not domset[d] then domorder[#domorder + 1] = d end
    domset[d], domraw[d] = dnew[d], dnew[d]
  end
  if fc then
    for _, i in ipairs(live) do
      local h = ARGV[first + 3 * (i - 1) + 1]
      if known[h] ~= now + knownttl then
        knew[#knew + 1] = h
        known[h] = now + knownttl
      end
    end
  end
  if wmax > 0 and newc > 0 then
    -- the new recipients are outstanding until an event settles them
    local zs = {}
    local exp = now + wtimeout
    for _, h in ipairs(newh) do
      zs[#zs + 1] = exp
      zs[#zs + 1] = h
    end
    redis.call('ZADD', kout, unpack(zs))
    redis.call('PEXPIRE', kout, wtimeout + KNOWN_GRACE)
  end
  if probing then probes, probed = probes - m, true end
  out[k] = {1, '', 0, 0, shadowed, newc, supp, leaves(qh, qd, fh, fd)}
until true end

-- 8. commit, once for the batch
if sum == 0 then return out end
-- recipients of the hour and day are counted quota or not (the operator's
-- usage): two fields of the HSET below, no extra call
local upd = {F_QH, hour .. ':' .. qh, F_QD, day .. ':' .. qd}
if fh_set then upd[#upd + 1] = F_FH; upd[#upd + 1] = hour .. ':' .. fh end
if fd_set then upd[#upd + 1] = F_FD; upd[#upd + 1] = day .. ':' .. fd end
if tat_set then upd[#upd + 1] = F_TAT; upd[#upd + 1] = string.format('%.3f', tatraw or tat) end
redis.call('HSET', KEYS[3], unpack(upd))
if #knew > 0 then
  local kv = {}
  for _, h in ipairs(knew) do
    kv[#kv + 1] = h
    kv[#kv + 1] = kexp
  end
  -- the period hash lives until every expiry written into it has passed:
  -- set once, with F_K_TTL, not on every new field
  if not kttl then
    kv[#kv + 1] = F_K_TTL
    kv[#kv + 1] = YES
  end
  redis.call('HSET', kcur, unpack(kv))
  if not kttl then
    redis.call('PEXPIRE', kcur, (period + 2) * knownttl + KNOWN_GRACE - now)
  end
end
for _, d in ipairs(domorder) do
  local t = domset[d]
  redis.call('SET', domkey[d], string.format('%.3f', t), 'PX', math.ceil(t - now) + TAT_GRACE)
end
if probed then
  redis.call('HSET', KEYS[1], F_STATE, HALF_OPEN, F_PROBES, probes)
end
local sk = P .. K_SENT .. math.floor(now / SENT_BUCKET)
if redis.call('INCRBY', sk, sum) == sum then
  redis.call('PEXPIRE', sk, sentttl)
end
return out
