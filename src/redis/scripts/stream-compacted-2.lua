--[[
  The stream's compacted event is in the history: remember its id, take the stream off the open list.

  Input:
    KEYS[1] the stream's state (hash)
    KEYS[2] the channel's open streams (hash streamId -> stream id)
    ARGV[1] streamId   ARGV[2] the compacted event's id
  Output:
    1
]]
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'compactedId', ARGV[2]) end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
