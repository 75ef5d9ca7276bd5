--[[
  Opens a stream, or hands an open one back to its user (a publisher resuming on any node).

  Input:
    KEYS[1] the stream's state (hash)
    KEYS[2] the stream's text (string)
    KEYS[3] the channel's open streams (hash streamId -> stream id)
    ARGV[1] streamId   ARGV[2] stream id   ARGV[3] eventType   ARGV[4] data JSON
    ARGV[5] owner node   ARGV[6] owner connection   ARGV[7] userId   ARGV[8] now (ms)
    ARGV[9] ttl of an open stream without appends (ms)
  The open list does not expire: a stream whose state expired (its node lost, nobody ended it) is dropped
  from it by the next reader.
  Output:
    { outcome ('created' | 'resumed' | 'taken'), state fields (flat HGETALL), text }
]]
local ttl = tonumber(ARGV[9])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local status = redis.call('HGET', KEYS[1], 'status')
  local user = redis.call('HGET', KEYS[1], 'userId')
  local outcome = 'taken'
  if status == 'streaming' and user == ARGV[7] then
    outcome = 'resumed'
    redis.call('HSET', KEYS[1], 'ownerNode', ARGV[5], 'ownerConn', ARGV[6], 'lastAt', ARGV[8])
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  return { outcome, redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '' }
end
redis.call('HSET', KEYS[1], 'streamId', ARGV[1], 'id', ARGV[2], 'eventType', ARGV[3], 'data', ARGV[4],
  'ownerNode', ARGV[5], 'ownerConn', ARGV[6], 'userId', ARGV[7], 'startedAt', ARGV[8], 'lastAt', ARGV[8],
  'seq', 0, 'bytes', 0, 'status', 'streaming')
redis.call('SET', KEYS[2], '', 'PX', ttl)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return { 'created', redis.call('HGETALL', KEYS[1]), '' }
