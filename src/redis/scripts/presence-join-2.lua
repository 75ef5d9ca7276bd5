--[[
  Adds or refreshes presence members of one room: each gets a deadline; members whose deadline passed
  (their node stopped refreshing them: it died) are dropped by presence-list.

  Input:
    KEYS[1] the room's members hash (connectionId -> JSON member)
    KEYS[2] the room's deadlines zset (connectionId scored by deadline, ms since epoch)
    ARGV[1] deadline (ms since epoch)
    ARGV[2] ms after which the room's keys expire if nobody refreshes them
    ARGV[3], ARGV[4], ... pairs of connectionId, JSON member
  Output:
    the number of members written
]]
local n = 0
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[i])
  n = n + 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return n
