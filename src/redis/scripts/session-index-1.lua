--[[
  Keeps a user's index of the sessions that receive their own `user:` channel, so that any node can tell
  whether the channel's target is connected somewhere, away (its events are queued), or absent. Entries
  whose deadline passed are pruned here; sessions deleted without touching the index are told apart by
  the reader (it checks that the session's snapshot still exists).

  Input:
    KEYS[1] the user's index (hash: session key -> "<live 0|1>:<expiresAt ms>")
    ARGV[1] the session key
    ARGV[2] "<live 0|1>:<expiresAt ms>", or '' to remove the session from the index
    ARGV[3] now, ms
    ARGV[4] ms the index must live at least (the session's own time to live)
  Output:
    the number of sessions left in the index
]]
local idx = KEYS[1]
if ARGV[2] == '' then
  redis.call('HDEL', idx, ARGV[1])
else
  redis.call('HSET', idx, ARGV[1], ARGV[2])
end
local now = tonumber(ARGV[3])
local all = redis.call('HGETALL', idx)
for i = 1, #all, 2 do
  local deadline = tonumber(string.match(all[i + 1], ':(%d+)$') or '0')
  if deadline <= now then redis.call('HDEL', idx, all[i]) end
end
local left = redis.call('HLEN', idx)
if left == 0 then
  redis.call('DEL', idx)
else
  local ttl = tonumber(ARGV[4])
  if redis.call('PTTL', idx) < ttl then redis.call('PEXPIRE', idx, ttl) end
end
return left
