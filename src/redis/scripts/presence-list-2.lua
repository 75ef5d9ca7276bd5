--[[
  Drops the room's expired members, then returns the live ones.

  Input:
    KEYS[1] the room's members hash
    KEYS[2] the room's deadlines zset
    ARGV[1] now (ms since epoch): members with deadline <= now are expired
  Output:
    { JSON member, ... }
]]
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for i = 1, #expired, 500 do
  redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 499, #expired)))
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1]) end
return redis.call('HVALS', KEYS[1])
