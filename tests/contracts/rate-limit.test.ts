import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../../src/clock.ts';
import { MemoryRateLimitStore } from '../../src/ratelimit/memory-rate-limit.ts';
import { RedisRateLimitStore } from '../../src/ratelimit/redis-rate-limit.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, countPrefix, deletePrefix } from '../support/redis-engines.ts';
import { describeRateLimitContract } from './rate-limit.contract.ts';

describeRateLimitContract('memory', async () => {
  // One store per clock: the nodes of a test share their clock and their store.
  const stores = new WeakMap<ManualClock, MemoryRateLimitStore>();
  return {
    node: async (clock) => {
      let store = stores.get(clock);
      if (!store) stores.set(clock, (store = new MemoryRateLimitStore(clock)));
      return store;
    },
    close: async () => {},
  };
});

for (const maxLease of [1, 32]) {
  describeRateLimitContract(
    `redis (maxLease ${maxLease})`,
    async () => {
      const redis = await findRedis();
      const prefix = uniquePrefix();
      const pool = new ClientPool(redis.url);
      return {
        node: async (clock) =>
          new RedisRateLimitStore((await pool.create()).command, new RedisKeys(prefix), {
            clock,
            serverTime: false,
            maxLease,
          }),
        close: async () => {
          await pool.closeAll();
          await deletePrefix(redis.url, prefix);
          await redis.release();
        },
      };
    },
    { skip: skipWithoutRedis() },
  );
}

describe('MemoryRateLimitStore bounds', () => {
  it('keeps at most maxKeys buckets', async () => {
    const s = new MemoryRateLimitStore(new ManualClock(), 100);
    for (let i = 0; i < 1000; i++) await s.take(`k${i}`, { perSec: 1, burst: 1 });
    assert.ok(s.size <= 100, `${s.size} buckets`);
  });
});

describe('RedisRateLimitStore leasing', { skip: skipWithoutRedis() }, () => {
  it('serves most requests from a lease, refuses a flood without Redis, and lets Redis forget full buckets', async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    try {
      const clock = new ManualClock();
      const store = new RedisRateLimitStore((await pool.create()).command, new RedisKeys(prefix), {
        clock,
        serverTime: false,
      });
      const limit = { perSec: 1000, burst: 1000 };
      let allowed = 0;
      for (let i = 0; i < 500; i++) if ((await store.take('org:pub:acme', limit)).allowed) allowed++;
      assert.equal(allowed, 500);
      assert.ok(store.calls < 40, `${store.calls} Redis calls for 500 requests`);

      const small = { perSec: 1, burst: 2 };
      let refused = 0;
      for (let i = 0; i < 200; i++) if (!(await store.take('ch:acme/agent:x', small)).allowed) refused++;
      assert.equal(refused, 198);
      const before = store.calls;
      for (let i = 0; i < 100; i++) await store.take('ch:acme/agent:x', small);
      assert.equal(store.calls, before, 'a remembered refusal costs no Redis call');

      // Keys carry a TTL: the time the bucket takes to fill up again (+1 s).
      assert.ok((await countPrefix(redis.url, prefix)) > 0);
      await store.close();
    } finally {
      await pool.closeAll();
      await deletePrefix(redis.url, prefix);
      await redis.release();
    }
  });

  it('refills by the Redis server clock by default', async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    try {
      // A node clock far in the past does not stop the refill: Redis's TIME does it.
      const clock = new ManualClock(1_000);
      const store = new RedisRateLimitStore((await pool.create()).command, new RedisKeys(prefix), {
        clock,
        maxLease: 1,
      });
      // 5/s: a token every 200 ms, so a slow machine cannot refill between the two takes.
      const limit = { perSec: 5, burst: 1 };
      assert.equal((await store.take('k', limit)).allowed, true);
      const r = await store.take('k', limit);
      assert.equal(r.allowed, false);
      await new Promise((res) => setTimeout(res, 230));
      clock.advance(r.retryAfterMs);
      assert.equal((await store.take('k', limit)).allowed, true);
    } finally {
      await pool.closeAll();
      await deletePrefix(redis.url, prefix);
      await redis.release();
    }
  });
});
