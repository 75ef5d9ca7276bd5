import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRedisAddress } from '../../../src/redis/client.ts';
import { RedisKeys } from '../../../src/redis/keys.ts';

/** The hash tag Redis Cluster hashes: between the first '{' and the next '}', when non-empty. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close);
}

test('a channel stream, meta and topic share one hash tag; channels do not share', () => {
  const k = new RedisKeys('t:');
  const key = 'org1/room:abc:def';
  const tags = [k.stream(key), k.meta(key), k.topic(key)].map(hashTag);
  assert.deepEqual(new Set(tags).size, 1);
  assert.notEqual(hashTag(k.stream('org1/room:abd')), tags[0]);
  assert.ok(k.stream(key).startsWith('t:'));
  assert.equal(k.channelOfTopic(k.topic(key)), key);
  assert.equal(k.channelOfTopic('t:control'), undefined);
  assert.equal(new RedisKeys().control(), 'apix:control');
});

test('user data cannot move a hash tag or smuggle glob characters into channel keys', () => {
  const k = new RedisKeys();
  for (const bad of ['o/a{b}', 'o/a*', 'o/a?', 'o/[a]', 'o/a b', ''])
    assert.throws(() => k.stream(bad), /channel/);
  assert.throws(() => new RedisKeys('x{y}:'), /hash tags/);
  const sid = 'we{ir}d%';
  assert.equal(hashTag(k.queue(sid)), hashTag(k.queueOverflow(sid)));
  assert.equal(hashTag(k.queue(sid)), 'we%7Bir%7Dd%25');
  assert.notEqual(k.queue('a%7Bb'), k.queue('a{b'));
  assert.equal(hashTag(k.presenceMembers('o/room:x')), hashTag(k.presenceDeadlines('o/room:x')));
});

test('parseRedisAddress', () => {
  assert.deepEqual(parseRedisAddress('redis://127.0.0.1:6380/2'), {
    cluster: false,
    tls: false,
    nodes: [{ host: '127.0.0.1', port: 6380 }],
    username: undefined,
    password: undefined,
    db: 2,
  });
  const c = parseRedisAddress('rediss+cluster://u:p%40ss@h1:7000,h2,[::1]:7002');
  assert.equal(c.cluster, true);
  assert.equal(c.tls, true);
  assert.equal(c.username, 'u');
  assert.equal(c.password, 'p@ss');
  assert.deepEqual(c.nodes, [
    { host: 'h1', port: 7000 },
    { host: 'h2', port: 6379 },
    { host: '::1', port: 7002 },
  ]);
  assert.equal(parseRedisAddress(['a:1', 'b:2']).cluster, true);
  assert.equal(parseRedisAddress('redis://:secret@h').password, 'secret');
  assert.throws(() => parseRedisAddress('http://x'), /not a Redis URL/);
  assert.throws(() => parseRedisAddress('redis://a:1,b:2'), /redis\+cluster/);
  assert.throws(() => parseRedisAddress('redis+cluster://a:1/3'), /database 0/);
});
