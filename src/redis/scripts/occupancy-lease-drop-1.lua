--[[
  Drops a dead node's occupancy lease once its channels are swept (src/webhooks/redis-occupancy.ts), unless
  it was refreshed meanwhile (a node that was only late: it re-registers its channels itself).

  Input:
    KEYS[1] the leases (zset member -> expiry, ms)
    ARGV[1] the member (node id # incarnation)
    ARGV[2] now (ms)
  Output:
    1 dropped, 0 refreshed meanwhile (or gone)
]]
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
