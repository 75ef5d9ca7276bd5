import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock, systemClock } from '../../src/clock.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { MemorySessionStore } from '../../src/sessions/memory-session-store.ts';
import { RedisSessionStore } from '../../src/sessions/redis-session-store.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, countPrefix, deletePrefix } from '../support/redis-engines.ts';
import { waitFor } from '../support/wait.ts';
import { describeSessionStoreContract, snapshot } from './session-store.contract.ts';

// Realistic times: Redis stores with PX = expiresAt - clock.now(), so the manual clock starts at "now".
const makeClock = (): ManualClock => new ManualClock(Date.now());

describeSessionStoreContract(
  'memory',
  async () => ({ store: async (clock) => new MemorySessionStore(clock), close: async () => {} }),
  makeClock,
);

describeSessionStoreContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    const clients = await pool.create();
    return {
      store: async (clock) => new RedisSessionStore(clients.command, new RedisKeys(prefix), clock),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  makeClock,
  { skip: skipWithoutRedis() },
);

test(
  'RedisSessionStore: Redis itself forgets an expired session (PX)',
  { skip: skipWithoutRedis() },
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    try {
      const clients = await pool.create();
      const store = new RedisSessionStore(clients.command, new RedisKeys(prefix), systemClock);
      // Redis expires on its own clock: a PX long enough to count the keys first on a busy machine, then
      // a bounded wait for Redis to drop them (nobody deletes them).
      const saved = Date.now();
      await store.save(snapshot(saved + 2000));
      // The snapshot, and its user's index of sessions receiving `user:<id>` (the snapshot has that channel).
      assert.equal(await countPrefix(redis.url, prefix), 2);
      await waitFor(async () => (await countPrefix(redis.url, prefix)) === 0, 15_000, 'Redis expiry');
      assert.ok(Date.now() - saved >= 1900, 'not before the PX');
    } finally {
      await pool.closeAll();
      await deletePrefix(redis.url, prefix);
      await redis.release();
    }
  },
);
