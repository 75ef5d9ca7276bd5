--[[
  Publishes a live-only message (presence) to a channel's topic from the node that owns the channel's
  stream (KEYS[1]), the node publish-3.lua publishes its events from: in a cluster a keyless PUBLISH may
  go out from any node and overtake or trail the channel's events; from the same node it keeps their order.
  Input:
    KEYS[1] the channel's stream key (only routes the call; not read or written)
    ARGV[1] topic, ARGV[2] message, ARGV[3] 'publish' or 'spublish'
  Output: the number of receivers, as PUBLISH answers.
]]
return redis.call(ARGV[3], ARGV[1], ARGV[2])
