--[[
  Takes tokens from a token bucket shared by every node: for one request (want = need) or for a lease
  of several that the node then hands out locally (want > need).

  Input:
    KEYS[1] the bucket: a hash with t = tokens (a float) and ts = time of the last refill (ms)
    ARGV[1] refill rate, tokens per second (> 0)
    ARGV[2] burst: the bucket's capacity (>= 1)
    ARGV[3] need: the fewest tokens worth taking (the request's cost, <= burst)
    ARGV[4] want: the most tokens to take (>= need)
    ARGV[5] now, ms since epoch; empty: the Redis server's clock (TIME), so nodes' clocks do not matter
  Output:
    {granted, retryAfterMs}: granted is 0 (refused: `need` tokens will be there in retryAfterMs)
    or from need to want (as many whole tokens as the bucket holds)
]]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local need = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
elseif now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
  ts = now
end
local granted = 0
local retry = 0
if tokens >= need then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
else
  retry = math.max(1, math.ceil((need - tokens) * 1000 / rate))
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(ts))
-- Once full again the bucket is the same as a missing one: let Redis forget it.
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, retry}
