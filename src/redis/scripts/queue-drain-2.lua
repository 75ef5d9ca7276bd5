--[[
  Removes and returns everything queued for a session, with the number of frames dropped on overflow.

  Input:
    KEYS[1] the session's queue (list)
    KEYS[2] the session's overflow counter
  Output:
    { { frame, ... } oldest first, overflowed }
]]
local items = redis.call('LRANGE', KEYS[1], 0, -1)
local overflowed = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('DEL', KEYS[1], KEYS[2])
return { items, overflowed }
