import { MemoryRpcRegistry } from '../../src/rpc/registry.ts';
import { RedisRpcRegistry } from '../../src/rpc/redis-registry.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describeRpcRegistryContract } from './rpc-registry.contract.ts';

describeRpcRegistryContract('memory', async () => ({
  registry: new MemoryRpcRegistry(),
  close: async () => {},
}));

describeRpcRegistryContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    return {
      registry: new RedisRpcRegistry((await pool.create()).command, new RedisKeys(prefix)),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);
