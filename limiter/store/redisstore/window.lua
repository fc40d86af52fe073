-- sesgate first-contact window: settle one SES event's recipients
-- (store/window.go). On the tenant's slot.
-- KEYS: 1 the window hash, 2 the outstanding sorted set.
-- ARGV: 1 time (0: Redis TIME), 2 outcome, 3 initial, 4 min, 5 max,
-- 6 threshold, 7 the tenant's key prefix, 8 sample, 9 shrink bounce rate,
-- then one HMAC per recipient.
-- Returns {settled, window, threshold, outstanding, held, deliveries,
-- expired, epoch delivered, epoch bounced, shrunk (0/1)}, the window as a
-- string.
local now, outcome = tonumber(ARGV[1]), ARGV[2]
local winit, wmin, wmax, wthresh = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local P = ARGV[7]
local sample, brate = tonumber(ARGV[8]), tonumber(ARGV[9])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * SECOND + math.floor(tonumber(t[2]) / MS_US)
end
local function clamp(v) return math.min(math.max(v, math.max(wmin, 1)), wmax) end

local gone = redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if gone > 0 then redis.call('HINCRBY', KEYS[1], F_W_EXPIRED, gone) end
local settled, fresh = 0, false
for i = ARGC + 1, #ARGV do
  settled = settled + redis.call('ZREM', KEYS[2], ARGV[i])
  if outcome == COMPLAINT and redis.call('SET', P .. K_WSHRUNK .. ARGV[i], '1', 'NX', 'PX', SETTLE_MEMORY) then
    fresh = true
  end
end
local w = redis.call('HMGET', KEYS[1], F_W_WINDOW, F_W_THRESH, F_W_EPOCH_D, F_W_EPOCH_B)
local cwnd, thresh = tonumber(w[1]) or winit, tonumber(w[2]) or wthresh
local ed, eb = tonumber(w[3]) or 0, tonumber(w[4]) or 0
cwnd = clamp(cwnd)
local changed, shrunk = false, 0
-- halve halves the window; a complaint also sets the threshold, a bad
-- epoch keeps it (store.EndEpoch, store.ShrinkWindow).
local function halve(keep)
  shrunk = 1
  cwnd = clamp(math.floor(cwnd / 2))
  if not keep then thresh = cwnd end
end
if outcome == DELIVERY then
  redis.call('HINCRBY', KEYS[1], F_W_DELIVERIES, #ARGV - ARGC)
  for _ = 1, settled do
    if cwnd < thresh then cwnd = cwnd + 1 else cwnd = cwnd + 1 / cwnd end
  end
  cwnd = clamp(cwnd)
  ed = ed + settled
  changed = settled > 0
elseif outcome == BOUNCE then
  eb = eb + settled
  changed = settled > 0
elseif outcome == COMPLAINT and fresh then
  halve()
  changed = true
end
-- the epoch (store.EndEpoch)
if ed + eb >= sample then
  if eb / (ed + eb) > brate then halve(true) end
  ed, eb = 0, 0
  changed = true
end
if changed then
  redis.call('HSET', KEYS[1], F_W_WINDOW, string.format('%.17g', cwnd), F_W_THRESH, thresh,
    F_W_EPOCH_D, ed, F_W_EPOCH_B, eb)
end
local st = redis.call('HMGET', KEYS[1], F_W_HELD, F_W_DELIVERIES, F_W_EXPIRED)
return {settled, string.format('%.17g', cwnd), thresh, redis.call('ZCARD', KEYS[2]),
  tonumber(st[1]) or 0, tonumber(st[2]) or 0, tonumber(st[3]) or 0, ed, eb, shrunk}
