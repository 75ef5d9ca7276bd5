import { MemoryPresence, MemoryPresenceStore } from '../../src/presence/memory-presence.ts';
import { RedisPresence } from '../../src/presence/redis-presence.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import type { ManualClock } from '../../src/clock.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describePresenceContract } from './presence.contract.ts';

describePresenceContract('memory', async () => {
  // One store per clock: the nodes of a test share their clock and their store.
  const stores = new WeakMap<ManualClock, MemoryPresenceStore>();
  return {
    node: async (clock, options) => {
      let store = stores.get(clock);
      if (!store) stores.set(clock, (store = new MemoryPresenceStore(clock)));
      return new MemoryPresence(store, options);
    },
    close: async () => {},
  };
});

describePresenceContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    return {
      node: async (clock, options) =>
        new RedisPresence((await pool.create()).command, new RedisKeys(prefix), { ...options, clock }),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);
