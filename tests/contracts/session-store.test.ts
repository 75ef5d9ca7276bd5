import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock, systemClock } from '../../src/clock.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { MemorySessionStore } from '../../src/sessions/memory-session-store.ts';
import { RedisSessionStore } from '../../src/sessions/redis-session-store.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, countPrefix, deletePrefix } from '../support/redis-engines.ts';
import { sleep } from '../support/wait.ts';
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
      await store.save(snapshot(Date.now() + 60));
      // The snapshot, and its user's index of sessions receiving `user:<id>` (the snapshot has that channel).
      assert.equal(await countPrefix(redis.url, prefix), 2);
      await sleep(120);
      assert.equal(await countPrefix(redis.url, prefix), 0);
    } finally {
      await pool.closeAll();
      await deletePrefix(redis.url, prefix);
      await redis.release();
    }
  },
);
