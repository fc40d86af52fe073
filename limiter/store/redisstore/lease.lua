-- sesgate account rate lease: GCRA on KEYS[1] ({g} tag) granting up to
-- ARGV[3] tokens at once. ARGV: 1 rate/s, 2 burst, 3 want, 4 now_ms (0: TIME).
-- Returns {granted, retry_ms}.
local now = tonumber(ARGV[4])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local T = 1000 / rate
local tau = burst * T
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat > now + tau then tat = now + tau end
local k = math.floor((now + tau - tat) / T + 1e-9)
if k > want then k = want end
if k <= 0 then
  return {0, math.ceil(tat + T - tau - now)}
end
local newtat = tat + k * T
redis.call('SET', KEYS[1], string.format('%.3f', newtat), 'PX', math.ceil(newtat - now) + 1000)
return {k, 0}
