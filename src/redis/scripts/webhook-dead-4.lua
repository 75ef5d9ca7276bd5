--[[
  Turns a webhook batch into a dead letter, and keeps at most ARGV[4] dead letters (the oldest go).

  Input:
    KEYS[1] the batches (hash: batch id -> JSON)
    KEYS[2] the due times (zset)
    KEYS[3] the dead letters (hash: batch id -> JSON)
    KEYS[4] the dead letters' order (zset: batch id scored by the ms it failed at)
    ARGV[1] the batch id
    ARGV[2] the dead letter, JSON
    ARGV[3] failed at, ms
    ARGV[4] the most dead letters kept
  Output:
    the number of dead letters dropped to stay within the bound
]]
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[4])
local dropped = 0
if over > 0 then
  local old = redis.call('ZRANGE', KEYS[4], 0, over - 1)
  for _, id in ipairs(old) do
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', KEYS[4], id)
    dropped = dropped + 1
  end
end
return dropped
