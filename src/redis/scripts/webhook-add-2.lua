--[[
  Queues a webhook batch unless the queue is full.

  Input:
    KEYS[1] the batches (hash: batch id -> JSON)
    KEYS[2] the due times (zset: batch id scored by the ms it is due at)
    ARGV[1] the batch id
    ARGV[2] the batch, JSON
    ARGV[3] due at, ms
    ARGV[4] the most batches the queue holds
  Output:
    1 queued, 0 the queue is full
]]
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
return 1
