--[[
  Appends a frame to a session's offline queue, dropping (and counting) the oldest when it is full.

  Input:
    KEYS[1] the session's queue (list)
    KEYS[2] the session's overflow counter
    ARGV[1] the encoded frame
    ARGV[2] max frames per session
    ARGV[3] ttl in ms (the session TTL): both keys expire when the session is gone
  Output:
    { frames now queued, frames dropped by this push }
]]
local max = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
local dropped = 0
if n > max then
  dropped = n - max
  redis.call('LTRIM', KEYS[1], dropped, -1)
  redis.call('INCRBY', KEYS[2], dropped)
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return { n - dropped, dropped }
