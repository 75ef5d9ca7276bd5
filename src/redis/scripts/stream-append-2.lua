--[[
  Adds appends to an open stream, atomically: all of them or nothing, only from its owner, within the
  byte limit.

  Input:
    KEYS[1] the stream's state (hash)
    KEYS[2] the stream's text (string)
    ARGV[1] owner connection   ARGV[2] text to add (as stored)   ARGV[3] appends it joins
    ARGV[4] plain UTF-8 bytes it adds   ARGV[5] max bytes   ARGV[6] now (ms)
    ARGV[7] ttl of an open stream without appends (ms)
  Output:
    { 'ok', fromSeq, seq } or { 'not_open' | 'not_owner' | 'too_large' }
]]
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'streaming' then return { 'not_open' } end
if redis.call('HGET', KEYS[1], 'ownerConn') ~= ARGV[1] then return { 'not_owner' } end
local bytes = tonumber(redis.call('HGET', KEYS[1], 'bytes')) + tonumber(ARGV[4])
if bytes > tonumber(ARGV[5]) then return { 'too_large' } end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local count = tonumber(ARGV[3])
redis.call('APPEND', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'seq', seq + count, 'bytes', bytes, 'lastAt', ARGV[6])
local ttl = tonumber(ARGV[7])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return { 'ok', seq + 1, seq + count }
