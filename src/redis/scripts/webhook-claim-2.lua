--[[
  Claims the webhook batches that are due: each is leased (its due time moved to now + lease), so that one
  node at a time sends it, and a node that dies while sending leaves it to be claimed again.

  Input:
    KEYS[1] the batches (hash: batch id -> JSON)
    KEYS[2] the due times (zset: batch id scored by the ms it is due at)
    ARGV[1] now, ms
    ARGV[2] the lease, ms
    ARGV[3] the most batches to claim
  Output:
    the claimed batches, JSON each
]]
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
local leased = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  local json = redis.call('HGET', KEYS[1], id)
  if json then
    redis.call('ZADD', KEYS[2], leased, id)
    out[#out + 1] = json
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return out
