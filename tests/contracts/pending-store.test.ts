import { MemoryPendingStore } from '../../src/pending/pending-store.ts';
import { RedisPendingStore } from '../../src/pending/redis-pending-store.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describePendingStoreContract } from './pending-store.contract.ts';

describePendingStoreContract('memory', async () => {
  // One store per engine: the lease is per store, like one Redis.
  const store = new MemoryPendingStore();
  return { store: async () => store, close: async () => {} };
});

describePendingStoreContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    const clients = await pool.create();
    const store = new RedisPendingStore(clients.command, { prefix, cluster: false });
    return {
      store: async () => store,
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);
