--[[
  Reads a channel's history with the same answers as the memory engine (src/history/memory-history.ts),
  in one atomic step so that no publish can trim between the checks and the read.

  `since` is recoverable when it is the channel's floor (the last trimmed id, '0-0' before any trim) or an id
  still in the stream. Older than every retained event (trimmed, lost with a restart): every retained event,
  recovered = 0. Inside the retained range but not an id of the stream (another channel's id): nothing.

  Input:
    KEYS[1] the channel's stream
    KEYS[2] the channel's meta hash (field `floor`)
    ARGV[1] since: '' for none, '-' for an id that does not parse (answers recovered = 0)
    ARGV[2] last: the number of newest events wanted when there is no `since`; -1 for "up to the cap"
    ARGV[3] cap: at most this many events
    ARGV[4] history ttl in ms (0: no age limit); expired events are trimmed here as on publish
    ARGV[5] byte budget (0: none): only the first events whose fields add up to at most this many bytes are
            answered (at least one); `recovered` is as without it (a bound on the reply, HTTP history pages)
  Output:
    { top id or false, recovered (1/0), { {id, {field, value, ...}}, ... } }
]]
local stream, meta = KEYS[1], KEYS[2]
local since = ARGV[1]
local last = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local maxBytes = tonumber(ARGV[5]) or 0

local function within(events)
  if maxBytes <= 0 then return events end
  local bytes = 0
  for i = 1, #events do
    local fields = events[i][2]
    for j = 2, #fields, 2 do bytes = bytes + #fields[j] end
    if bytes > maxBytes and i > 1 then
      local kept = {}
      for k = 1, i - 1 do kept[k] = events[k] end
      return kept
    end
  end
  return events
end

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function cmp(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am ~= bm then return am < bm and -1 or 1 end
  if as ~= bs then return as < bs and -1 or 1 end
  return 0
end

if ttl > 0 and redis.call('EXISTS', stream) == 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local cutoff = tostring(now - ttl) .. '-0'
  local old = redis.call('XREVRANGE', stream, '(' .. cutoff, '-', 'COUNT', 1)
  if #old > 0 then
    redis.call('XTRIM', stream, 'MINID', cutoff)
    redis.call('HSET', meta, 'floor', old[1][1])
    redis.call('PEXPIRE', meta, math.max(redis.call('PTTL', stream), 1000))
  end
end

local floor = redis.call('HGET', meta, 'floor') or '0-0'
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
local top = false
if #newest > 0 then top = newest[1][1] elseif floor ~= '0-0' then top = floor end

if since == '' then
  local n = cap
  if last >= 0 and last < n then n = last end
  if n <= 0 then return { top, 1, {} } end
  local rev = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', n)
  local events = {}
  for i = #rev, 1, -1 do events[#events + 1] = rev[i] end
  return { top, 1, within(events) }
end
if since == '-' then return { top, 0, {} } end

if cmp(since, floor) == 0 then
  if cap <= 0 then return { top, 1, {} } end
  local events = redis.call('XRANGE', stream, '-', '+', 'COUNT', cap)
  local recovered = redis.call('XLEN', stream) <= cap and 1 or 0
  return { top, recovered, within(events) }
end
-- Anything else: recovered only when `since` is one of this channel's ids still in the stream. Older than
-- every retained event (trimmed, or lost with a restart of Redis): every retained event, recovered = 0,
-- so the client knows of the gap and loses nothing still there.
if top == false then return { top, 0, {} } end
if #redis.call('XRANGE', stream, since, since) == 0 then
  -- Inside the retained range yet not one of its ids: not a position in this channel, nothing.
  if #redis.call('XRANGE', stream, '-', since, 'COUNT', 1) > 0 then return { top, 0, {} } end
  if cap <= 0 then return { top, 0, {} } end
  return { top, 0, within(redis.call('XRANGE', stream, '-', '+', 'COUNT', cap)) }
end
local recovered = 1
local events = redis.call('XRANGE', stream, '(' .. since, '+', 'COUNT', cap + 1)
if #events > cap then
  recovered = 0
  events[#events] = nil
end
return { top, recovered, within(events) }
