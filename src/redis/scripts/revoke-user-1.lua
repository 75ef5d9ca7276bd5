--[[
  Records that a user's tokens issued before a moment are revoked. Revocations of a user only move
  forward: the later `notBefore` and the longer lifetime win, whichever node writes last.

  Input:
    KEYS[1] the user's revocation (string: notBefore in seconds)
    ARGV[1] notBefore, seconds since epoch (tokens with an `iat` below it are revoked)
    ARGV[2] ms to keep it (at least the longest token lifetime)
  Output:
    the notBefore now stored
]]
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local nb = math.max(cur, tonumber(ARGV[1]))
local left = redis.call('PTTL', KEYS[1])
redis.call('SET', KEYS[1], nb, 'PX', math.max(left, tonumber(ARGV[2])))
return nb
