--[[
  Saves a channel event in the channel's stream and publishes it to the channel's topic, atomically, so
  that the order of ids is the order in which every subscribed node receives the events.

  The frame text is serialized once, in Node, with a placeholder where the id goes; it arrives here split
  at the placeholder (ARGV[6], ARGV[7]) and the id Redis gives the entry is put between the halves.

  With an idempotency window (ARGV[9] > 0), the publisher's idempotency key (KEYS[3], tagged like the
  channel's keys) is checked and set in the same step: a key seen within the window answers the earlier
  event's id and appends nothing, so racing duplicates on any nodes give one event.

  Input:
    KEYS[1] the channel's stream
    KEYS[2] the channel's meta hash (field `floor`: id of the last event trimmed from the stream)
    KEYS[3] the idempotency key's entry (string: the event id, PX the window); unused when ARGV[9] is 0
    ARGV[1] the channel's pub/sub topic
    ARGV[2] history size: events kept (0: keep none, the stream only holds the last id)
    ARGV[3] history ttl in ms (0: no age limit)
    ARGV[4] ms after which an idle channel's keys expire
    ARGV[5] header: JSON [type, timestamp, publisherNodeId, publisherConnectionId]
    ARGV[6] the frame text before the id
    ARGV[7] the frame text after the id
    ARGV[8] 'publish' or 'spublish' (sharded pub/sub in a cluster)
    ARGV[9] idempotency window in ms (0: no idempotency key)
  Output:
    {event id (`<ms>-<seq>`), 1 when it is an earlier event's (a duplicate) else 0}
]]
local stream, meta = KEYS[1], KEYS[2]
local size = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local keyTtl = tonumber(ARGV[4])
local header, before, after = ARGV[5], ARGV[6], ARGV[7]
local window = tonumber(ARGV[9])

if window > 0 then
  local seen = redis.call('GET', KEYS[3])
  if seen then return {seen, 1} end
end

local floor = nil
local id
if size <= 0 then
  -- No history: the stream keeps only its last id (so ids still increase), and every event is "trimmed".
  id = redis.call('XADD', stream, 'MAXLEN', '0', '*', 'h', header, 'b', before, 'a', after)
  floor = id
else
  local len = redis.call('XLEN', stream)
  local drop = len + 1 - size
  if drop > 0 then
    -- The newest of the entries MAXLEN will drop becomes the floor; read it from the shorter end.
    if drop <= size then
      local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', drop)
      floor = old[#old][1]
    else
      local kept = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', size)
      floor = kept[#kept][1]
    end
  end
  id = redis.call('XADD', stream, 'MAXLEN', size, '*', 'h', header, 'b', before, 'a', after)
  if ttl > 0 then
    local ms = tonumber(string.match(id, '^(%d+)'))
    local cutoff = tostring(ms - ttl) .. '-0'
    local old = redis.call('XREVRANGE', stream, '(' .. cutoff, '-', 'COUNT', 1)
    if #old > 0 then
      floor = old[1][1]
      redis.call('XTRIM', stream, 'MINID', cutoff)
    end
  end
end
if floor then redis.call('HSET', meta, 'floor', floor) end
redis.call('PEXPIRE', stream, keyTtl)
redis.call('PEXPIRE', meta, keyTtl)
redis.call(ARGV[8], ARGV[1], id .. '\n' .. header .. '\n' .. before .. id .. after)
if window > 0 then redis.call('SET', KEYS[3], id, 'PX', window) end
return {id, 0}
