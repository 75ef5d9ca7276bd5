import { MemoryStreamStore } from '../../src/streams/memory-stream-store.ts';
import { RedisStreamStore } from '../../src/streams/redis-stream-store.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describeStreamStoreContract } from './stream-store.contract.ts';

const ttls = { openTtlMs: 3_600_000, endedTtlMs: 3_600_000 };

describeStreamStoreContract('memory', async () => {
  const store = new MemoryStreamStore({ ...ttls, maxStreams: 1000, now: () => 1 });
  return { stores: async () => [store, store], close: () => store.close() };
});

describeStreamStoreContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    const [c1, c2] = [await pool.create(), await pool.create()];
    const keys = new RedisKeys(prefix);
    return {
      stores: async () => [
        new RedisStreamStore(c1.command, keys, ttls),
        new RedisStreamStore(c2.command, keys, ttls),
      ],
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);
