-- sesgate usage reconcile (store.AddUsage): adds what a replica admitted in
-- degraded mode to the tenant's window counters, in the windows of the
-- spend; a window that has ended is skipped, a spend ahead of Redis's clock
-- counts in the current window. Constants (UPPER_CASE) come from Go:
-- usageScript (admit.go) binds them ahead of this text.
-- KEYS: 1 the tenant's state hash.
-- ARGV: time (0: Redis TIME), the spend's time (ms), then what to add to
-- the hourly and daily quota counters and the hourly and daily first-contact
-- counters (store.Usage). Returns the number of counters written.

local now, at = tonumber(ARGV[1]), tonumber(ARGV[2])
local qh, qd, fh, fd = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * SECOND + math.floor(tonumber(t[2]) / MS_US)
end

local st = redis.call('HMGET', KEYS[1], F_QH, F_QD, F_FH, F_FD)
local upd = {}
-- add adds by to the counter field (stored value v) of windows of size ms
local function add(field, v, size, by)
  if by <= 0 then return end
  local cur = math.floor(now / size)
  if math.floor(at / size) < cur then return end
  local count = by
  if v then
    local w, c = string.match(v, '^(%d+):(%d+)$')
    if tonumber(w) == cur then count = count + tonumber(c) end
  end
  table.insert(upd, field)
  table.insert(upd, cur .. ':' .. count)
end
add(F_QH, st[1], HOUR, qh)
add(F_QD, st[2], DAY, qd)
add(F_FH, st[3], HOUR, fh)
add(F_FD, st[4], DAY, fd)
if #upd > 0 then redis.call('HSET', KEYS[1], unpack(upd)) end
return #upd / 2
