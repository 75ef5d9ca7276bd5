--[[
  Decides channel.occupied / channel.vacated cluster-wide: a channel is occupied while at least one node
  has a subscriber on it. Each node adds itself on its first local subscriber and removes itself on its
  last; the first node in and the last node out are told so, atomically (one script, one key).

  Input:
    KEYS[1] the channel's nodes (set of node ids)
    ARGV[1] the node id
    ARGV[2] '1' the node has its first subscriber, '0' its last left
  Output:
    1 the channel became occupied (first in) or vacated (last out), 0 nothing changed cluster-wide
]]
if ARGV[2] == '1' then
  if redis.call('SADD', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1 then return 1 end
  return 0
end
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
