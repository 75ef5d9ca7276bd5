--[[
  Ends an open stream once (its owner, or the server: idle sweep), and answers its final state. The stream
  stays in the channel's open list until its compacted event is written (stream-compacted-3).

  Input:
    KEYS[1] the stream's state (hash)
    KEYS[2] the stream's text (string)
    ARGV[1] status   ARGV[2] end data JSON ('' none)   ARGV[3] error JSON ('' none)   ARGV[4] now (ms)
    ARGV[5] owner connection ('' any)   ARGV[6] idle before (ms; 0: unconditional)
    ARGV[7] how long the ended stream is remembered (ms)
  Output:
    { 'ok', state fields (flat HGETALL), text } or { 'not_open' | 'not_owner' | 'not_idle' }
]]
if redis.call('HGET', KEYS[1], 'status') ~= 'streaming' then return { 'not_open' } end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'ownerConn') ~= ARGV[5] then return { 'not_owner' } end
local idleBefore = tonumber(ARGV[6])
if idleBefore > 0 and tonumber(redis.call('HGET', KEYS[1], 'lastAt')) >= idleBefore then
  return { 'not_idle' }
end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'lastAt', ARGV[4])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'endData', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
local ttl = tonumber(ARGV[7])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return { 'ok', redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '' }
