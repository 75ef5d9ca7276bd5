import { systemClock } from '../../src/clock.ts';
import { MemoryRevocationStore } from '../../src/auth/memory-revocation.ts';
import { RedisRevocationStore } from '../../src/auth/redis-revocation.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describeRevocationContract } from './revocation.contract.ts';

describeRevocationContract('memory', async () => {
  const store = new MemoryRevocationStore(systemClock);
  return { node: async () => store, close: async () => {} };
});

describeRevocationContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    return {
      node: async () => new RedisRevocationStore((await pool.create()).command, new RedisKeys(prefix)),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);
