import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryOfflineQueue } from '../../src/queue/memory-queue.ts';
import { RedisOfflineQueue } from '../../src/queue/redis-queue.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import type { FoundRedis } from '../support/redis.ts';
import { ClientPool, countPrefix, deletePrefix } from '../support/redis-engines.ts';
import { waitFor } from '../support/wait.ts';
import { describeQueueContract } from './queue.contract.ts';

describeQueueContract('memory', async () => ({
  queue: async (max) => new MemoryOfflineQueue(max),
  close: async () => {},
}));

describeQueueContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    const clients = await pool.create();
    return {
      queue: async (max) =>
        new RedisOfflineQueue(clients.command, new RedisKeys(prefix), { maxPerSession: max, ttlMs: 60_000 }),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);

describe('RedisOfflineQueue', { skip: skipWithoutRedis() }, () => {
  let redis: FoundRedis;
  let prefix: string;
  before(async () => {
    redis = await findRedis();
    prefix = uniquePrefix();
  });
  after(async () => {
    await deletePrefix(redis.url, prefix);
    await redis.release();
  });

  test('a queue pushed on one node is drained on another (resume elsewhere)', async () => {
    const keys = new RedisKeys(prefix);
    const [c1, c2] = [await new ClientPool(redis.url).create(), await new ClientPool(redis.url).create()];
    try {
      const q1 = new RedisOfflineQueue(c1.command, keys, { maxPerSession: 10, ttlMs: 60_000 });
      const q2 = new RedisOfflineQueue(c2.command, keys, { maxPerSession: 10, ttlMs: 60_000 });
      const f = { key: 'o/agent:x', id: '1-0', type: 't', timestamp: 1, attempts: 1, frame: '{}', ack: true };
      await q1.push('s1', f);
      assert.deepEqual(await q2.drain('s1'), { frames: [f], overflowed: 0 });
      assert.equal(await q1.size('s1'), 0);
    } finally {
      await Promise.all([c1.close(), c2.close()]);
    }
  });

  test('a queue nobody drains expires with the session TTL', async () => {
    const p = uniquePrefix();
    const clients = await new ClientPool(redis.url).create();
    try {
      // Redis expires on its own clock: a TTL long enough to count the keys first on a busy machine, then
      // a bounded wait for Redis to drop them (nobody deletes them).
      const pushed = Date.now();
      const q = new RedisOfflineQueue(clients.command, new RedisKeys(p), { maxPerSession: 2, ttlMs: 2000 });
      const f = {
        key: 'o/agent:x',
        id: '1-0',
        type: 't',
        timestamp: 1,
        attempts: 0,
        frame: '{}',
        ack: false,
      };
      for (let i = 0; i < 3; i++) await q.push('s1', f); // one overflow: the counter key exists too
      assert.equal(await countPrefix(redis.url, p), 2);
      await waitFor(async () => (await countPrefix(redis.url, p)) === 0, 15_000, 'Redis expiry');
      assert.ok(Date.now() - pushed >= 1900, 'not before the TTL');
      // The node's gauge forgets the queue a TTL after the push's answer, a little after Redis (which
      // counts from the command): on a busy machine that answer can come late.
      await waitFor(() => q.totalSize() === 0, 15_000, 'the gauge to forget the queue');
    } finally {
      await clients.close();
      await deletePrefix(redis.url, p);
    }
  });
});
